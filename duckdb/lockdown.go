package duckdb

import (
	"bufio"
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
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
// Opening one costs about 2 ms (measured on this machine's 1M-row bench: no
// change within noise).
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
	connector, err := openDatabase(append(setup, lockdown(paths)...))
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
// connection; later ones (the appenders') inherit them, and could not apply
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

// canWrite reports whether the session's database may write into dir:
// dir is below its own folder or a folder it was allowed.
func (s *Session) canWrite(dir string) bool {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return false
	}
	abs += string(filepath.Separator)
	for _, f := range s.folders {
		if strings.HasPrefix(abs, f) {
			return true
		}
	}
	return false
}

// outDir returns where the session's database writes what belongs in dir:
// dir itself when the session may write there, else a fresh folder of its
// own whose files move returns moves into dir. The lockdown cannot allow a
// folder made after the session started (the output folder of a local job
// is made once the job is known to be valid), and DuckDB resolves links,
// so the files are moved: a rename on one file system, a copy across.
func (s *Session) outDir(dir string) (string, error) {
	if s.canWrite(dir) {
		return dir, nil
	}
	s.outs++
	out := filepath.Join(s.dir, fmt.Sprintf("out-%d", s.outs))
	if err := os.Mkdir(out, 0o700); err != nil {
		return "", fmt.Errorf("create output folder: %w", err)
	}
	return out, nil
}

// move moves the file or folder name from the folder from into the folder
// to, unless they are the same folder.
func move(from, to, name string) error {
	if from == to {
		return nil
	}
	src, dst := filepath.Join(from, name), filepath.Join(to, name)
	if err := os.Rename(src, dst); err == nil {
		return nil
	}
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		return copyFile(path, target)
	})
	if err != nil {
		return fmt.Errorf("move %s into %s: %w", name, to, err)
	}
	return os.RemoveAll(src)
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// memoryLimit turns a percentage of RAM ("75%") into bytes, which DuckDB's
// memory_limit needs (it refuses "75%", so KALLA_MEMORY_LIMIT=75% failed
// every job); other sizes are DuckDB's to check.
func memoryLimit(limit string) (string, error) {
	pct, ok := strings.CutSuffix(strings.TrimSpace(limit), "%")
	if !ok {
		return limit, nil
	}
	p, err := strconv.ParseFloat(strings.TrimSpace(pct), 64)
	if err != nil || p <= 0 || p > 100 {
		return "", kalla.Invalid("memory-limit", "%q is not a percentage of RAM between 0 and 100%%", limit)
	}
	total, err := totalMemory()
	if err != nil {
		return "", kalla.Invalid("memory-limit", "%q: cannot read the machine's RAM (%v); give a size such as 4GB", limit, err)
	}
	return fmt.Sprintf("%dKiB", int64(float64(total)*p/100)/1024), nil
}

// totalMemory is the RAM this process may use: MemTotal of /proc/meminfo,
// or the cgroup's memory.max when a container sets a smaller one.
func totalMemory() (int64, error) {
	total, err := memTotal()
	if err != nil {
		return 0, err
	}
	if b, err := os.ReadFile("/sys/fs/cgroup/memory.max"); err == nil {
		if n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64); err == nil && n > 0 && n < total {
			total = n
		}
	}
	return total, nil
}

// memTotal is MemTotal of /proc/meminfo, in bytes.
func memTotal() (int64, error) {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "MemTotal:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("parse MemTotal: %w", err)
			}
			return kb * 1024, nil
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("no MemTotal in /proc/meminfo")
}
