package cluster

import "fmt"

// MaxReplicas is JetStream's bound on a stream's replication factor.
const MaxReplicas = 5

// checkReplicas defaults *n to 1 and refuses a factor JetStream cannot
// keep. what names the asset in the error.
func checkReplicas(what string, n *int) error {
	if *n == 0 {
		*n = 1
	}
	if *n < 1 || *n > MaxReplicas {
		return fmt.Errorf("%s config: Replicas %d must be between 1 and %d", what, *n, MaxReplicas)
	}
	return nil
}
