package main

import (
	"flag"
	"fmt"

	"github.com/kalla-dev/kalla/cluster"
)

// replicasFlag registers --nats-replicas: the replication factor of every
// JetStream asset the scheduler creates (job store and its list, job queue,
// executor task queue and results, membership). docs/operations.md ("High availability")
// describes it for operators.
func replicasFlag(fs *flag.FlagSet, p *int) error {
	v, err := envInt(1, "KALLA_NATS_REPLICAS")
	fs.IntVar(p, "nats-replicas", v, "copies JetStream keeps of the job store, queues and membership on a NATS cluster; 3 survives the loss of one server; only with --nats-url (env KALLA_NATS_REPLICAS)")
	return err
}

// checkReplicas refuses a factor JetStream cannot keep, and more than one
// copy on the embedded server, which is a single server.
func checkReplicas(n int, natsURL string) error {
	switch {
	case n < 1 || n > cluster.MaxReplicas:
		return fmt.Errorf("--nats-replicas %d: must be between 1 and %d", n, cluster.MaxReplicas)
	case n > 1 && natsURL == "":
		return fmt.Errorf("--nats-replicas %d: the embedded NATS server is a single server and keeps one copy; replicas need a NATS cluster of at least %d servers given with --nats-url", n, n)
	}
	return nil
}
