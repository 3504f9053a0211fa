package postgres

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/kalla-dev/kalla"
	"github.com/kalla-dev/kalla/internal/kallatest"
)

func asValidation(err error, v **kalla.ValidationError) bool { return errors.As(err, v) }

// noSecret fails the test if text shows the password in any form.
func noSecret(t *testing.T, text, password string) {
	t.Helper()
	for _, form := range []string{password, url.QueryEscape(password), url.PathEscape(password)} {
		if strings.Contains(text, form) {
			t.Errorf("the password shows in %q", text)
		}
	}
}

func TestOpenErrors(t *testing.T) {
	t.Parallel()
	const pw = "s3cr3t-P@ss"
	base := "postgres://" + url.UserPassword("kalla", pw).String() + "@db.example:5432/ledger"
	for _, tc := range []struct {
		name, uri, want string
	}{
		{"no table", base, "?table="},
		{"empty table", base + "?table=&sslmode=disable", "?table="},
		{"bad port", "postgres://" + url.UserPassword("kalla", pw).String() + "@db.example:port/ledger?table=t", "malformed"},
		{"bad scheme", "mysql://" + url.UserPassword("kalla", pw).String() + "@db.example/ledger?table=t", "postgres://"},
		{"too many dots", base + "?table=a.b.c", "schema.name"},
		{"open quote", base + `?table=%22abc`, "unterminated"},
		{"empty part", base + "?table=public.", "empty"},
		{"password parameter", "postgres://db.example/ledger?password=" + url.QueryEscape(pw), "?table="},
		{"bad sslmode", base + "?table=t&sslmode=sometimes", "sslmode"},
		{"unescaped @", "postgres://kalla:" + pw + "@db.example/ledger?table=t", "%40"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Open(context.Background(), tc.uri)
			var v *kalla.ValidationError
			if !asValidation(err, &v) || v.Field != "uri" {
				t.Fatalf("got %v, want a validation error on uri", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not mention %q", err, tc.want)
			}
			noSecret(t, err.Error(), pw)
		})
	}
}

// TestOpenURIForms opens URIs in the forms pgx accepts beyond a plain
// host:port.
func TestOpenURIForms(t *testing.T) {
	t.Parallel()
	for _, uri := range []string{
		"postgresql://kalla:pw@h1:5432,h2:5433/ledger?table=public.t&target_session_attrs=read-write",
		"POSTGRES://kalla@db.example/ledger?table=t&sslmode=require&connect_timeout=3",
	} {
		src, err := Open(context.Background(), uri)
		if err != nil {
			t.Errorf("%s: %v", uri, err)
			continue
		}
		src.Close()
	}
}

func TestOpenAcceptsPostgresql(t *testing.T) {
	t.Parallel()
	tb := setup(t)
	tb.db.Exec(t, `CREATE TABLE t (id int)`)
	tb.db.Exec(t, `INSERT INTO t VALUES (1)`)
	uri := strings.Replace(tb.db.TableURI("t"), "postgres://", "postgresql://", 1)
	sink, err := scanAll(t, tb.openURI(t, uri), 1)
	if err != nil || len(sink.rows) != 1 {
		t.Fatalf("postgresql://: %d rows, %v", len(sink.rows), err)
	}
}

func TestUnreachableServer(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	l.Close() // nothing listens there now

	tb := &testBundle{log: &bytes.Buffer{}}
	uri := "postgres://kalla:" + kallatest.PostgresPassword + "@127.0.0.1:" + port + "/ledger?table=public.t&sslmode=disable&connect_timeout=5"
	src := tb.openURI(t, uri)
	_, err = src.Columns(context.Background())
	want := "connect to postgres at 127.0.0.1:" + port + ": connection refused"
	if err == nil || err.Error() != want {
		t.Fatalf("Columns: got %v, want %q", err, want)
	}
	err = src.Scan(context.Background(), nil, 4, &collectSink{})
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("Scan: got %v, want %q", err, want)
	}
	noSecret(t, err.Error(), kallatest.PostgresPassword)
	noSecret(t, tb.log.String(), kallatest.PostgresPassword)
}

func TestWrongPassword(t *testing.T) {
	t.Parallel()
	tb := setup(t)
	if tb.pg.Password == "" {
		t.Skip("the test server has no password")
	}
	const wrong = "wrong-password-123"
	uri := strings.Replace(tb.db.TableURI("t"), url.UserPassword(tb.pg.User, tb.pg.Password).String(), url.UserPassword(tb.pg.User, wrong).String(), 1)
	_, err := tb.openURI(t, uri).Columns(context.Background())
	if err == nil || !strings.Contains(err.Error(), "password authentication failed") ||
		!strings.Contains(err.Error(), tb.pg.Host+":"+strconv.Itoa(tb.pg.Port)) {
		t.Fatalf("got %v, want a password authentication failure naming the server", err)
	}
	noSecret(t, err.Error(), wrong)
}

func TestMissingTable(t *testing.T) {
	t.Parallel()
	tb := setup(t)
	for _, table := range []string{"nope", "public.nope", "no_schema.t"} {
		uri := strings.Replace(tb.db.TableURI("x"), "table="+tb.db.Schema+".x", "table="+table, 1)
		src := tb.openURI(t, uri)
		_, err := src.Columns(context.Background())
		var v *kalla.ValidationError
		if !asValidation(err, &v) || v.Field != "uri" || !strings.Contains(err.Error(), `"`+table+`" not found`) {
			t.Fatalf("table=%s: got %v, want a validation error naming the table", table, err)
		}
		noSecret(t, err.Error(), tb.pg.Password)
		if err := src.Scan(context.Background(), nil, 1, &collectSink{}); !asValidation(err, &v) {
			t.Fatalf("Scan: got %v, want the same validation error", err)
		}
	}
}

func TestMissingDatabase(t *testing.T) {
	t.Parallel()
	tb := setup(t)
	u, _ := url.Parse(tb.db.TableURI("t"))
	u.Path = "/no_such_db"
	_, err := tb.openURI(t, u.String()).Columns(context.Background())
	if err == nil || !strings.Contains(err.Error(), `database "no_such_db" does not exist`) {
		t.Fatalf("got %v", err)
	}
	noSecret(t, err.Error(), tb.pg.Password)
}

// TestPasswordNeverShown runs the source through its paths, error and
// warning ones included, with the password also in the query string, and
// checks the password shows in no error and no log line.
func TestPasswordNeverShown(t *testing.T) {
	t.Parallel()
	tb := setup(t)
	if tb.pg.Password == "" {
		t.Skip("the test server has no password")
	}
	tb.db.Exec(t, `CREATE TABLE wide (id int, n numeric)`)
	tb.db.Exec(t, `INSERT INTO wide VALUES (1, 1e50), (2, 'NaN')`)
	u, _ := url.Parse(tb.db.TableURI("wide"))
	q := u.Query()
	q.Set("password", tb.pg.Password)
	u.RawQuery = q.Encode()
	u.User = url.User(tb.pg.User)

	src := tb.openURI(t, u.String())
	var errs []error
	_, err := src.Columns(context.Background())
	errs = append(errs, err)
	errs = append(errs, src.Scan(context.Background(), []kalla.Filter{filter("id", kalla.OpEq, "x")}, 2, &collectSink{}))
	errs = append(errs, src.Scan(context.Background(), []kalla.Filter{filter("nope", kalla.OpEq, "x")}, 2, &collectSink{}))
	sink, err := scanAll(t, src, 2)
	if err != nil || len(sink.rows) != 2 {
		t.Fatalf("scan: %d rows, %v", len(sink.rows), err)
	}
	for _, e := range errs[1:] {
		if e == nil {
			t.Fatal("a bad filter was accepted")
		}
		noSecret(t, e.Error(), tb.pg.Password)
	}
	if !strings.Contains(tb.log.String(), "too wide") {
		t.Errorf("no warning in the log:\n%s", tb.log)
	}
	noSecret(t, tb.log.String(), tb.pg.Password)
}
