package s3_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	_ "github.com/duckdb/duckdb-go/v2"
	"github.com/klauspost/compress/zstd"

	"github.com/kalla-dev/kalla"
	"github.com/kalla-dev/kalla/duckdb"
	"github.com/kalla-dev/kalla/file"
	"github.com/kalla-dev/kalla/s3"
)

// reconcileData makes invoices and payments CSVs: most payments match an
// invoice within 0.01, some are off by more, some name no invoice, and the
// customer names hold commas, quotes and newlines.
func reconcileData(n int) (invoices []byte, payments [3][]byte) {
	var inv bytes.Buffer
	inv.WriteString("invoice_id,customer,issued_on,amount,currency\n")
	var pay [3]bytes.Buffer
	for i := range pay {
		pay[i].WriteString("payment_id,invoice_ref,paid_on,amount,payer\n")
	}
	for i := range n {
		cents := 1000 + (i*7919)%500000
		fmt.Fprintf(&inv, "INV-%06d,\"Customer %d, \"\"Ltd\"\"\nDept %d\",2026-10-%02d,%d.%02d,EUR\n",
			i, i%113, i%5, 1+i%28, cents/100, cents%100)
		delta := 0
		switch i % 10 {
		case 7:
			continue // unpaid
		case 8:
			delta = 1 // within tolerance
		case 9:
			delta = 500 // off by 5.00
		}
		paid := cents + delta
		fmt.Fprintf(&pay[i%3], "PAY-%06d,INV-%06d,2026-11-%02d,%d.%02d,\"Payer %d\"\n", i, i, 1+i%28, paid/100, paid%100, i%113)
	}
	for i := range n / 20 {
		fmt.Fprintf(&pay[i%3], "PAY-X%05d,INV-NONE,2026-11-01,1.00,Stranger\n", i)
	}
	for i := range pay {
		payments[i] = pay[i].Bytes()
	}
	return inv.Bytes(), payments
}

// reconcileJob is the job run on both local files and S3.
func reconcileJob(left, right, out string) *kalla.Job {
	return &kalla.Job{
		MatchSQL: "SELECT i.invoice_id, p.payment_id, i.customer, i.amount AS invoice_amount, p.amount AS paid_amount, p.paid_on " +
			"FROM left_src i JOIN right_src p ON p.invoice_ref = i.invoice_id AND tolerance_match(i.amount, p.amount, 0.01)",
		Sources: []kalla.SourceSpec{
			{Alias: "left_src", URI: left, Filters: []kalla.Filter{{Column: "amount", Op: kalla.OpGte, Value: json.RawMessage(`"15.00"`)}}},
			{Alias: "right_src", URI: right},
		},
		OutputPath:  out,
		PrimaryKeys: map[string][]string{"left_src": {"invoice_id"}, "right_src": {"payment_id"}},
	}
}

// newRunner returns a Runner on the real engine with the file and S3
// adapters, as cmd/kallad wires them.
func newRunner(t testing.TB, c *s3.Client) *kalla.Runner {
	t.Helper()
	logger := slog.New(slog.DiscardHandler)
	if _, ok := t.(*testing.B); ok && testing.Verbose() {
		logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	engine, err := duckdb.Open(duckdb.Config{Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { engine.Close() })
	sources := kalla.NewSourceRegistry()
	sources.Register(file.OpenSource, "file")
	sources.Register(c.OpenSource, "s3")
	outputs := kalla.NewOutputRegistry()
	outputs.Register(file.OpenOutput, "file")
	outputs.Register(c.OpenOutput, "s3")
	return &kalla.Runner{Engine: engine, Sources: sources, Outputs: outputs, Logger: logger}
}

func TestReconcileOnS3EqualsLocal(t *testing.T) {
	t.Parallel()
	// Small ranges and pages, so that rows straddle range boundaries and
	// prefixes take several pages. (The results are smaller than S3's
	// smallest part: output_test.go covers multipart uploads.)
	c, b := setup(t, s3.Config{RangeSize: 4096, PageSize: 2, Concurrency: 4})
	b.srv.CreateBucket(t, "results")
	runner := newRunner(t, c)
	ctx := context.Background()

	local := t.TempDir()
	invoices, payments := reconcileData(3000)
	put := func(name string, data []byte) {
		path := filepath.Join(local, name)
		os.MkdirAll(filepath.Dir(path), 0o755)
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		b.srv.Put(t, "data", name, data)
	}
	put("csv/invoices.csv", invoices)
	var gz bytes.Buffer
	w := gzip.NewWriter(&gz)
	w.Write(invoices)
	w.Close()
	put("gz/invoices.csv.gz", gz.Bytes())
	enc, _ := zstd.NewWriter(nil)
	put("zst/invoices.csv.zst", enc.EncodeAll(invoices, nil))
	enc.Close()
	for i, p := range payments {
		put(fmt.Sprintf("csv/payments/part-%d.csv", i), p)
	}
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	toParquet := func(from, to string) {
		os.MkdirAll(filepath.Join(local, filepath.Dir(to)), 0o755)
		q := fmt.Sprintf("COPY (SELECT * FROM read_csv('%s', types = {'amount': 'DECIMAL(18,2)'})) TO '%s' (FORMAT parquet)",
			filepath.Join(local, from), filepath.Join(local, to))
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
		data, _ := os.ReadFile(filepath.Join(local, to))
		b.srv.Put(t, "data", to, data)
	}
	toParquet("csv/invoices.csv", "pq/invoices.parquet")
	for i := range payments {
		toParquet(fmt.Sprintf("csv/payments/part-%d.csv", i), fmt.Sprintf("pq/payments/part-%d.parquet", i))
	}

	for _, tc := range []struct{ name, left, right, localRight string }{
		{"csv", "csv/invoices.csv", "csv/payments/", "csv/payments/*.csv"},
		{"gzip csv", "gz/invoices.csv.gz", "csv/payments/part-*.csv", "csv/payments/part-*.csv"},
		{"zstd csv", "zst/invoices.csv.zst", "csv/payments/", "csv/payments/*.csv"},
		{"parquet", "pq/invoices.parquet", "pq/payments/", "pq/payments/*.parquet"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			localOut := filepath.Join(t.TempDir(), "out")
			want, err := runner.Run(ctx, reconcileJob(filepath.Join(local, tc.left), filepath.Join(local, tc.localRight), localOut), nil)
			if err != nil {
				t.Fatalf("local job: %v", err)
			}
			s3Out := "s3://results/" + strings.ReplaceAll(tc.name, " ", "-")
			got, err := runner.Run(ctx, reconcileJob("s3://data/"+tc.left, "s3://data/"+tc.right, s3Out), nil)
			if err != nil {
				t.Fatalf("S3 job: %v", err)
			}
			if want.MatchedCount == 0 || want.UnmatchedLeftCount == 0 || want.UnmatchedRightCount == 0 {
				t.Fatalf("degenerate test data: %+v", want)
			}
			if got.MatchedCount != want.MatchedCount || got.UnmatchedLeftCount != want.UnmatchedLeftCount ||
				got.UnmatchedRightCount != want.UnmatchedRightCount || got.LeftCount != want.LeftCount || got.RightCount != want.RightCount {
				t.Fatalf("S3 counts %+v, local %+v", got, want)
			}
			if got.OutputPaths.Matched != s3Out+"/matched.parquet" {
				t.Errorf("output path %s", got.OutputPaths.Matched)
			}
			var summary kalla.Result
			if err := json.Unmarshal(b.srv.Get(t, "results", strings.TrimPrefix(s3Out, "s3://results/")+"/summary.json"), &summary); err != nil ||
				summary.RunID != got.RunID || summary.MatchedCount != got.MatchedCount {
				t.Errorf("summary.json on S3 = %+v (%v), want the run's result", summary, err)
			}
			for _, name := range []string{kalla.MatchedFile, kalla.UnmatchedLeftFile, kalla.UnmatchedRightFile} {
				downloaded := filepath.Join(t.TempDir(), name)
				os.WriteFile(downloaded, b.srv.Get(t, "results", strings.TrimPrefix(s3Out, "s3://results/")+"/"+name), 0o644)
				wantRows := parquetRows(t, db, filepath.Join(localOut, name))
				gotRows := parquetRows(t, db, downloaded)
				if !reflect.DeepEqual(gotRows, wantRows) {
					t.Errorf("%s: S3 result has %d rows, local %d; they differ", name, len(gotRows), len(wantRows))
				}
			}
			if ops := countOps(b.srv); ops["ListObjectsV2"] < 2 {
				t.Errorf("want paged listings, got %v", ops)
			}
			t.Logf("%s: %d matched, %d+%d unmatched, row for row equal", tc.name, got.MatchedCount, got.UnmatchedLeftCount, got.UnmatchedRightCount)
		})
	}
}

// parquetRows returns the schema and the rows of a Parquet file as JSON,
// sorted, for comparison row for row.
func parquetRows(t testing.TB, db *sql.DB, path string) []string {
	t.Helper()
	from := fmt.Sprintf("read_parquet('%s')", path)
	out := []string{}
	rows, err := db.Query("SELECT column_name || ' ' || column_type FROM (DESCRIBE SELECT * FROM " + from + ")")
	if err != nil {
		t.Fatalf("describe %s: %v", path, err)
	}
	for rows.Next() {
		var s string
		rows.Scan(&s)
		out = append(out, "column "+s)
	}
	rows.Close()
	rows, err = db.Query("SELECT to_json(t)::VARCHAR AS j FROM " + from + " t ORDER BY j")
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	defer rows.Close()
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	return out
}
