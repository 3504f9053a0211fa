// Package conformance holds end-to-end tests that run whole jobs through the
// real engine and adapters against a real Postgres, and compare Kalla's
// results with what Postgres itself computes for the same SQL.
package conformance
