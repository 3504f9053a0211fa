package cluster

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// TaskMetrics are the scheduler's metrics of distributed jobs: their tasks,
// the rows and bytes those move through staging, and the phases.
type TaskMetrics struct {
	Redelivered   prometheus.Counter
	RowsShuffled  prometheus.Counter
	BytesShuffled prometheus.Counter
	// PartialBytes are the match tasks' partial results, exchanged
	// through staging for the merge: with sources read in place, the only
	// data that moves between executors.
	PartialBytes prometheus.Counter
	// TaskDuration is the executors' time per task, PhaseDuration the
	// wall time of each phase of a job (plan, stage, match, merge, job).
	TaskDuration  *prometheus.HistogramVec
	PhaseDuration *prometheus.HistogramVec
}

var durationBuckets = []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800}

// NewTaskMetrics registers the metrics on reg. The queue's gauges and
// the executor count are read at scrape time.
func NewTaskMetrics(reg prometheus.Registerer, tasks *TaskQueue, members *Members, executors prometheus.Gauge) (*TaskMetrics, error) {
	m := &TaskMetrics{
		Redelivered:   counter("kallad_tasks_redelivered_total", "Executor task deliveries beyond the first (an executor died or a task was retried)."),
		RowsShuffled:  counter("kallad_rows_shuffled_total", "Source rows written to staging partitions."),
		BytesShuffled: counter("kallad_shuffle_bytes_total", "Bytes of staging partitions written."),
		PartialBytes:  counter("kallad_partial_result_bytes_total", "Bytes of partial results match tasks wrote to staging for the merge."),
		TaskDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "kallad_task_duration_seconds", Help: "Executor time per task, by kind.", Buckets: durationBuckets,
		}, []string{"kind"}),
		PhaseDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "kallad_cluster_stage_duration_seconds", Help: "Wall time of each phase of a distributed job.", Buckets: durationBuckets,
		}, []string{"stage"}),
	}
	if err := register(reg, m.Redelivered, m.RowsShuffled, m.BytesShuffled, m.PartialBytes, m.TaskDuration, m.PhaseDuration,
		&taskCollector{tasks: tasks, members: members, executors: executors}); err != nil {
		return nil, err
	}
	return m, nil
}

var (
	tasksQueuedDesc  = prometheus.NewDesc("kallad_tasks_queued", "Executor tasks waiting for an executor.", nil, nil)
	tasksRunningDesc = prometheus.NewDesc("kallad_tasks_running", "Executor tasks delivered and not yet acknowledged.", nil, nil)
)

// taskCollector reads the task queue and the membership at scrape time and
// keeps kallad_executors_connected current.
type taskCollector struct {
	tasks     *TaskQueue
	members   *Members
	executors prometheus.Gauge
}

func (c *taskCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- tasksQueuedDesc
	ch <- tasksRunningDesc
}

func (c *taskCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if execs, err := c.members.Executors(ctx); err == nil && c.executors != nil {
		c.executors.Set(float64(len(execs)))
	}
	st, err := c.tasks.Stats(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(tasksQueuedDesc, err)
		return
	}
	ch <- prometheus.MustNewConstMetric(tasksQueuedDesc, prometheus.GaugeValue, float64(st.Queued))
	ch <- prometheus.MustNewConstMetric(tasksRunningDesc, prometheus.GaugeValue, float64(st.Running))
}
