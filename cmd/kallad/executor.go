package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"

	"github.com/nats-io/nuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/kalla-dev/kalla"
	"github.com/kalla-dev/kalla/cluster"
	"github.com/kalla-dev/kalla/distributed"
	kallahttp "github.com/kalla-dev/kalla/http"
)

// ExecutorCommand joins a scheduler's cluster and runs the tasks of
// distributed jobs: `kallad executor [flags]`.
type ExecutorCommand struct {
	// Stderr receives the logs and usage; nil means os.Stderr.
	Stderr io.Writer
}

type executorOptions struct {
	schedulerHost string
	schedulerPort int
	natsURL       string
	bindHost      string
	bindPort      int
	externalHost  string
	stagingPath   string
	maxTasks      int
	auth          *clusterAuthOptions
}

// Run parses args and works until ctx is cancelled; then it finishes its
// running tasks and leaves the cluster.
func (c *ExecutorCommand) Run(ctx context.Context, args []string) error {
	stderr := c.Stderr
	if stderr == nil {
		stderr = os.Stderr
	}
	d, err := newDaemonFlags("executor", stderr)
	if err != nil {
		return c.fail(stderr, err)
	}
	fs := d.fs
	o := &executorOptions{}
	o.schedulerPort, err = envInt(50050, "SCHEDULER_PORT", "GRPC_PORT")
	if err != nil {
		return c.fail(stderr, err)
	}
	// 0 by default, so that several executors on one host (the seed's
	// run_cluster_benchmark.sh starts two) do not fight over one port;
	// containers and Kubernetes set BIND_PORT=50051 for their probes.
	if o.bindPort, err = envInt(0, "BIND_PORT"); err != nil {
		return c.fail(stderr, err)
	}
	if o.maxTasks, err = envInt(1, "KALLA_MAX_TASKS"); err != nil {
		return c.fail(stderr, err)
	}
	hostname, _ := os.Hostname()
	fs.StringVar(&o.schedulerHost, "scheduler-host", env("localhost", "SCHEDULER_HOST"), "host of the scheduler's cluster port (env SCHEDULER_HOST)")
	fs.IntVar(&o.schedulerPort, "scheduler-port", o.schedulerPort, "the scheduler's cluster port, its --grpc-port (env SCHEDULER_PORT)")
	fs.StringVar(&o.natsURL, "nats-url", env("", "NATS_URL"), "join through this NATS cluster instead of the scheduler's embedded server (env NATS_URL)")
	fs.StringVar(&o.bindHost, "bind-host", env("0.0.0.0", "BIND_HOST"), "address of the executor's /health, /ready and /metrics (env BIND_HOST)")
	fs.IntVar(&o.bindPort, "bind-port", o.bindPort, "port of /health, /ready and /metrics; 0 picks a free one (logged: executor probes listening), -1 serves none (env BIND_PORT)")
	fs.StringVar(&o.externalHost, "external-host", env(hostname, "EXTERNAL_HOST"), "the host this executor announces in GET /api/cluster (env EXTERNAL_HOST)")
	fs.StringVar(&o.stagingPath, "staging-path", env("./staging", "STAGING_PATH"), "where executors exchange staged data, the scheduler's --staging-path: a folder every process shares, or an s3://bucket/prefix (env STAGING_PATH)")
	fs.IntVar(&o.maxTasks, "max-tasks", o.maxTasks, "tasks run at once; DuckDB already uses every core for one (env KALLA_MAX_TASKS)")
	o.auth = clusterAuthFlags(fs, false)
	seed := seedExecutorFlags(fs)
	if err := d.parse(args, "Joins a scheduler's cluster and runs parts of its jobs.\nKALLA_CLUSTER_TOKEN, if set, is sent to the scheduler's cluster port."); err != nil {
		return err
	}
	// Read only now: parsing fills them in.
	eng, logs := d.eng, d.logs
	switch {
	case o.schedulerPort < 1 || o.schedulerPort > 65535:
		return c.fail(stderr, fmt.Errorf("--scheduler-port %d: not a port", o.schedulerPort))
	case o.bindPort < -1 || o.bindPort > 65535:
		return c.fail(stderr, fmt.Errorf("--bind-port %d: not a port", o.bindPort))
	case o.maxTasks < 1:
		return c.fail(stderr, fmt.Errorf("--max-tasks %d: must be at least 1", o.maxTasks))
	}
	logger, err := newLogger(logs, stderr)
	if err != nil {
		return c.fail(stderr, err)
	}
	seed.logIgnored(fs, logger)
	if err := runExecutor(ctx, o, eng, logger); err != nil {
		return c.fail(stderr, err)
	}
	return nil
}

func (c *ExecutorCommand) fail(stderr io.Writer, err error) error {
	fmt.Fprintln(stderr, "kallad executor:", kalla.RedactText(err.Error()))
	return err
}

func runExecutor(ctx context.Context, o *executorOptions, eng engineOptions, logger *slog.Logger) error {
	opts, err := o.auth.client()
	if err != nil {
		return err
	}
	staging, err := newStaging(o.stagingPath, logger)
	if err != nil {
		return err
	}
	id := nuid.Next()
	logger = logger.With("executor", id)
	defer logger.Info("executor stopped")
	runner, closeRunner, err := newRunner(eng.withSessions(o.maxTasks), logger)
	if err != nil {
		return err
	}
	defer closeRunner()

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	// /ready answers 503 until the executor has joined, and again while it
	// finishes its tasks at shutdown.
	probes := kallahttp.NewProbeServer(kallahttp.ProbeConfig{
		Addr: net.JoinHostPort(o.bindHost, strconv.Itoa(o.bindPort)), Component: "executor", Gatherer: reg, Logger: logger,
	})
	if o.bindPort >= 0 {
		if err := probes.Start(ctx); err != nil {
			return err
		}
		defer probes.Stop()
	}

	url := o.natsURL
	if url == "" {
		url = "nats://" + net.JoinHostPort(o.schedulerHost, strconv.Itoa(o.schedulerPort))
	}
	joined, err := cluster.Join(ctx, url, "kallad-executor-"+id, logger, opts...)
	if err != nil {
		return err
	}
	defer joined.Conn.Close()
	ex, err := cluster.NewExecutor(cluster.ExecutorConfig{
		Tasks: joined.Tasks, Members: joined.Members, Runner: distributed.NewRunner(runner), Staging: staging, TempDir: eng.TempDir,
		MaxTasks: o.maxTasks, Registerer: reg, Logger: logger,
		Info: distributed.ExecutorInfo{ID: id, Host: o.externalHost, Version: version},
	})
	if err != nil {
		return err
	}
	if err := ex.Start(ctx); err != nil {
		return err
	}
	probes.MarkReady()
	logger.Info("executor ready", "scheduler", kalla.RedactURI(url), "staging", staging.String(), "max_tasks", o.maxTasks)
	<-ctx.Done()
	probes.Drain()
	logger.Info("shutting down: finishing running tasks")
	ex.Stop()
	return nil
}
