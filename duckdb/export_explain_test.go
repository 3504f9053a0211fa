package duckdb

// SetExplainFromPairs turns explaining from each rule's own pairs on or
// off (off: the unmatched rows are joined again to the other side) and
// returns a func that restores it. Tests that call it must not run in
// parallel with other tests that explain.
func SetExplainFromPairs(on bool) (restore func()) {
	old := explainFromPairs
	explainFromPairs = on
	return func() { explainFromPairs = old }
}
