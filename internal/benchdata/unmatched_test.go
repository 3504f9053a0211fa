package benchdata

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"testing"
)

// TestUnmatchedKeysMatchDuckDB checks the design's unmatched keys against
// the keys DuckDB leaves unmatched when it runs the match on the files.
func TestUnmatchedKeysMatchDuckDB(t *testing.T) {
	ctx := context.Background()
	d, err := Generate(ctx, t.TempDir(), 2000, func(string, ...any) {})
	if err != nil {
		t.Fatal(err)
	}
	var inv, pay []int64
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
		for _, q := range []struct {
			sql  string
			keys *[]int64
		}{
			{"SELECT invoice_id FROM " + LeftAlias + " WHERE invoice_id NOT IN (SELECT invoice_id FROM m) ORDER BY 1", &inv},
			{"SELECT payment_id FROM " + RightAlias + " WHERE payment_id NOT IN (SELECT payment_id FROM m) ORDER BY 1", &pay},
		} {
			rows, err := conn.QueryContext(ctx, q.sql)
			if err != nil {
				return err
			}
			for rows.Next() {
				var k int64
				if err := rows.Scan(&k); err != nil {
					rows.Close()
					return err
				}
				*q.keys = append(*q.keys, k)
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	gotInv, gotPay := UnmatchedKeys(2000)
	slices.Sort(gotInv)
	slices.Sort(gotPay)
	if len(inv) == 0 || len(pay) == 0 {
		t.Fatalf("DuckDB left %d invoices and %d payments unmatched: want some of each", len(inv), len(pay))
	}
	if !slices.Equal(gotInv, inv) {
		t.Errorf("UnmatchedKeys gave %d invoices, DuckDB %d (or different keys)", len(gotInv), len(inv))
	}
	if !slices.Equal(gotPay, pay) {
		t.Errorf("UnmatchedKeys gave %d payments, DuckDB %d (or different keys)", len(gotPay), len(pay))
	}
}
