package distributed

import "time"

// ExecutorInfo describes a live executor, as GET /api/cluster lists it.
type ExecutorInfo struct {
	ID        string    `json:"id"`
	Host      string    `json:"host"`
	StartedAt time.Time `json:"started_at"`
	LastSeen  time.Time `json:"last_seen"`
	// Running is the number of tasks it runs now, MaxTasks how many it may.
	Running  int    `json:"running"`
	MaxTasks int    `json:"max_tasks"`
	Version  string `json:"version,omitempty"`
}
