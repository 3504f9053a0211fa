// Package kalla holds Kalla's domain: one reconciliation. A Job names two
// sources (SourceSpec, with Filters), a match_sql and an output; Runner
// carries it out in one process, driving an Engine Session through staging,
// matching and writing, and returns a Result, or a StageError naming the
// stage that failed (user errors wrap a ValidationError naming the field).
// Sources and outputs are opened from their URIs through registries that
// cmd/kallad fills.
//
// The package imports no database driver or SDK, so it builds without cgo
// and its tests run in seconds; concrete implementations live in the
// subpackages (duckdb, postgres, file, s3) and are wired together only in
// cmd/kallad. Running one job as tasks on several processes is package
// distributed; carrying those tasks and the scheduler's jobs over NATS is
// package cluster.
package kalla
