package postgres

import (
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/kalla-dev/kalla"
)

// tableRef is the ?table= of a source URI: [schema.]name, each part written
// bare or in double quotes as in SQL.
type tableRef struct {
	schema, name             string
	schemaQuoted, nameQuoted bool
}

// String returns the reference as the user wrote it, for messages.
func (t tableRef) String() string {
	if t.schema == "" {
		return t.name
	}
	return t.schema + "." + t.name
}

// candidates returns the quoted names the reference may denote: exactly as
// written, then, as Postgres itself reads a bare name, folded to lower case.
// Trying both lets ?table=Invoices find a table created as "Invoices" (an ORM
// habit) as well as one created as invoices.
func (t tableRef) candidates() (exact, folded string) {
	ident := func(schema, name string) string {
		if schema == "" {
			return pgx.Identifier{name}.Sanitize()
		}
		return pgx.Identifier{schema, name}.Sanitize()
	}
	fold := func(s string, quoted bool) string {
		if quoted {
			return s
		}
		return strings.ToLower(s)
	}
	return ident(t.schema, t.name), ident(fold(t.schema, t.schemaQuoted), fold(t.name, t.nameQuoted))
}

// parseTable parses [schema.]name where each part is a bare word or a
// double-quoted identifier ("" escapes a quote).
func parseTable(s string) (tableRef, error) {
	var parts []string
	var quoted []bool
	for i := 0; ; {
		var part string
		q := false
		if i < len(s) && s[i] == '"' {
			q = true
			var b strings.Builder
			j := i + 1
			for {
				if j >= len(s) {
					return tableRef{}, errors.New("unterminated quoted identifier")
				}
				if s[j] == '"' {
					if j+1 < len(s) && s[j+1] == '"' {
						b.WriteByte('"')
						j += 2
						continue
					}
					break
				}
				b.WriteByte(s[j])
				j++
			}
			part, i = b.String(), j+1
		} else {
			j := strings.IndexAny(s[i:], `."`)
			if j < 0 {
				j = len(s) - i
			}
			part, i = strings.TrimSpace(s[i:i+j]), i+j
		}
		if part == "" {
			return tableRef{}, errors.New("empty name")
		}
		parts, quoted = append(parts, part), append(quoted, q)
		if i == len(s) {
			break
		}
		if s[i] != '.' {
			return tableRef{}, fmt.Errorf("unexpected %q after %q", s[i], part)
		}
		i++
	}
	switch len(parts) {
	case 1:
		return tableRef{name: parts[0], nameQuoted: quoted[0]}, nil
	case 2:
		return tableRef{schema: parts[0], name: parts[1], schemaQuoted: quoted[0], nameQuoted: quoted[1]}, nil
	default:
		return tableRef{}, errors.New("too many dotted names: use schema.name (the database goes in the URI path)")
	}
}

// parseURI splits a source URI into the connection settings pgx reads and
// the table. It does no network I/O. Every query parameter but table goes to
// pgx (sslmode, connect_timeout, application_name, search_path...).
// It also returns the forms in which the URI's passwords could show in a
// message, for scrubbing.
func parseURI(uri string) (*pgx.ConnConfig, tableRef, []string, error) {
	u, err := url.Parse(uri)
	if err != nil {
		// url.Error repeats the whole URI, password included: keep only
		// the reason.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, tableRef{}, nil, kalla.Invalid("uri", "malformed postgres URI: %v", err)
	}
	if s := strings.ToLower(u.Scheme); s != "postgres" && s != "postgresql" {
		return nil, tableRef{}, nil, kalla.Invalid("uri", "scheme %q is not postgres:// or postgresql://", u.Scheme)
	}
	q := u.Query()
	table := q.Get("table")
	if strings.TrimSpace(table) == "" {
		return nil, tableRef{}, nil, kalla.Invalid("uri", "%s names no table: add ?table=schema.name (or ?table=name to search the search_path)", redactURI(uri))
	}
	ref, err := parseTable(table)
	if err != nil {
		return nil, tableRef{}, nil, kalla.Invalid("uri", "table=%q: %v", table, err)
	}
	q.Del("table")
	// Timestamps and text casts read the same whatever the server's
	// default zone: the engine works in UTC.
	if !hasKeyFold(q, "timezone") {
		q.Set("timezone", "UTC")
	}
	if !hasKeyFold(q, "application_name") {
		q.Set("application_name", "kalla")
	}
	u.Scheme = "postgres"
	u.RawQuery = q.Encode()
	secrets := uriSecrets(u)
	cfg, err := pgx.ParseConfig(u.String())
	if err != nil {
		return nil, tableRef{}, nil, kalla.Invalid("uri", "%s", scrubText(err.Error(), secrets))
	}
	return cfg, ref, secrets, nil
}

func hasKeyFold(q url.Values, key string) bool {
	for k := range q {
		if strings.EqualFold(k, key) {
			return true
		}
	}
	return false
}

// uriSecrets lists the forms in which u's passwords may appear in a message.
func uriSecrets(u *url.URL) []string {
	var s []string
	if u.User != nil {
		if pw, ok := u.User.Password(); ok {
			s = append(s, pw, url.QueryEscape(pw), url.PathEscape(pw))
		}
	}
	for k, vs := range u.Query() {
		if strings.EqualFold(k, "password") || strings.EqualFold(k, "sslpassword") {
			for _, v := range vs {
				s = append(s, v, url.QueryEscape(v))
			}
		}
	}
	return s
}

// redactURI hides the passwords of uri, in its user info and query.
func redactURI(uri string) string {
	u, err := url.Parse(uri)
	if err != nil {
		return "(malformed URI)"
	}
	if u.User != nil {
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
		}
	}
	q := u.Query()
	changed := false
	for k := range q {
		if strings.EqualFold(k, "password") || strings.EqualFold(k, "sslpassword") {
			q[k] = []string{"xxxxx"}
			changed = true
		}
	}
	if changed {
		u.RawQuery = q.Encode()
	}
	return u.String()
}

// minSecretLen is the shortest secret scrubbed from messages: replacing a
// two-letter password everywhere would garble every message while hiding
// nothing worth hiding.
const minSecretLen = 4

// scrubText replaces every secret in s.
func scrubText(s string, secrets []string) string {
	for _, sec := range secrets {
		if len(sec) >= minSecretLen {
			s = strings.ReplaceAll(s, sec, "xxxxx")
		}
	}
	return s
}
