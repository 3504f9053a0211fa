package postgres

import (
	"net/url"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/kalla-dev/kalla"
)

// A job's connection is built only from what its URI says. pgx, like libpq,
// fills whatever a connection string leaves out from the process's
// environment (PGHOST, PGUSER, PGPASSWORD, PGSSLKEY...), from ~/.pgpass,
// ~/.pg_service.conf and ~/.postgresql/, and connects to a local socket
// folder when no host is given: on the scheduler and the executors those are
// the server's own credentials, which a client must never borrow. pgx has no
// switch to ignore them, but settings in the connection string win over
// everything else, so the job's string is completed with explicit values for
// each setting that could bring in a credential, and the few that pgx takes
// from elsewhere are reset after parsing.

// serverFileParams name files on the server (or a service defined there): a
// job may not point at them. A named connection may.
var serverFileParams = []string{"passfile", "service", "servicefile", "sslkey", "sslcert", "sslrootcert", "sslcrl", "sslcrldir"}

// pinnedEmpty are set to "" when the job does not give them, so that the
// environment's value (or the default file under ~/) is not used.
var pinnedEmpty = []string{"passfile", "sslkey", "sslcert", "sslrootcert", "sslpassword"}

// pinnedDefaults are set to libpq's default when the job does not give
// them, for the same reason.
var pinnedDefaults = map[string]string{
	"sslmode":              "prefer",
	"target_session_attrs": "any",
}

// jobSettings records what the job's URI gave, for apply.
type jobSettings struct {
	user, database, options bool
}

// pinJobSettings checks a job's URI (base is the part before "?", q its
// query, which it completes) and pins every setting pgx would otherwise
// take from the server's environment or files.
func pinJobSettings(base string, q url.Values) (jobSettings, error) {
	for _, k := range serverFileParams {
		if hasKeyFold(q, k) {
			return jobSettings{}, kalla.Invalid("uri", "parameter %s names a file or service on the server: a job may not use it (the operator can define a named connection, conn://NAME, that does)", k)
		}
	}
	userinfo, hosts, path := splitAuthority(base)
	user, _, hasPassword := strings.Cut(userinfo, ":")
	var g jobSettings
	g.user = user != "" || q.Get("user") != ""
	g.database = strings.Trim(path, "/") != "" || q.Get("dbname") != "" || q.Get("database") != ""
	g.options = q.Has("options")
	if hosts == "" && !q.Has("host") {
		return jobSettings{}, kalla.Invalid("uri", "the URI names no host: write postgres://user@HOST:port/db (a job never connects to the server's own socket)")
	}
	if !q.Has("port") && !hostsHavePort(hosts) {
		q.Set("port", "5432")
	}
	if !hasPassword && !q.Has("password") {
		q.Set("password", "")
	}
	for _, k := range pinnedEmpty {
		if !q.Has(k) {
			q.Set(k, "")
		}
	}
	for k, v := range pinnedDefaults {
		if !q.Has(k) && !(k == "sslmode" && q.Has("ssl")) {
			q.Set(k, v)
		}
	}
	return g, nil
}

// splitAuthority splits a URI without its query into userinfo, host list
// and path, as written. The userinfo ends at the last '@' before the path.
func splitAuthority(base string) (userinfo, hosts, path string) {
	_, rest, _ := strings.Cut(base, "://")
	authority := rest
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		authority, path = rest[:i], rest[i:]
	}
	if at := strings.LastIndexByte(authority, '@'); at >= 0 {
		return authority[:at], authority[at+1:], path
	}
	return "", authority, path
}

// hostsHavePort reports whether any host of a URI's host list carries a
// port; pgx applies PGPORT to a list that has none.
func hostsHavePort(hosts string) bool {
	for _, h := range strings.Split(hosts, ",") {
		if strings.HasPrefix(h, "[") {
			if strings.Contains(h, "]:") {
				return true
			}
		} else if strings.Contains(h, ":") {
			return true
		}
	}
	return false
}

// apply resets what pgx filled in from the environment after parsing, and
// refuses a unix socket folder as host: a socket reaches the databases of
// the machine the job runs on, as its OS user (peer authentication).
func (g jobSettings) apply(cfg *pgx.ConnConfig) error {
	if !g.database {
		cfg.Database = cfg.User // libpq's default, not PGDATABASE
	}
	if !g.options {
		delete(cfg.RuntimeParams, "options") // PGOPTIONS
	}
	hosts := []string{cfg.Host}
	for _, f := range cfg.Fallbacks {
		hosts = append(hosts, f.Host)
	}
	for _, h := range hosts {
		if strings.HasPrefix(h, "/") || strings.HasPrefix(h, "@") || len(h) > 2 && h[1] == ':' && h[2] == '\\' {
			return kalla.Invalid("uri", "host %q is a unix socket folder: a job connects over TCP (postgres://user@host:port/db); only a named connection (conn://NAME) set up by the operator may use a socket", h)
		}
	}
	return nil
}
