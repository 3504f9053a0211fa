// Package distributed runs one reconciliation as tasks that several
// processes share: a plan, stage tasks that hash-partition each source into
// Parquet files, one match task per partition, and a merge that writes the
// three result files. Each task produces exactly what the same part of
// kalla.Runner.Run produces, so a distributed job's results equal a local
// run's.
//
// The boundary, from the domain outwards:
//
//   - kalla (the root) is one reconciliation in one process: the job, its
//     sources and filters, the engine and its Session, the result, errors,
//     and Runner, which carries out a job from start to end. Sources that
//     can be read in splits say so there (kalla.SplittableSource and
//     kalla.SplittableFetch), as part of the Source seam.
//   - distributed (this package) is what a task of a split job is and does:
//     its kinds and payloads (PlanSpec, StageSpec, PartitionSpec,
//     MergeSpec), their bodies on a Runner, the Session an engine offers to
//     run them (duckdb implements it), the Staging through which tasks
//     exchange files and that staging's layout (layout.go, the one place
//     that names its folders). It imports only the root: no driver, no
//     NATS, and it moves nothing between processes.
//   - cluster is the NATS fabric: the job store and queues, membership, the
//     executor loop that takes a task, heartbeats it, runs it here and
//     reports its result, and the coordinator that issues a job's tasks in
//     order and waits for their results.
package distributed
