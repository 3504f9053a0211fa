package postgres

import (
	"context"
	"fmt"
	"net/url"
	"regexp"
	"sort"
	"strings"

	"github.com/kalla-dev/kalla"
)

// ConnScheme is the scheme of a source that names a connection the server
// defines: conn://NAME?table=schema.name.
const ConnScheme = "conn"

// connParams are the query parameters a job may add to a named connection.
// Everything else (host, user, password, sslmode, options...) is the
// operator's: a job that could set host= would send the connection's
// password to a server of its choosing.
var connParams = map[string]bool{"table": true, "application_name": true, "connect_timeout": true}

// connNameRe is what a connection name may be: a word, as in an
// environment variable KALLA_CONN_<NAME>.
var connNameRe = regexp.MustCompile(`^[a-z0-9][a-z0-9_\-]*$`)

// Connections are the Postgres connections the operator defines by name, as
// Airflow connections or dbt profiles are: a job refers to one as
// conn://NAME?table=schema.name, needs no password, and its record keeps no
// credential. The URIs are the operator's, so they may do what a job's URI
// may not: use a unix socket, ~/.pgpass, a service file, client
// certificates.
type Connections struct {
	// Config is how their sources are read; set it before the first Open.
	Config Config
	uris   map[string]string // lower-case name -> postgres:// URI
}

// NewConnections checks the named URIs (name -> postgres:// URI) and
// registers their passwords with kalla.AddSecrets, so that no message shows
// them. Names are case-insensitive.
func NewConnections(named map[string]string) (*Connections, error) {
	c := &Connections{uris: map[string]string{}}
	for name, uri := range named {
		key := strings.ToLower(name)
		if !connNameRe.MatchString(key) {
			return nil, fmt.Errorf("connection %q: a name is letters, digits, '_' and '-'", name)
		}
		if _, dup := c.uris[key]; dup {
			return nil, fmt.Errorf("connection %q is defined twice", key)
		}
		kalla.AddSecrets(kalla.URISecrets(uri)...)
		cfg, _, _, err := parseURI(withParam(uri, "table", "t"), true)
		if err != nil {
			return nil, fmt.Errorf("connection %q: %s", key, kalla.RedactText(err.Error()))
		}
		kalla.AddSecrets(cfg.Password)
		c.uris[key] = uri
	}
	return c, nil
}

// Names lists the defined connections, for the startup log.
func (c *Connections) Names() []string {
	names := make([]string, 0, len(c.uris))
	for n := range c.uris {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Open implements kalla.SourceOpener for conn:// URIs.
func (c *Connections) Open(_ context.Context, uri string) (kalla.Source, error) {
	resolved, err := c.Resolve(uri)
	if err != nil {
		return nil, err
	}
	return open(resolved, true, c.Config)
}

// Resolve returns the postgres:// URI that conn://NAME?params stands for:
// the named connection's, with the job's table (and application_name,
// connect_timeout) in its query.
func (c *Connections) Resolve(uri string) (string, error) {
	if kalla.Scheme(uri) != ConnScheme {
		return "", kalla.Invalid("uri", "scheme %q is not conn://", kalla.Scheme(uri))
	}
	rest := uri[len(ConnScheme)+3:]
	name, rawQuery, _ := strings.Cut(rest, "?")
	if !connNameRe.MatchString(strings.ToLower(name)) {
		return "", kalla.Invalid("uri", "conn://%s: write conn://NAME?table=schema.name, where NAME is a connection the server defines (no user, password, host or path)", kalla.RedactURI(name))
	}
	named, ok := c.uris[strings.ToLower(name)]
	if !ok {
		return "", kalla.Invalid("uri", "no connection named %q is defined on this server (the operator defines them with KALLA_CONN_<NAME> or KALLA_CONNECTIONS_FILE)", name)
	}
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return "", kalla.Invalid("uri", "malformed conn:// query: %v", err)
	}
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if !connParams[k] {
			return "", kalla.Invalid("uri", "conn://%s may set only table, application_name and connect_timeout: %q belongs to the connection the server defines", name, k)
		}
	}
	for _, k := range keys {
		named = withParam(named, k, q.Get(k))
	}
	return named, nil
}

// withParam returns uri with query parameter key set to value, replacing
// any value it had.
func withParam(uri, key, value string) string {
	base, rawQuery, _ := strings.Cut(uri, "?")
	var kept []string
	for _, p := range strings.Split(rawQuery, "&") {
		k, _, _ := strings.Cut(p, "=")
		if p == "" || k == key {
			continue
		}
		kept = append(kept, p)
	}
	kept = append(kept, url.QueryEscape(key)+"="+url.QueryEscape(value))
	return base + "?" + strings.Join(kept, "&")
}
