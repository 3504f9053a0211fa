// Package postgres reads a Postgres table or view as a kalla.Source read as
// rows (kalla.RowReader). Rows travel as binary COPY, decoded here into the
// Go values the engine expects, in parallel ctid ranges that all read one
// snapshot; filters are pushed into the server as parameters.
package postgres

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"

	"github.com/kalla-dev/kalla"
)

// defaultMinRangePages is the smallest share of a table worth a connection
// of its own: 1024 pages of 8 kB, some 8 MB or 50,000 narrow rows. Below it
// the connection and snapshot import cost more than the parallel read saves.
const defaultMinRangePages = 1024

// Config tunes how Postgres sources are read; the zero value reads with the
// defaults.
type Config struct {
	// MinRangePages is the fewest heap pages given a parallel stream, and a
	// cluster split, of their own; 0 means defaultMinRangePages. A smaller
	// share gives small tables parallel streams and cluster splits (the
	// multi-process tests use 2). kallad sets it from
	// --pg-min-range-pages (env KALLA_PG_MIN_RANGE_PAGES).
	MinRangePages int64
}

func (c Config) minRangePages() int64 {
	if c.MinRangePages > 0 {
		return c.MinRangePages
	}
	return defaultMinRangePages
}

// Source is a Postgres table or view, opened from
// postgres://user:pass@host:port/db?table=schema.name.
type Source struct {
	cfg     *pgx.ConnConfig
	table   tableRef
	addr    string   // host:port, for messages
	secrets []string // scrubbed from every error
	log     *slog.Logger

	// minRangePages is the fewest heap pages given a stream of their own;
	// tests lower it to split small tables.
	minRangePages int64

	closing context.Context // cancelled by Close, to stop a running Scan
	close   context.CancelFunc

	mu   sync.Mutex // serialises Columns, Scan and Close; guards the fields below
	conn *pgx.Conn  // the coordinating connection, nil until needed
	rel  *relation  // the table's columns, read once
	done bool
	held []func() error // end the transactions of unreleased splits
}

var _ kalla.RowReader = (*Source)(nil)

// Open opens the source at uri (postgres:// or postgresql://). It only
// checks the URI; Columns and Scan connect.
func Open(ctx context.Context, uri string) (kalla.Source, error) {
	return open(uri, false, Config{})
}

// open opens the source at uri, read as cfg says; trusted says the URI is
// the operator's (a named connection), not a job's.
func open(uri string, trusted bool, cfg Config) (kalla.Source, error) {
	conn, ref, secrets, err := parseURI(uri, trusted)
	if err != nil {
		return nil, err
	}
	// On cancellation, drop the socket at once (the caller returns without
	// waiting for the server) and ask the server to stop the query, so a
	// COPY of a filter that matches nothing does not scan on unobserved.
	conn.BuildContextWatcherHandler = func(c *pgconn.PgConn) ctxwatch.Handler { return &cancelHandler{conn: c} }
	s := &Source{
		cfg:           conn,
		table:         ref,
		addr:          net.JoinHostPort(conn.Host, strconv.Itoa(int(conn.Port))),
		secrets:       secrets,
		log:           slog.Default().With("source", "postgres", "table", ref.String()),
		minRangePages: cfg.minRangePages(),
	}
	s.closing, s.close = context.WithCancel(context.Background())
	return s, nil
}

// Close stops a running Scan and closes the connections. It is safe to call
// more than once.
func (s *Source) Close() error {
	s.close()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.done = true
	s.releaseHeld()
	s.dropConn()
	return nil
}

// Columns implements kalla.RowReader for the whole table. It connects, resolves the table and
// maps its column types; a missing table is a *kalla.ValidationError naming
// the uri.
func (s *Source) Columns(ctx context.Context) ([]kalla.Column, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rel, err := s.relation(ctx)
	if err != nil {
		return nil, s.scrub(err)
	}
	cols := make([]kalla.Column, len(rel.cols))
	for i, c := range rel.cols {
		cols[i] = kalla.Column{Name: c.name, Type: c.typ}
	}
	return cols, nil
}

// relation returns the table's description, reading it on first use.
func (s *Source) relation(ctx context.Context) (*relation, error) {
	return s.relationAs(ctx, nil)
}

// relationAs is relation, reading the types of inferred numeric columns
// from declared (see describe).
func (s *Source) relationAs(ctx context.Context, declared []kalla.Column) (*relation, error) {
	if s.done {
		return nil, errors.New("postgres source is closed")
	}
	if s.rel != nil {
		return s.rel, nil
	}
	conn, err := s.coordinator(ctx)
	if err != nil {
		return nil, err
	}
	rel, err := s.describe(ctx, conn, declared)
	if err != nil {
		if conn.IsClosed() {
			s.conn = nil
		}
		return nil, err
	}
	s.rel = rel
	return rel, nil
}

// coordinator returns the source's own connection, connecting if needed.
func (s *Source) coordinator(ctx context.Context) (*pgx.Conn, error) {
	if s.conn != nil && !s.conn.IsClosed() {
		return s.conn, nil
	}
	conn, err := s.connect(ctx)
	if err != nil {
		return nil, err
	}
	s.conn = conn
	return conn, nil
}

func (s *Source) dropConn() {
	if s.conn == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s.conn.Close(ctx)
	s.conn = nil
}

// connect opens a connection, translating failures into a message that names
// the server and the cause, never the password.
func (s *Source) connect(ctx context.Context) (*pgx.Conn, error) {
	conn, err := pgx.ConnectConfig(ctx, s.cfg)
	if err != nil {
		return nil, &connectError{addr: s.addr, cause: connectCause(ctx, err), err: err}
	}
	return conn, nil
}

// connectError is a failed connection: "connect to postgres at
// 127.0.0.1:5999: connection refused".
type connectError struct {
	addr  string
	cause string
	err   error
}

func (e *connectError) Error() string { return "connect to postgres at " + e.addr + ": " + e.cause }
func (e *connectError) Unwrap() error { return e.err }

// connectCause reduces pgx's connect error (which nests the dial, TLS and
// fallback attempts) to the reason a person can act on.
func connectCause(ctx context.Context, err error) string {
	var pgErr *pgconn.PgError
	var dnsErr *net.DNSError
	var errno syscall.Errno
	switch {
	case ctx.Err() != nil:
		return ctx.Err().Error()
	case errors.As(err, &pgErr):
		return pgErr.Message + " (SQLSTATE " + pgErr.Code + ")"
	case errors.As(err, &dnsErr):
		return dnsErr.Error()
	case errors.As(err, &errno):
		return errno.Error()
	case pgconn.Timeout(err):
		return "timed out"
	}
	for {
		next := errors.Unwrap(err)
		if next == nil {
			return err.Error()
		}
		err = next
	}
}

// scrub returns err with every form of the password removed from its text;
// errors.Is and errors.As still see the original.
func (s *Source) scrub(err error) error {
	if err == nil {
		return nil
	}
	msg := kalla.RedactText(err.Error(), s.secrets...)
	if msg == err.Error() {
		return err
	}
	var v *kalla.ValidationError
	if errors.As(err, &v) {
		return &kalla.ValidationError{Field: v.Field, Message: kalla.RedactText(v.Message, s.secrets...)}
	}
	return &scrubbedError{msg: msg, err: err}
}

type scrubbedError struct {
	msg string
	err error
}

func (e *scrubbedError) Error() string { return e.msg }
func (e *scrubbedError) Unwrap() error { return e.err }

// cancelHandler handles a cancelled context during a query: it expires the
// socket's deadline so the caller returns at once, and sends the server a
// cancel request so the backend stops too.
type cancelHandler struct {
	conn *pgconn.PgConn
}

func (h *cancelHandler) HandleCancel(context.Context) {
	h.conn.Conn().SetDeadline(time.Now())
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		h.conn.CancelRequest(ctx)
	}()
}

func (h *cancelHandler) HandleUnwatchAfterCancel() {
	h.conn.Conn().SetDeadline(time.Time{})
}
