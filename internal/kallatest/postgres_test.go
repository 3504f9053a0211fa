package kallatest_test

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/kalla-dev/kalla/internal/kallatest"
)

func TestMain(m *testing.M) { kallatest.Main(m) }

func TestPostgresDatabase(t *testing.T) {
	t.Parallel()
	pg := kallatest.Postgres(t)
	if !strings.Contains(pg.URL, pg.Password) {
		t.Fatalf("URL %q lacks the password", pg.URL)
	}
	db := pg.NewDatabase(t)
	db.Exec(t, `CREATE TABLE t (id int)`)
	db.Exec(t, `INSERT INTO t VALUES ($1), ($2)`, 1, 2)
	var n int
	if err := db.Pool.QueryRow(context.Background(), `SELECT count(*) FROM t`).Scan(&n); err != nil || n != 2 {
		t.Fatalf("count = %d, %v", n, err)
	}
	if !strings.HasSuffix(db.TableURI("t"), "table=public.t") {
		t.Fatalf("TableURI = %s", db.TableURI("t"))
	}
}

func TestPostgresSchema(t *testing.T) {
	t.Parallel()
	db := kallatest.Postgres(t).NewSchema(t)
	db.Exec(t, `CREATE TABLE t (id int)`)
	var schema string
	if err := db.Pool.QueryRow(context.Background(), `SELECT table_schema FROM information_schema.tables WHERE table_name = 't'`).Scan(&schema); err != nil || schema != db.Schema {
		t.Fatalf("table in schema %q, want %q (%v)", schema, db.Schema, err)
	}
}

func TestPostgresPasswordRequired(t *testing.T) {
	t.Parallel()
	pg := kallatest.Postgres(t)
	if pg.Password == "" {
		t.Skip("server from KALLA_TEST_POSTGRES_URL has no password")
	}
	wrong := strings.Replace(pg.URL, pg.Password, "wrong-password", 1)
	conn, err := pgx.Connect(context.Background(), wrong)
	if err == nil {
		conn.Close(context.Background())
		t.Fatal("connected with a wrong password: the server does not check passwords")
	}
}
