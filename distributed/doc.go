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
//     and Runner, which carries out a job from start to end. Every source
//     splits and reads through the one kalla.Source interface.
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
//
// # Staging layout
//
// Tasks exchange files through a Staging, under keys that layout.go alone
// names. Keys are slash-separated, relative to the Staging's root:
//
//	cluster/<run id>/                   RunDir: every attempt of a run
//	    <attempt>/                      AttemptDir: one coordinator attempt
//	        stage/<side>-<k>/           StageDir: stage task k of source side
//	            p<p>/*.parquet          PartitionFolder: its rows of partition p
//	        match/p<p>/                 MatchDir: match task of partition p
//	            matched.parquet, unmatched_left.parquet, unmatched_right.parquet
//	            (expired_left.parquet, expired_right.parquet: carry-over)
//
// Each task writes only its own folder, which a retry of the task replaces;
// removing an attempt's folder stops its tasks still running.
package distributed
