package duckdb

// SetGreedyLimitsForTest sets the rounds of mutual-best selection and the
// pair count under which the walk in Go takes over, and returns a func that
// restores them. Tests that call it must not run in parallel.
func SetGreedyLimitsForTest(rounds int, walkBelow int64) (restore func()) {
	r, w := greedyRounds, greedyWalkBelow
	greedyRounds, greedyWalkBelow = rounds, walkBelow
	return func() { greedyRounds, greedyWalkBelow = r, w }
}
