package duckdb

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	duckdb "github.com/duckdb/duckdb-go/v2"

	"github.com/kalla-dev/kalla"
)

// lockdown returns the statements that close a database to everything but
// the job's own files, DuckDB's documented way (Securing DuckDB): file
// access limited to allowed (folders ending in a slash, or single files),
// no extension installed or loaded beyond the statically linked ones, and
// the configuration locked, so a statement that got past the sandbox
// cannot undo any of it (SET, RESET, INSTALL, LOAD, ATTACH of a file,
// COPY TO elsewhere, read_text of anything else all fail). Order matters:
// allowed_* can only be set while external access is on.
func lockdown(allowed []string) []string {
	var dirs, files []string
	for _, p := range allowed {
		if strings.HasSuffix(p, string(filepath.Separator)) {
			dirs = append(dirs, quoteLiteral(p))
		} else {
			files = append(files, quoteLiteral(p))
		}
	}
	return []string{
		"SET autoinstall_known_extensions = false",
		"SET autoload_known_extensions = false",
		"SET allow_community_extensions = false",
		"SET allow_unsigned_extensions = false",
		"SET allowed_directories = [" + strings.Join(dirs, ", ") + "]",
		"SET allowed_paths = [" + strings.Join(files, ", ") + "]",
		"SET enable_external_access = false",
		"SET lock_configuration = true",
	}
}

// NewSession implements kalla.Engine: it opens a database of the job's own,
// applies the engine's settings, points spilling at the session's folder,
// gives the job its schema and tolerance_match, and locks the database down
// to the session's folder and allowed (files, and folders ending in a
// slash). A database per session, rather than a schema in a shared one, is
// what keeps jobs apart: DuckDB's lockdown settings are per database, and
// a schema of a shared one is a qualified name away from every other job.
// Opening one costs 20-45 ms here (a bare DuckDB open is 16-22 ms), once
// per job or cluster task: within the noise of the 1M-row bench.
func (e *Engine) NewSession(ctx context.Context, allowed ...string) (kalla.Session, error) {
	n := e.sessions.Add(1)
	s := &Session{
		engine: e,
		schema: fmt.Sprintf("kalla_job_%d", n),
		tables: map[string]*table{},
		dir:    filepath.Join(e.tempDir, fmt.Sprintf("job-%d", n)),
	}
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return nil, fmt.Errorf("create session folder: %w", err)
	}
	paths := []string{s.dir + string(filepath.Separator)}
	s.folders = []string{paths[0]}
	for _, p := range allowed {
		abs, err := filepath.Abs(p)
		if err != nil {
			os.RemoveAll(s.dir)
			return nil, fmt.Errorf("session path %s: %w", p, err)
		}
		if strings.HasSuffix(p, "/") || strings.HasSuffix(p, string(filepath.Separator)) {
			// The folder itself, which a partitioned COPY names, and
			// everything below it.
			paths = append(paths, abs)
			abs += string(filepath.Separator)
			s.folders = append(s.folders, abs)
		}
		paths = append(paths, abs)
		if abs != p && !filepath.IsAbs(p) {
			// DuckDB compares the path a query names; a relative source
			// path is named as given.
			paths = append(paths, p)
		}
	}
	setup := append([]string{}, e.settings...)
	setup = append(setup, "SET temp_directory = "+quoteLiteral(filepath.Join(s.dir, "spill")))
	connector, err := openDatabase(slices.Concat(setup, lockdown(paths)))
	if err != nil {
		os.RemoveAll(s.dir)
		return nil, fmt.Errorf("open session database: %w", err)
	}
	s.connector = connector
	s.db = sql.OpenDB(connector)
	conn, err := s.db.Conn(ctx)
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("connect: %w", err)
	}
	s.conn = conn
	for _, stmt := range []string{
		"CREATE SCHEMA " + quoteIdent(s.schema),
		// tolerance_match(a, b, t) is abs(a - b) <= t: inclusive, and exact
		// for DECIMAL operands (money is never read as a binary float).
		fmt.Sprintf("CREATE MACRO %s.tolerance_match(a, b, t) AS abs(a - b) <= t", quoteIdent(s.schema)),
		// search_path is the connection's own setting, which a locked
		// configuration still lets it set.
		fmt.Sprintf("SET search_path = %s", quoteLiteral(s.schema+",main")),
	} {
		if _, err := conn.ExecContext(ctx, stmt); err != nil {
			s.Close()
			return nil, fmt.Errorf("create session: %w", err)
		}
	}
	return s, nil
}

// openDatabase opens an in-memory database and applies setup. The settings
// are global to the database: they are applied once, by its first
// connection; later ones (the loads') inherit them, and could not apply
// them again once the configuration is locked.
func openDatabase(setup []string) (*duckdb.Connector, error) {
	var once sync.Once
	var applied bool
	return duckdb.NewConnector("", func(execer driver.ExecerContext) error {
		var err error
		once.Do(func() {
			for _, st := range setup {
				if _, err = execer.ExecContext(context.Background(), st, nil); err != nil {
					err = fmt.Errorf("%s: %w", st, err)
					return
				}
			}
			applied = true
		})
		if err == nil && !applied {
			err = errors.New("the database's settings could not be applied")
		}
		return err
	})
}
