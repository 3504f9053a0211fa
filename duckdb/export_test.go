package duckdb

import "context"

// DisableSandbox turns the engine's SQL sandbox off, so tests can prove
// that the lockdown refuses escapes on its own.
func DisableSandbox(e *Engine) { e.unchecked = true }

// Exec runs a statement on the session's connection, as a hostile
// statement that got past the sandbox would run.
func (s *Session) Exec(ctx context.Context, query string) error {
	_, err := s.conn.ExecContext(ctx, query)
	return err
}

// QueryRow scans the one value query returns.
func (s *Session) QueryRow(ctx context.Context, query string, dest any) error {
	return s.conn.QueryRowContext(ctx, query).Scan(dest)
}

// SetGreedy sets the knobs of the exclusive assignment (see greedyRounds
// and greedyWalkBelow) and returns a func that restores them. Tests that
// call it must not run in parallel with other tests that reconcile.
func SetGreedy(rounds int, walkBelow int64) (restore func()) {
	oldRounds, oldBelow := greedyRounds, greedyWalkBelow
	greedyRounds, greedyWalkBelow = rounds, walkBelow
	return func() { greedyRounds, greedyWalkBelow = oldRounds, oldBelow }
}

// GreedyDefaults returns the knobs' values as shipped.
func GreedyDefaults() (rounds int, walkBelow int64) { return greedyRounds, greedyWalkBelow }
