// Package kalla holds Kalla's domain: the reconciliation job, its sources and
// filters, the result, and the interfaces the adapters implement (Engine,
// Source). It imports no database driver or SDK, so it builds without cgo and
// its tests run in seconds; concrete implementations live in the subpackages
// (duckdb, postgres, ...) and are wired together only in cmd/kallad.
package kalla
