package cluster

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// The autoscaling signal. An executor autoscaler that starts from zero
// cannot wait for tasks to queue: with no executor alive the scheduler runs
// jobs itself, and tasks only queue once executors exist. So demand counts
// the work executors could take now, whether or not any is there:
//
//	kallad_executor_demand = jobs waiting in the queue
//	                       + jobs running here because no executor was alive
//	                       + executor tasks queued + executor tasks running
//
// It is 0 only when nothing runs or waits, and counts running tasks so that
// executors busy with tasks are not scaled in.
var (
	demandDesc = prometheus.NewDesc("kallad_executor_demand",
		"Work executors could take: jobs waiting + jobs running in the scheduler for want of executors + executor tasks queued or running. KEDA scales executors on it.", nil, nil)
	localDesc = prometheus.NewDesc("kallad_jobs_running_local",
		"Jobs running in this scheduler process because no executor was alive when they started.", nil, nil)
	slotsDesc = prometheus.NewDesc("kallad_job_slots",
		"Jobs this scheduler runs at once (--max-jobs); it is saturated when kallad_active_jobs reaches it.", nil, nil)
)

// RegisterScaleMetrics registers kallad_executor_demand,
// kallad_jobs_running_local and kallad_job_slots on reg. The queues are
// read at scrape time, so demand covers the whole cluster's queues and
// this process's local jobs.
func RegisterScaleMetrics(reg prometheus.Registerer, queue *Queue, tasks *TaskQueue, co *Coordinator, slots int) error {
	if queue == nil || tasks == nil || co == nil {
		return errors.New("scale metrics: queue, tasks and coordinator are required")
	}
	return reg.Register(&scaleCollector{queue: queue, tasks: tasks, co: co, slots: slots})
}

type scaleCollector struct {
	queue *Queue
	tasks *TaskQueue
	co    *Coordinator
	slots int
}

func (c *scaleCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- demandDesc
	ch <- localDesc
	ch <- slotsDesc
}

func (c *scaleCollector) Collect(ch chan<- prometheus.Metric) {
	local := c.co.LocalRunning()
	ch <- prometheus.MustNewConstMetric(localDesc, prometheus.GaugeValue, float64(local))
	ch <- prometheus.MustNewConstMetric(slotsDesc, prometheus.GaugeValue, float64(c.slots))
	demand, err := c.demand(local)
	if err != nil {
		// No value rather than a wrong one: the scrape reports the error.
		ch <- prometheus.NewInvalidMetric(demandDesc, err)
		return
	}
	ch <- prometheus.MustNewConstMetric(demandDesc, prometheus.GaugeValue, float64(demand))
}

func (c *scaleCollector) demand(local int) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	qs, err := c.queue.Stats(ctx)
	if err != nil {
		return 0, err
	}
	ts, err := c.tasks.Stats(ctx)
	if err != nil {
		return 0, err
	}
	return qs.Depth + local + ts.Queued + ts.Running, nil
}
