package postgres

import (
	"context"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/kalla-dev/kalla"
)

// serverEnv gives this process (the server) credentials for the test role
// in every place libpq looks: PGPASSWORD, PGUSER, PGPASSFILE and
// ~/.pgpass, PGOPTIONS. It cannot run in parallel: it sets the environment.
func serverEnv(t *testing.T, tb *testBundle) {
	t.Helper()
	home := t.TempDir()
	pgpass := filepath.Join(home, ".pgpass")
	line := "*:*:*:" + tb.pg.User + ":" + tb.pg.Password + "\n"
	if err := os.WriteFile(pgpass, []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("HOME", home)
	t.Setenv("PGPASSFILE", pgpass)
	t.Setenv("PGPASSWORD", tb.pg.Password)
	t.Setenv("PGUSER", tb.pg.User)
	t.Setenv("PGHOST", tb.pg.Host)
	t.Setenv("PGPORT", strconv.Itoa(tb.pg.Port))
	t.Setenv("PGDATABASE", tb.db.Database)
	t.Setenv("PGOPTIONS", "-c work_mem=1MB")
}

// A job's URI without a password does not borrow the server's: with the
// environment and ~/.pgpass able to log in, the job still fails to
// authenticate, and the error does not show the password. The same URI as
// an operator's named connection does use them, which proves the
// environment would have worked.
func TestJobIgnoresServerCredentials(t *testing.T) {
	tb := setup(t)
	if tb.pg.Password == "" {
		t.Skip("the test server has no password")
	}
	tb.db.Exec(t, `CREATE TABLE t (id int)`)
	serverEnv(t, tb)
	noPassword := strings.Replace(tb.db.TableURI("t"), url.UserPassword(tb.pg.User, tb.pg.Password).String(), url.User(tb.pg.User).String(), 1)
	if strings.Contains(noPassword, tb.pg.Password) {
		t.Fatalf("the URI still has the password: %s", kalla.RedactURI(noPassword))
	}
	_, err := tb.openURI(t, noPassword).Columns(context.Background())
	if err == nil || !strings.Contains(err.Error(), "password authentication failed") {
		t.Fatalf("job without a password: got %v, want a password authentication failure", err)
	}
	noSecret(t, err.Error(), tb.pg.Password)

	conns, err := NewConnections(map[string]string{"erp": strings.Split(noPassword, "?")[0] + "?sslmode=disable"})
	if err != nil {
		t.Fatal(err)
	}
	src, err := conns.Open(context.Background(), "conn://erp?table="+tb.db.Schema+".t")
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if _, err := src.(*Source).Columns(context.Background()); err != nil {
		t.Fatalf("named connection with the server's pgpass: %v", err)
	}

	// A URI that names no host, user or database takes none from PGHOST,
	// PGUSER or PGDATABASE.
	for _, uri := range []string{"postgres:///db?table=t", "postgres://h/db?table=t"} {
		_, err := Open(context.Background(), uri)
		var v *kalla.ValidationError
		if !asValidation(err, &v) || v.Field != "uri" {
			t.Errorf("%s: got %v, want a validation error on uri", uri, err)
		}
	}
	cfg, _, _, err := parseURI("postgres://someone@db.example/?table=t", false)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Database != "someone" || cfg.Port != 5432 || cfg.Password != "" || cfg.RuntimeParams["options"] != "" || cfg.TLSConfig == nil {
		t.Errorf("job settings taken from the environment: database %q port %d password set %t options %q",
			cfg.Database, cfg.Port, cfg.Password != "", cfg.RuntimeParams["options"])
	}
}

// A job may not name a unix socket folder or a file on the server.
func TestJobRefusesSocketAndServerFiles(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ uri, want string }{
		{"postgres://kalla@%2Fvar%2Frun%2Fpostgresql/ledger?table=t", `host "/var/run/postgresql"`},
		{"postgres://kalla@h/ledger?host=/tmp&table=t", `host "/tmp"`},
		{"postgres://kalla@h1,/ledger?table=t", "unix socket"},
		{"postgres://kalla@h/ledger?table=t&passfile=/root/.pgpass", "passfile"},
		{"postgres://kalla@h/ledger?table=t&service=prod", "service"},
		{"postgres://kalla@h/ledger?table=t&sslkey=/etc/ssl/private/k.pem", "sslkey"},
	} {
		_, err := Open(context.Background(), tc.uri)
		var v *kalla.ValidationError
		if !asValidation(err, &v) || v.Field != "uri" || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want a validation error on uri naming %s", tc.uri, err, tc.want)
		}
	}
	// The operator's named connection may use a socket.
	conns, err := NewConnections(map[string]string{"local": "postgres://kalla@%2Fvar%2Frun%2Fpostgresql/ledger"})
	if err != nil {
		t.Fatal(err)
	}
	src, err := conns.Open(context.Background(), "conn://local?table=t")
	if err != nil {
		t.Fatalf("named connection on a socket: %v", err)
	}
	src.Close()
}

func TestConnectionsResolve(t *testing.T) {
	t.Parallel()
	conns, err := NewConnections(map[string]string{"ERP": "postgres://kalla:conn-secret-1@db:5432/erp?sslmode=disable"})
	if err != nil {
		t.Fatal(err)
	}
	got, err := conns.Resolve("conn://erp?table=billing.invoices&connect_timeout=5")
	if want := "postgres://kalla:conn-secret-1@db:5432/erp?sslmode=disable&connect_timeout=5&table=billing.invoices"; err != nil || got != want {
		t.Errorf("Resolve: %q, %v; want %q", got, err, want)
	}
	for _, tc := range []struct{ uri, want string }{
		{"conn://nope?table=t", `no connection named "nope"`},
		{"conn://erp?table=t&host=evil.example", `"host" belongs to the connection`},
		{"conn://erp?table=t&user=postgres", `"user"`},
		{"conn://erp?table=t&password=x", `"password"`},
		{"conn://erp?table=t&sslmode=disable", `"sslmode"`},
		{"conn://u:p@erp?table=t", "conn://NAME"},
		{"conn://erp/otherdb?table=t", "conn://NAME"},
	} {
		_, err := conns.Open(context.Background(), tc.uri)
		var v *kalla.ValidationError
		if !asValidation(err, &v) || v.Field != "uri" || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want a validation error on uri saying %s", tc.uri, err, tc.want)
		}
		if err != nil && (strings.Contains(err.Error(), "conn-secret-1") || strings.Contains(err.Error(), "db:5432")) {
			t.Errorf("%s: error shows the connection: %v", tc.uri, err)
		}
	}
	if msg := kalla.RedactText("driver said conn-secret-1"); strings.Contains(msg, "conn-secret-1") {
		t.Errorf("a named connection's password is not registered as a secret: %q", msg)
	}
	for _, bad := range []map[string]string{
		{"x": "mysql://u:p@h/db"},
		{"bad name": "postgres://u@h/db"},
	} {
		if _, err := NewConnections(bad); err == nil {
			t.Errorf("NewConnections(%v) accepted", bad)
		}
	}
}
