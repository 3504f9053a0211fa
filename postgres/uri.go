package postgres

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

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
// pgx (sslmode, connect_timeout, application_name, search_path...), and pgx
// parses the rest, so several hosts work too. It also returns the forms in
// which the URI's passwords could show in a message, for scrubbing.
//
// A job's URI (trusted false) is held to what it says itself: see
// pinJobSettings. A named connection's URI (trusted true) is the operator's
// and is parsed as libpq would, environment and files included.
func parseURI(uri string, trusted bool) (*pgx.ConnConfig, tableRef, []string, error) {
	if s := kalla.Scheme(uri); s != "postgres" && s != "postgresql" {
		return nil, tableRef{}, nil, kalla.Invalid("uri", "scheme %q is not postgres:// or postgresql://", s)
	}
	base, rawQuery, _ := strings.Cut(uri, "?")
	// pgx reads only a lower-case scheme as a URL: POSTGRES://... would
	// be taken for a keyword/value string and connect to the default
	// socket.
	base = "postgres" + base[strings.Index(base, "://"):]
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return nil, tableRef{}, nil, kalla.Invalid("uri", "malformed postgres URI query: %v", err)
	}
	if _, authority, ok := strings.Cut(base, "://"); ok {
		if i := strings.IndexByte(authority, '/'); i >= 0 {
			authority = authority[:i]
		}
		if strings.Count(authority, "@") > 1 {
			// Parsers disagree on where such a password ends, and each
			// would show the rest of it as the host: say nothing of it.
			return nil, tableRef{}, nil, kalla.Invalid("uri", "malformed postgres URI: an unescaped '@' in the user or password (write it %%40)")
		}
	}
	secrets := kalla.URISecrets(uri)
	table := q.Get("table")
	q.Del("table")
	// Timestamps and text casts read the same whatever the server's
	// default zone: the engine works in UTC.
	if !hasKeyFold(q, "timezone") {
		q.Set("timezone", "UTC")
	}
	if !hasKeyFold(q, "application_name") {
		q.Set("application_name", "kalla")
	}
	if !hasKeyFold(q, "connect_timeout") {
		// Without it, a host that drops packets holds the job for the
		// system's TCP timeout (two minutes and more) before the error.
		q.Set("connect_timeout", strconv.Itoa(int(defaultConnectTimeout/time.Second)))
	}
	var given jobSettings
	if !trusted {
		if given, err = pinJobSettings(base, q); err != nil {
			return nil, tableRef{}, nil, err
		}
	}
	cfg, err := pgx.ParseConfig(base + "?" + q.Encode())
	if err != nil {
		return nil, tableRef{}, nil, kalla.Invalid("uri", "malformed postgres URI: %s", kalla.RedactText(err.Error(), secrets...))
	}
	secrets = append(secrets, cfg.Password, url.QueryEscape(cfg.Password), url.PathEscape(cfg.Password))
	if !trusted {
		if err := given.apply(cfg); err != nil {
			return nil, tableRef{}, nil, err
		}
	}
	if strings.TrimSpace(table) == "" {
		return nil, tableRef{}, nil, kalla.Invalid("uri", "the URI of database %q at %s names no table: add ?table=schema.name (or ?table=name to search the search_path)",
			cfg.Database, net.JoinHostPort(cfg.Host, strconv.Itoa(int(cfg.Port))))
	}
	ref, err := parseTable(table)
	if err != nil {
		return nil, tableRef{}, nil, kalla.Invalid("uri", "table=%q: %v", table, err)
	}
	if !trusted && !given.user {
		return nil, tableRef{}, nil, kalla.Invalid("uri", "the URI names no user: write postgres://USER@%s/%s (a job never connects as the server's own user)",
			net.JoinHostPort(cfg.Host, strconv.Itoa(int(cfg.Port))), cfg.Database)
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

// defaultConnectTimeout bounds a connection attempt when the URI sets no
// connect_timeout.
const defaultConnectTimeout = 30 * time.Second
