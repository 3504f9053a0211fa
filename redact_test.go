package kalla

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func TestRedactURI(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{"postgres://u:hunter2@h:5432/db?table=t", "postgres://u:xxxxx@h:5432/db?table=t"},
		{"postgres://u@h/db?table=t&password=hunter2&sslpassword=keypass1", "postgres://u@h/db?table=t&password=xxxxx&sslpassword=xxxxx"},
		{"postgres://u:p%40ss@h/db?PassWord=x%26y&table=a.b", "postgres://u:xxxxx@h/db?PassWord=xxxxx&table=a.b"},
		{"postgres://u:pw@h1:5432,h2:5433/db?table=t", "postgres://u:xxxxx@h1:5432,h2:5433/db?table=t"},
		{"postgres://u:pa/ss@h/db?table=t", "postgres://u:xxxxx@h/db?table=t"},
		{"postgres://u@h/db?sslkey=/etc/k.pem&sslcert=/etc/c.pem&table=t", "postgres://u@h/db?sslkey=xxxxx&sslcert=/etc/c.pem&table=t"},
		{"postgres://u@h/db?table=t&password=", "postgres://u@h/db?table=t&password="},
		{"s3://bucket/k.csv?X-Amz-Signature=abc123&X-Amz-Credential=AKIA%2F1&X-Amz-Date=20260101", "s3://bucket/k.csv?X-Amz-Signature=xxxxx&X-Amz-Credential=xxxxx&X-Amz-Date=20260101"},
		{"s3://bucket/a@b:c/k.csv", "s3://bucket/a@b:c/k.csv"},
		{"s3://b/k?aws_secret_access_key=SECRET&access_token=T0K", "s3://b/k?aws_secret_access_key=xxxxx&access_token=xxxxx"},
		{"https://h/cb?sig=abcd&auth=zz&run=1", "https://h/cb?sig=xxxxx&auth=xxxxx&run=1"},
		{"nats://natsuser:natspass@h:4222", "nats://natsuser:xxxxx@h:4222"},
		{"nats://s3cr3ttoken@h:4222", "nats://xxxxx@h:4222"},
		{"nats://a:pw1@h1:4222,nats://tok2@h2:4222, tls://u:pw3@h3", "nats://a:xxxxx@h1:4222,nats://xxxxx@h2:4222, tls://u:xxxxx@h3"},
		{"nats://h:4222", "nats://h:4222"},
		{"postgres://kalla@h/db?table=t", "postgres://kalla@h/db?table=t"},
		{"host=h user=u password=hunter2 dbname=d", "host=h user=u password=xxxxx dbname=d"},
		{"host=h password='a b c' sslpassword=zz", "host=h password='xxxxx' sslpassword=xxxxx"},
		{"/data/in voice=1.csv", "/data/in voice=1.csv"},
		{"file:///data/x:y@z.csv", "file:///data/x:y@z.csv"},
		{"", ""},
	} {
		if got := RedactURI(tc.in); got != tc.want {
			t.Errorf("RedactURI(%q)\n got %q\nwant %q", tc.in, got, tc.want)
		}
	}
}

func TestURISecrets(t *testing.T) {
	t.Parallel()
	got := URISecrets("postgres://u:p%40ss@h/db?table=t&password=x%26y,nats://tok@h")
	for _, want := range []string{"p%40ss", "p@ss", "x%26y", "x&y", "tok"} {
		if !contains(got, want) {
			t.Errorf("URISecrets lacks %q: %q", want, got)
		}
	}
	if contains(got, "u") || contains(got, "t") {
		t.Errorf("URISecrets lists a non-secret: %q", got)
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func TestRedactText(t *testing.T) {
	t.Parallel()
	AddSecrets("registered-secret-value")
	for _, tc := range []struct {
		in      string
		secrets []string
		want    string
	}{
		{`read source "l" (postgres://u:hunter2@h/db?table=t&password=pw2): failed`, nil, `read source "l" (postgres://u:xxxxx@h/db?table=t&password=xxxxx): failed`},
		{`cannot parse "postgres://u:hunter2@h:x/db": invalid port`, nil, `cannot parse "postgres://u:xxxxx@h:x/db": invalid port`},
		{"failed to connect to `user=u database=d`: password authentication failed, password=hunter2", nil, "failed to connect to `user=u database=d`: password authentication failed, password=xxxxx"},
		{"the server said hunter2 twice: hunter2", []string{"hunter2"}, "the server said xxxxx twice: xxxxx"},
		{"escaped p%40ss and raw p@ss", []string{"p@ss"}, "escaped xxxxx and raw xxxxx"},
		{"short pw ab stays", []string{"ab"}, "short pw ab stays"},
		{"got registered-secret-value back", nil, "got xxxxx back"},
		{"connect to nats nats://tok123@127.0.0.1:4222: refused", nil, "connect to nats nats://xxxxx@127.0.0.1:4222: refused"},
		{`{"uri":"postgres://u:pw9@h/d?table=t"}`, nil, `{"uri":"postgres://u:xxxxx@h/d?table=t"}`},
	} {
		if got := RedactText(tc.in, tc.secrets...); got != tc.want {
			t.Errorf("RedactText(%q)\n got %q\nwant %q", tc.in, got, tc.want)
		}
	}
}

func TestJobSecrets(t *testing.T) {
	t.Parallel()
	j := &Job{
		Sources:     []SourceSpec{{URI: "postgres://u:srcpw1@h/db?table=t"}, {URI: "s3://b/k?X-Amz-Signature=sig22"}},
		OutputPath:  "s3://out/p?aws_secret_access_key=outkey",
		CallbackURL: "https://cb/x?token=cbtok",
	}
	got := j.Secrets()
	for _, want := range []string{"srcpw1", "sig22", "outkey", "cbtok"} {
		if !contains(got, want) {
			t.Errorf("Job.Secrets lacks %q: %q", want, got)
		}
	}
}

// Errors that carry a URI show it masked whoever formats them.
func TestErrorsRedact(t *testing.T) {
	t.Parallel()
	uri := "postgres://u:hunter2@h/db?table=t&sslpassword=keypass"
	errs := []error{
		Invalid("uri", "cannot open %s", uri),
		&StageError{Stage: StageStaging, Err: fmt.Errorf("read %s: %w", uri, errors.New("boom"))},
	}
	for _, err := range errs {
		if msg := err.Error(); strings.Contains(msg, "hunter2") || strings.Contains(msg, "keypass") || !strings.Contains(msg, "u:xxxxx@h") {
			t.Errorf("%T shows %q", err, msg)
		}
	}
}

type uriStringer string

func (s uriStringer) String() string { return string(s) }

func TestRedactLogs(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	log := slog.New(RedactLogs(slog.NewJSONHandler(&buf, nil))).With("nats_url", "nats://u:withpw@h:4222")
	log.Info("open postgres://u:inmsg@h/db?table=t",
		"uri", "postgres://u@h/db?table=t&password=inattr",
		"err", errors.New("dial postgres://u:inerr@h: refused"),
		"src", uriStringer("s3://b/k?X-Amz-Signature=instringer"),
		slog.Group("g", "dsn", "host=h password=ingroup"),
		"n", 3)
	out := buf.String()
	for _, secret := range []string{"withpw", "inmsg", "inattr", "inerr", "instringer", "ingroup"} {
		if strings.Contains(out, secret) {
			t.Errorf("log shows %q: %s", secret, out)
		}
	}
	if !strings.Contains(out, `"n":3`) || !strings.Contains(out, "u:xxxxx@h") {
		t.Errorf("log lost its content: %s", out)
	}
}

func TestJobRedacted(t *testing.T) {
	t.Parallel()
	j := &Job{
		Sources:     []SourceSpec{{Alias: "l", URI: "postgres://u:srcpw1@h/db?table=t"}, {Alias: "r", URI: "/data/r.csv"}},
		OutputPath:  "s3://out/p?aws_secret_access_key=outkey",
		CallbackURL: "https://cb/x?token=cbtok",
	}
	r := j.Redacted()
	if r.Sources[0].URI != "postgres://u:xxxxx@h/db?table=t" || r.Sources[1].URI != "/data/r.csv" ||
		r.OutputPath != "s3://out/p?aws_secret_access_key=xxxxx" || r.CallbackURL != "https://cb/x?token=xxxxx" {
		t.Errorf("Redacted: %+v", r)
	}
	if j.Sources[0].URI != "postgres://u:srcpw1@h/db?table=t" {
		t.Errorf("Redacted changed the job itself: %+v", j.Sources[0])
	}
}
