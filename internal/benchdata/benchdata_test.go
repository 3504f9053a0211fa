package benchdata

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"testing"
)

// TestGenerateMatchesDesign checks that the files hold what Expected says:
// the match run on them by DuckDB gives the design's counts, and a second
// Generate reuses the files.
func TestGenerateMatchesDesign(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	var logs []string
	logf := func(format string, args ...any) { logs = append(logs, fmt.Sprintf(format, args...)) }
	d, err := Generate(ctx, dir, 2000, logf)
	if err != nil {
		t.Fatal(err)
	}
	var got Counts
	err = withDuckDB(ctx, func(conn *sql.Conn) error {
		for _, s := range []string{
			"CREATE MACRO tolerance_match(a, b, t) AS abs(a - b) <= t",
			"CREATE VIEW " + LeftAlias + " AS SELECT * FROM read_parquet(" + Quote(d.InvoicesParquet) + ")",
			"CREATE VIEW " + RightAlias + " AS SELECT * FROM read_parquet(" + Quote(d.PaymentsParquet) + ")",
			"CREATE TABLE m AS " + MatchSQL,
		} {
			if _, err := conn.ExecContext(ctx, s); err != nil {
				return fmt.Errorf("%s: %w", s, err)
			}
		}
		return conn.QueryRowContext(ctx, "SELECT (SELECT count(*) FROM m), "+
			"(SELECT count(*) FROM "+LeftAlias+" WHERE invoice_id NOT IN (SELECT invoice_id FROM m)), "+
			"(SELECT count(*) FROM "+RightAlias+" WHERE payment_id NOT IN (SELECT payment_id FROM m))").
			Scan(&got.Matched, &got.UnmatchedLeft, &got.UnmatchedRight)
	})
	if err != nil {
		t.Fatal(err)
	}
	if got != d.Expected {
		t.Errorf("DuckDB counts %s, design %s", got, d.Expected)
	}
	if _, err := Generate(ctx, dir, 2000, logf); err != nil {
		t.Fatal(err)
	}
	if last := logs[len(logs)-1]; !strings.HasPrefix(last, "reusing") {
		t.Errorf("second Generate logged %q, want reuse", last)
	}
}
