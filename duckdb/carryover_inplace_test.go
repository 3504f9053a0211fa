package duckdb

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/kalla-dev/kalla"
	"github.com/kalla-dev/kalla/file"
	"github.com/kalla-dev/kalla/internal/kallatest/ducktest"
)

// The carried rows are read in place from the previous run's Parquet file,
// never copied: once today's rows are loaded, the session's tables hold one
// row per carried key that today's source has again, and nothing else, so
// a large carried set costs no memory of its own. The alias still sees
// every row once: today's 100, and the 90 carried rows whose key is not
// sent again.
func TestCarriedRowsReadInPlace(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	today, prev := filepath.Join(dir, "today.parquet"), filepath.Join(dir, "prev.parquet")
	ducktest.Query(t, fmt.Sprintf("COPY (SELECT 'K' || i AS id, CAST(i AS DECIMAL(18,2)) AS amount FROM range(100) r(i)) TO '%s' (FORMAT parquet)", today))
	ducktest.Query(t, fmt.Sprintf(`COPY (SELECT 'K' || i AS id, CAST(i AS DECIMAL(18,2)) AS amount, 'run1' AS _kalla_first_seen_run,
		DATE '2026-01-01' AS _kalla_first_seen_at, 1::INTEGER AS _kalla_runs_open, 0::INTEGER AS _kalla_age_days
		FROM range(90, 190) r(i)) TO '%s' (FORMAT parquet)`, prev))

	eng, err := Open(Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close() })
	ks, err := eng.NewSession(ctx, dir+string(filepath.Separator))
	if err != nil {
		t.Fatal(err)
	}
	defer ks.Close()
	s := ks.(*Session)
	src, err := file.OpenSource(ctx, today)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	carried, err := file.OpenSource(ctx, prev)
	if err != nil {
		t.Fatal(err)
	}
	defer carried.Close()
	if _, err := s.Attach(ctx, "left_src", src, kalla.Whole, nil); err != nil {
		t.Fatal(err)
	}
	spec := kalla.CarrySpec{Side: "left", File: kalla.UnmatchedLeftFile, RunID: "run2", AsOf: "2026-01-02", Keys: []string{"id"}}
	if err := s.Carry(ctx, "left_src", carried, spec); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Load(ctx, "left_src", nil); err != nil {
		t.Fatal(err)
	}
	if err := s.CarryLoaded(ctx, "left_src"); err != nil {
		t.Fatal(err)
	}

	rows, err := s.conn.QueryContext(ctx, "SELECT table_name FROM duckdb_tables() WHERE schema_name = $1", s.schema)
	if err != nil {
		t.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			t.Fatal(err)
		}
		tables = append(tables, name)
	}
	rows.Close()
	var held int64
	for _, name := range tables {
		n, err := s.count(ctx, s.qualified(name))
		if err != nil {
			t.Fatal(err)
		}
		held += n
	}
	if held != 10 {
		t.Errorf("the session's tables %v hold %d rows, want 10 (the carried keys K90..K99 sent again)", tables, held)
	}

	var total, seen, replacedAge int64
	q := `SELECT count(*), count(*) FILTER (_kalla_runs_open = 2), count(*) FILTER (_kalla_runs_open = 2 AND _kalla_first_seen_run = 'run1' AND _kalla_age_days = 1) FROM ` + s.qualified("left_src")
	if err := s.conn.QueryRowContext(ctx, q).Scan(&total, &seen, &replacedAge); err != nil {
		t.Fatal(err)
	}
	if total != 190 || seen != 100 || replacedAge != 100 {
		t.Errorf("the alias has %d rows, %d seen before, %d of them from run1 aged 1 day; want 190, 100, 100", total, seen, replacedAge)
	}
	c, err := s.CarryCounts(ctx, "left_src", "")
	if err != nil {
		t.Fatal(err)
	}
	if c.Carried != 100 || c.Replaced != 10 || c.Expired != 0 {
		t.Errorf("carried %+v, want 100 carried, 10 replaced, 0 expired", c)
	}
}
