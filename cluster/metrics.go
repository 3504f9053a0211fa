package cluster

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kalla-dev/kalla"
)

// Metrics are the scheduler's Prometheus metrics, registered on a registry the
// caller owns. Names follow the unified plan (kallad_active_jobs,
// kallad_jobs_*_total) and, for the queue, the older plan's kalla_* set.
type Metrics struct {
	ActiveJobs prometheus.Gauge
	Completed  prometheus.Counter
	Failed     prometheus.Counter
	Cancelled  prometheus.Counter
	Reclaimed  prometheus.Counter
	// Exhausted counts the jobs failed for good because their runner died
	// on every attempt; the seeds' reaper counted them under this name.
	Exhausted     prometheus.Counter
	RowsProcessed prometheus.Counter
	StageDuration *prometheus.HistogramVec
	Executors     prometheus.Gauge
}

// NewMetrics registers the metrics on reg. queue, if not nil, is asked for
// its depth and oldest wait on every scrape (the autoscaler scales executors
// on kallad_queue_depth).
func NewMetrics(reg prometheus.Registerer, queue *Queue) (*Metrics, error) {
	m := &Metrics{
		ActiveJobs:    gauge("kallad_active_jobs", "Jobs currently running in this process."),
		Completed:     counter("kallad_jobs_completed_total", "Jobs completed."),
		Failed:        counter("kallad_jobs_failed_total", "Jobs failed (cancelled jobs are counted apart)."),
		Cancelled:     counter("kallad_jobs_cancelled_total", "Jobs cancelled on request."),
		Reclaimed:     counter("kallad_jobs_reclaimed_total", "Jobs retried after their runner died."),
		Exhausted:     counter("kalla_reaper_jobs_failed_total", "Jobs failed for good because their runner died on every attempt (--max-attempts); also counted in kallad_jobs_failed_total."),
		RowsProcessed: counter("kallad_rows_processed_total", "Source rows read by completed jobs."),
		StageDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "kallad_stage_duration_seconds",
			Help:    "Time jobs spent in each stage.",
			Buckets: []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600},
		}, []string{"stage"}),
		Executors: gauge("kallad_executors_connected", "Executors connected to this scheduler."),
	}
	cs := []prometheus.Collector{m.ActiveJobs, m.Completed, m.Failed, m.Cancelled, m.Reclaimed, m.Exhausted, m.RowsProcessed, m.StageDuration, m.Executors}
	if queue != nil {
		cs = append(cs, &queueCollector{queue: queue})
	}
	if err := register(reg, cs...); err != nil {
		return nil, err
	}
	return m, nil
}

func counter(name, help string) prometheus.Counter {
	return prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
}

func gauge(name, help string) prometheus.Gauge {
	return prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help})
}

// register registers every collector on reg, stopping at the first error.
func register(reg prometheus.Registerer, cs ...prometheus.Collector) error {
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}

func (m *Metrics) finished(state kalla.JobState, res *kalla.Result) {
	if m == nil {
		return
	}
	switch state {
	case kalla.JobCompleted:
		m.Completed.Inc()
		if res != nil {
			m.RowsProcessed.Add(float64(res.LeftCount + res.RightCount))
		}
	case kalla.JobFailed:
		m.Failed.Inc()
	case kalla.JobCancelled:
		m.Cancelled.Inc()
	}
}

var (
	queueDepthDesc = prometheus.NewDesc("kallad_queue_depth",
		"Accepted jobs that no runner has taken yet.", nil, nil)
	queueWaitDesc = prometheus.NewDesc("kallad_queue_oldest_wait_seconds",
		"How long the oldest job not yet taken has waited.", nil, nil)
)

// queueCollector reads the queue's state at scrape time, so the numbers are
// those of the whole cluster, not of this process.
type queueCollector struct{ queue *Queue }

func (c *queueCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- queueDepthDesc
	ch <- queueWaitDesc
}

func (c *queueCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	st, err := c.queue.Stats(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(queueDepthDesc, err)
		return
	}
	ch <- prometheus.MustNewConstMetric(queueDepthDesc, prometheus.GaugeValue, float64(st.Depth))
	ch <- prometheus.MustNewConstMetric(queueWaitDesc, prometheus.GaugeValue, st.OldestWait.Seconds())
}
