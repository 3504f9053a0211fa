package kalla

import (
	"net/url"
	"regexp"
	"sort"
	"strings"
	"sync"
)

// Mask replaces every secret Kalla hides.
const Mask = "xxxxx"

// minSecretLen is the shortest known secret value RedactText replaces in
// free text: replacing a two-letter password everywhere would garble every
// message while hiding nothing worth hiding. Secrets found by their place in
// a URI (userinfo, a password= parameter) are masked whatever their length.
const minSecretLen = 4

// RedactURI returns uri with every password-bearing part masked: the
// password of its userinfo, the bare token of a nats:// userinfo, and the
// value of every query parameter whose name says it holds a secret
// (password, sslpassword, sslkey, X-Amz-Signature, aws_secret_access_key...).
// A comma-separated list of URIs (NATS servers) is redacted URI by URI, and
// a libpq keyword/value string ("host=h password=p") has its secret values
// masked. It is the one place that decides what in a URI is secret: logs,
// errors, callbacks and API answers all go through it or RedactText.
func RedactURI(uri string) string {
	return scanURIs(uri, func(string) string { return Mask })
}

// URISecrets lists the secret values of uri, as written and decoded, so that
// a message that quotes them out of their URI (a driver error) can be
// scrubbed with RedactText.
func URISecrets(uri string) []string {
	var out []string
	scanURIs(uri, func(v string) string {
		out = append(out, v)
		if dec, err := url.QueryUnescape(v); err == nil && dec != v {
			out = append(out, dec)
		}
		if dec, err := url.PathUnescape(v); err == nil && dec != v {
			out = append(out, dec)
		}
		return v
	})
	return out
}

// Secrets lists the secret values in the job's URIs (sources, output path,
// callback URL), for scrubbing the texts that describe the job.
func (j *Job) Secrets() []string {
	s := URISecrets(j.OutputPath)
	s = append(s, URISecrets(j.CallbackURL)...)
	for _, src := range j.Sources {
		s = append(s, URISecrets(src.URI)...)
	}
	return s
}

// Redacted returns a copy of the job with every URI masked (RedactURI), for
// showing it (GET /api/jobs).
func (j *Job) Redacted() Job {
	c := *j
	c.OutputPath = RedactURI(j.OutputPath)
	c.CallbackURL = RedactURI(j.CallbackURL)
	c.Sources = make([]SourceSpec, len(j.Sources))
	for i, s := range j.Sources {
		s.URI = RedactURI(s.URI)
		c.Sources[i] = s
	}
	return c
}

// uriRe finds URIs in free text. It stops at blanks and quotes, so a URI
// quoted by %q or in JSON ends where its quote does.
var uriRe = regexp.MustCompile(`[A-Za-z][A-Za-z0-9+.\-]*://[^\s"'<>` + "`" + `]+`)

// keyValueRe finds key=value pairs whose key names a secret, as libpq's
// keyword/value strings and many error messages write them. Only keys that
// plainly name a credential are matched here: in free text a word such as
// "key" is too common to mask what follows it.
var keyValueRe = regexp.MustCompile(`(?i)\b([a-z0-9_.\-]*(?:password|passwd|pwd|secret|token|credential)[a-z0-9_.\-]*\s*=\s*)('(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|[^\s'",;&)]+)`)

// RedactText masks the secrets in a free text (an error message, a log
// line): every URI in it as RedactURI does, secret key=value pairs, and every
// occurrence of the values in secrets and of those registered with
// AddSecrets, as written and URL-escaped.
func RedactText(s string, secrets ...string) string {
	if s == "" {
		return s
	}
	s = uriRe.ReplaceAllStringFunc(s, func(u string) string {
		// Punctuation after a URI in prose belongs to the prose.
		trimmed := strings.TrimRight(u, ").,;:]}")
		return RedactURI(trimmed) + u[len(trimmed):]
	})
	s = keyValueRe.ReplaceAllString(s, "${1}"+Mask)
	known := append(registeredSecrets(), secrets...)
	var forms []string
	for _, sec := range known {
		if len(sec) < minSecretLen {
			continue
		}
		forms = append(forms, sec, url.QueryEscape(sec), url.PathEscape(sec))
	}
	// Longest first, so a secret that contains another is masked whole.
	sort.Slice(forms, func(a, b int) bool { return len(forms[a]) > len(forms[b]) })
	for _, f := range forms {
		if len(f) >= minSecretLen {
			s = strings.ReplaceAll(s, f, Mask)
		}
	}
	return s
}

var registered struct {
	sync.RWMutex
	values map[string]bool
}

// AddSecrets registers values that RedactText masks wherever they appear,
// in this process: the server's own secrets (the passwords of its named
// connections, its tokens), which a driver error may quote outside any URI.
func AddSecrets(values ...string) {
	registered.Lock()
	defer registered.Unlock()
	if registered.values == nil {
		registered.values = map[string]bool{}
	}
	for _, v := range values {
		if len(v) >= minSecretLen {
			registered.values[v] = true
		}
	}
}

func registeredSecrets() []string {
	registered.RLock()
	defer registered.RUnlock()
	out := make([]string, 0, len(registered.values))
	for v := range registered.values {
		out = append(out, v)
	}
	return out
}

// listSplitRe finds the commas that start another URI of a list
// ("nats://a:1,nats://b:2"); a comma inside one URI (a Postgres host list,
// a query value) does not match.
var listSplitRe = regexp.MustCompile(`,\s*[A-Za-z][A-Za-z0-9+.\-]*://`)

// scanURIs calls secret with each secret value of s (a URI, a list of URIs
// or a keyword/value string) and returns s with each replaced by what
// secret returned.
func scanURIs(s string, secret func(string) string) string {
	idx := listSplitRe.FindAllStringIndex(s, -1)
	if len(idx) == 0 {
		return scanURI(s, secret)
	}
	var b strings.Builder
	start := 0
	for _, m := range idx {
		b.WriteString(scanURI(s[start:m[0]], secret))
		b.WriteByte(',')
		start = m[0] + 1
	}
	b.WriteString(scanURI(s[start:], secret))
	return b.String()
}

// tokenSchemes carry a bare token as their userinfo (nats://TOKEN@host).
var tokenSchemes = map[string]bool{"nats": true, "tls": true, "ws": true, "wss": true}

// pathSchemes name objects whose path may hold ':' and '@' legitimately.
var pathSchemes = map[string]bool{"file": true, "s3": true}

func scanURI(s string, secret func(string) string) string {
	i := strings.Index(s, "://")
	if i <= 0 {
		return scanKeyValues(s, secret)
	}
	scheme := strings.ToLower(strings.TrimSpace(s[:i]))
	rest := s[i+3:]
	head, query, hasQuery := strings.Cut(rest, "?")
	if at := strings.LastIndexByte(head, '@'); at >= 0 {
		ui := head[:at]
		if !pathSchemes[scheme] || !strings.Contains(ui, "/") {
			if user, pw, ok := strings.Cut(ui, ":"); ok {
				if pw != "" {
					ui = user + ":" + secret(pw)
				}
			} else if tokenSchemes[scheme] && ui != "" {
				ui = secret(ui)
			}
			head = ui + head[at:]
		}
	}
	if !hasQuery {
		return s[:i+3] + head
	}
	return s[:i+3] + head + "?" + scanQuery(query, secret)
}

// scanQuery handles the query of a URI, keeping its encoding as written.
func scanQuery(query string, secret func(string) string) string {
	params := strings.Split(query, "&")
	for i, p := range params {
		k, v, ok := strings.Cut(p, "=")
		if !ok || v == "" {
			continue
		}
		name := k
		if dec, err := url.QueryUnescape(k); err == nil {
			name = dec
		}
		if SecretParam(name) {
			params[i] = k + "=" + secret(v)
		}
	}
	return strings.Join(params, "&")
}

// scanKeyValues handles a libpq keyword/value string or a plain path.
func scanKeyValues(s string, secret func(string) string) string {
	if !strings.Contains(s, "=") {
		return s
	}
	return keyValueRe.ReplaceAllStringFunc(s, func(m string) string {
		sub := keyValueRe.FindStringSubmatch(m)
		v := sub[2]
		if len(v) >= 2 && (v[0] == '\'' || v[0] == '"') {
			return sub[1] + v[:1] + secret(v[1:len(v)-1]) + v[len(v)-1:]
		}
		return sub[1] + secret(v)
	})
}

// secretWords are the parts of a parameter name that say it holds a secret.
var secretWords = []string{"password", "passwd", "pwd", "secret", "token", "key", "credential", "signature"}

// SecretParam reports whether a URI query parameter named name holds a
// secret: its name contains password, secret, token, key, credential or
// signature (case-insensitive), or is sig or auth.
func SecretParam(name string) bool {
	n := strings.ToLower(name)
	if n == "sig" || n == "auth" {
		return true
	}
	for _, w := range secretWords {
		if strings.Contains(n, w) {
			return true
		}
	}
	return false
}
