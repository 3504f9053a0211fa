package postgres

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/kalla-dev/kalla"
)

// pageRange is a range of heap pages [lo, hi); lo < 0 has no lower bound,
// hi < 0 no upper bound.
type pageRange struct{ lo, hi int64 }

// where returns the range as a ctid condition, or "" for the whole table.
func (r pageRange) where() string {
	var c []string
	if r.lo >= 0 {
		c = append(c, fmt.Sprintf("ctid >= '(%d,0)'::tid", r.lo))
	}
	if r.hi >= 0 {
		c = append(c, fmt.Sprintf("ctid < '(%d,0)'::tid", r.hi))
	}
	return strings.Join(c, " AND ")
}

// Scan implements kalla.RowReader for the whole table. It reads the table in up to parallelism
// ranges of ctid pages, each over its own connection and into its own
// RowWriter, all on one snapshot: a coordinating REPEATABLE READ transaction
// exports its snapshot and every other connection imports it, so rows
// committed during the scan are seen by no range, and each row is read
// exactly once. Errors from the filters are *kalla.ValidationError naming
// filters[i]; on any error every stream stops and the first error is
// returned.
func (s *Source) Scan(ctx context.Context, filters []kalla.Filter, parallelism int, sink kalla.RowSink) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(s.closing, cancel)()
	return s.scrub(s.scan(ctx, cancel, filters, parallelism, sink))
}

// scan does Scan's work; cancel cancels ctx, to stop every stream.
func (s *Source) scan(ctx context.Context, cancel context.CancelFunc, filters []kalla.Filter, parallelism int, sink kalla.RowSink) error {
	rel, err := s.relation(ctx)
	if err != nil {
		return err
	}
	fs, err := buildFilters(rel, filters)
	if err != nil {
		return err
	}
	conn, err := s.begin(ctx)
	if err != nil {
		return err
	}
	defer func() {
		// Read only: ending the transaction either way is the same. A
		// connection broken by cancellation is dropped, and the next call
		// reconnects.
		if conn.IsClosed() {
			s.conn = nil
			return
		}
		rctx, rcancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer rcancel()
		if _, rerr := conn.Exec(rctx, "ROLLBACK"); rerr != nil {
			s.dropConn()
		}
	}()
	if err := s.checkFilters(ctx, conn, fs, filters); err != nil {
		return err
	}
	ranges, err := s.plan(ctx, conn, rel, parallelism)
	if err != nil {
		return err
	}
	snapshot := ""
	if len(ranges) > 1 {
		if snapshot, err = exportSnapshot(ctx, conn, rel); err != nil {
			return err
		}
	}
	start := time.Now()
	rows, err := s.readRanges(ctx, cancel, rel, fs, ranges, conn, snapshot, sink)
	if err != nil {
		return err
	}
	s.log.Debug("scanned", "rows", rows, "streams", len(ranges), "filters", len(filters),
		"elapsed", time.Since(start).Round(time.Millisecond))
	return nil
}

// readRanges reads ranges in parallel streams on snapshot and returns the
// rows read. When conn is set, its transaction holds the snapshot and it
// reads the first range itself; every other range gets a connection that
// imports the snapshot. cancel stops every stream on the first error.
func (s *Source) readRanges(ctx context.Context, cancel context.CancelFunc, rel *relation, fs *filterSet, ranges []pageRange, conn *pgx.Conn, snapshot string, sink kalla.RowSink) (int64, error) {
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
		rows     atomic.Int64
	)
	fail := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		if firstErr == nil {
			firstErr = err
			cancel()
		}
	}
	for i := range ranges {
		if i == 0 && conn != nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			n, err := s.worker(ctx, rel, fs, ranges[i], snapshot, sink)
			rows.Add(n)
			if err != nil {
				fail(fmt.Errorf("read %s (range %d of %d): %w", rel.display, i+1, len(ranges), err))
			}
		}()
	}
	if conn != nil {
		n, err := s.stream(ctx, conn, rel, fs, ranges[0], sink)
		rows.Add(n)
		if err != nil {
			fail(fmt.Errorf("read %s (range 1 of %d): %w", rel.display, len(ranges), err))
		}
	}
	wg.Wait()
	if firstErr != nil {
		return rows.Load(), firstErr
	}
	return rows.Load(), ctx.Err()
}

// begin opens the coordinating transaction on the source's connection. A
// connection that died while idle (a server restart, an idle timeout) is
// replaced once.
func (s *Source) begin(ctx context.Context) (*pgx.Conn, error) {
	for attempt := 0; ; attempt++ {
		conn, err := s.coordinator(ctx)
		if err != nil {
			return nil, err
		}
		_, err = conn.Exec(ctx, beginSnapshot)
		if err == nil {
			return conn, nil
		}
		if !conn.IsClosed() || attempt > 0 || ctx.Err() != nil {
			s.dropConn()
			return nil, fmt.Errorf("begin snapshot on %s: %w", s.addr, err)
		}
		s.conn = nil
	}
}

// beginSnapshot starts the read-only transaction every read of a table
// runs in: one snapshot for all of its statements, to export or import.
const beginSnapshot = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"

// snapshotRe matches the ids pg_export_snapshot returns, which go into SQL
// text (SET TRANSACTION SNAPSHOT takes no parameter).
var snapshotRe = regexp.MustCompile(`^[0-9A-Fa-f]+(-[0-9A-Fa-f]+)+$`)

// exportSnapshot exports the snapshot of conn's transaction for other
// connections to import.
func exportSnapshot(ctx context.Context, conn *pgx.Conn, rel *relation) (string, error) {
	var snapshot string
	if err := conn.QueryRow(ctx, "SELECT pg_export_snapshot()").Scan(&snapshot); err != nil {
		return "", fmt.Errorf("export snapshot of %s: %w", rel.display, err)
	}
	if !snapshotRe.MatchString(snapshot) {
		return "", fmt.Errorf("export snapshot of %s: unexpected snapshot id %q", rel.display, snapshot)
	}
	return snapshot, nil
}

// checkFilters stores the filter operands on the coordinator's transaction,
// one filter at a time, so that an operand the column's type rejects ("abc"
// for an integer) is reported against its filter.
func (s *Source) checkFilters(ctx context.Context, conn *pgx.Conn, fs *filterSet, filters []kalla.Filter) error {
	for from := 0; from < len(fs.values); {
		to := from + 1
		for to < len(fs.values) && fs.owner[to] == fs.owner[from] {
			to++
		}
		if _, err := conn.Exec(ctx, fs.setSQL(from, to), fs.args(from, to)...); err != nil {
			var pgErr *pgconn.PgError
			if errors.As(err, &pgErr) && strings.HasPrefix(pgErr.Code, "22") {
				i := fs.owner[from]
				return kalla.Invalid(fmt.Sprintf("filters[%d].value", i), "does not fit column %q (%s): %s",
					filters[i].Column, fs.casts[from], pgErr.Message)
			}
			return fmt.Errorf("set filter operands: %w", err)
		}
		from = to
	}
	return nil
}

// plan splits the relation into up to parallelism page ranges.
func (s *Source) plan(ctx context.Context, conn *pgx.Conn, rel *relation, parallelism int) ([]pageRange, error) {
	whole := pageRange{-1, -1}
	if parallelism <= 1 || !splittable(rel) {
		return []pageRange{whole}, nil
	}
	pages, err := measure(ctx, conn, rel)
	if err != nil {
		return nil, err
	}
	return s.divide(whole, pages, parallelism), nil
}

// splittable reports whether rel can be read in ctid ranges: only a table
// (plain, partitioned or materialized view) on Postgres 14 or later scans a
// ctid range without reading the rest of the table.
func splittable(rel *relation) bool {
	return rel.major >= 14 && strings.ContainsRune("rpm", rune(rel.kind))
}

// measure returns the relation's size in heap pages.
func measure(ctx context.Context, conn *pgx.Conn, rel *relation) (int64, error) {
	sizeSQL := "SELECT pg_relation_size($1::oid::regclass) / current_setting('block_size')::int8"
	if rel.kind == 'p' {
		// Each partition is cut by the same page ranges: size them on the
		// largest.
		sizeSQL = "SELECT coalesce(max(pg_relation_size(relid)), 0) / current_setting('block_size')::int8 FROM pg_partition_tree($1::oid::regclass) WHERE isleaf"
	}
	var pages int64
	if err := conn.QueryRow(ctx, sizeSQL, rel.oid).Scan(&pages); err != nil {
		return 0, fmt.Errorf("measure %s: %w", rel.display, err)
	}
	return pages, nil
}

// divide cuts r, in a relation of pages heap pages, into up to n ranges of
// at least minRangePages each. An open bound of r (no lower or upper limit)
// stays open on the first or last range: pages added since they were
// counted belong to the last range.
func (s *Source) divide(r pageRange, pages int64, n int) []pageRange {
	lo, hi := max(r.lo, 0), r.hi
	if hi < 0 {
		hi = max(pages, lo)
	}
	k := int64(n)
	if s.minRangePages > 0 {
		k = min(k, (hi-lo)/s.minRangePages)
	}
	if k <= 1 {
		return []pageRange{r}
	}
	ranges := make([]pageRange, k)
	for i := range k {
		ranges[i] = pageRange{lo: lo + (hi-lo)*i/k, hi: lo + (hi-lo)*(i+1)/k}
	}
	ranges[0].lo, ranges[k-1].hi = r.lo, r.hi
	return ranges
}

// worker reads one range over a connection of its own, in a transaction that
// imports the coordinator's snapshot.
func (s *Source) worker(ctx context.Context, rel *relation, fs *filterSet, r pageRange, snapshot string, sink kalla.RowSink) (int64, error) {
	conn, err := s.connect(ctx)
	if err != nil {
		return 0, err
	}
	defer func() {
		cctx, ccancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer ccancel()
		conn.Close(cctx)
	}()
	// Two statements in one simple-protocol round trip: SET TRANSACTION
	// SNAPSHOT must come before any query of the transaction.
	begin := beginSnapshot + "; SET TRANSACTION SNAPSHOT '" + snapshot + "'"
	if _, err := conn.PgConn().Exec(ctx, begin).ReadAll(); err != nil {
		return 0, fmt.Errorf("import snapshot: %w", err)
	}
	if len(fs.values) > 0 {
		if _, err := conn.Exec(ctx, fs.setSQL(0, len(fs.values)), fs.args(0, len(fs.values))...); err != nil {
			return 0, fmt.Errorf("set filter operands: %w", err)
		}
	}
	return s.stream(ctx, conn, rel, fs, r, sink)
}

// stream copies one range in binary into a writer of its own and returns
// the rows written: a ColumnRowSink's writer (the engine's) takes each value
// typed, any other sink's Go values.
func (s *Source) stream(ctx context.Context, conn *pgx.Conn, rel *relation, fs *filterSet, r pageRange, sink kalla.RowSink) (int64, error) {
	var (
		w   interface{ Close() error }
		dec *copyDecoder
	)
	if cs, ok := sink.(kalla.ColumnRowSink); ok {
		cw, err := cs.NewColumnWriter(ctx)
		if err != nil {
			return 0, fmt.Errorf("open writer: %w", err)
		}
		w, dec = cw, newColumnDecoder(ctx, rel.cols, cw)
	} else {
		rw, err := sink.NewWriter(ctx)
		if err != nil {
			return 0, fmt.Errorf("open writer: %w", err)
		}
		w, dec = rw, newCopyDecoder(ctx, rel.cols, rw)
	}
	_, err := conn.PgConn().CopyTo(ctx, dec, copySQL(rel, fs, r))
	if err == nil {
		err = dec.finish()
	}
	if cerr := w.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("close writer: %w", cerr)
	}
	if err != nil && ctx.Err() != nil {
		// The copy failed because the scan was stopped: say so rather
		// than how the socket broke.
		return dec.rows, ctx.Err()
	}
	return dec.rows, err
}

// copySQL is the COPY of one range with the filters.
func copySQL(rel *relation, fs *filterSet, r pageRange) string {
	var b strings.Builder
	b.WriteString("COPY (SELECT ")
	for i, c := range rel.cols {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(c.selectExpr())
	}
	b.WriteString(" FROM ")
	b.WriteString(rel.ident)
	where := fs.where
	if w := r.where(); w != "" {
		where = append([]string{w}, where...)
	}
	if len(where) > 0 {
		b.WriteString(" WHERE ")
		b.WriteString(strings.Join(where, " AND "))
	}
	b.WriteString(") TO STDOUT (FORMAT binary)")
	return b.String()
}
