package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/kalla-dev/kalla"
	"github.com/kalla-dev/kalla/cluster"
	"github.com/kalla-dev/kalla/distributed"
	kallahttp "github.com/kalla-dev/kalla/http"
	"github.com/kalla-dev/kalla/internal/authlimit"
)

// SchedulerCommand serves the HTTP job API and runs the accepted jobs:
// `kallad scheduler [flags]`. Jobs are kept in NATS JetStream (embedded, with
// its files under --data-dir, or the external server at --nats-url), so an
// accepted job survives a crash and runs after the restart.
type SchedulerCommand struct {
	// Stderr receives the logs and usage; nil means os.Stderr.
	Stderr io.Writer
}

// schedulerOptions are the scheduler's own flags.
type schedulerOptions struct {
	httpPort, grpcPort int
	bindHost           string
	stagingPath        string
	maxJobs            int
	dataDir            string
	natsURL            string
	natsReplicas       int
	maxAttempts        int
	ackWait            time.Duration
	shutdownTimeout    time.Duration
	taskAckWait        time.Duration
	executorTTL        time.Duration
	auth               *clusterAuthOptions
	limits             limitOptions
	scale              scaleOptions
	ui                 uiOptions
	submitCheck        submitCheckOptions
	proxies            proxyOptions
}

// Run parses args and serves until ctx is cancelled (SIGINT or SIGTERM),
// then shuts down gracefully: /ready turns 503, running jobs get
// --shutdown-timeout to finish and are put back in the queue after that.
func (c *SchedulerCommand) Run(ctx context.Context, args []string) error {
	stderr := c.Stderr
	if stderr == nil {
		stderr = os.Stderr
	}
	d, err := newDaemonFlags("scheduler", stderr)
	if err != nil {
		return c.fail(stderr, err)
	}
	fs := d.fs
	o, err := schedulerFlags(fs)
	if err != nil {
		return c.fail(stderr, err)
	}
	if err := d.parse(args, "Serves the HTTP job API and runs the jobs.\nKALLA_API_TOKEN, if set, is required as a bearer token on /api/*.\nKALLA_CLUSTER_TOKEN, if set, is required from clients of the embedded NATS\nserver on the cluster port; an external --nats-url carries its own credentials.\nWithout them (protected mode) /api/* and the cluster port accept loopback clients only."); err != nil {
		return err
	}
	// Read only now: parsing fills them in.
	eng, logs := d.eng, d.logs
	if err := o.validate(); err != nil {
		return c.fail(stderr, err)
	}
	logger, err := newLogger(logs, stderr)
	if err != nil {
		return c.fail(stderr, err)
	}
	if err := serve(ctx, o, eng, logger); err != nil {
		return c.fail(stderr, err)
	}
	return nil
}

func schedulerFlags(fs *flag.FlagSet) (*schedulerOptions, error) {
	o := &schedulerOptions{}
	var err error
	ints := []struct {
		p    *int
		name string
		def  int
		env  []string
		help string
	}{
		{&o.httpPort, "http-port", 8080, []string{"HTTP_PORT"}, "port of the HTTP job API (env HTTP_PORT)"},
		{&o.grpcPort, "grpc-port", 50050, []string{"GRPC_PORT", "BIND_GRPC_PORT", "SCHEDULER_PORT"}, "cluster port executors connect to: the embedded NATS server's; -1 picks a free one (env GRPC_PORT)"},
		{&o.maxJobs, "max-jobs", 4, []string{"MAX_CONCURRENT_JOBS"}, "jobs run at once; the rest wait in the queue (env MAX_CONCURRENT_JOBS)"},
		{&o.maxAttempts, "max-attempts", 3, []string{"KALLA_MAX_ATTEMPTS"}, "runs of a job whose runner died before it fails for good (env KALLA_MAX_ATTEMPTS)"},
	}
	for _, f := range ints {
		v, e := envInt(f.def, f.env...)
		err = errors.Join(err, e)
		fs.IntVar(f.p, f.name, v, f.help)
	}
	durations := []struct {
		p    *time.Duration
		name string
		def  time.Duration
		env  string
		help string
	}{
		{&o.ackWait, "ack-wait", 30 * time.Second, "KALLA_ACK_WAIT", "how long a running job may go without a heartbeat before another runner retries it (env KALLA_ACK_WAIT)"},
		{&o.shutdownTimeout, "shutdown-timeout", 20 * time.Second, "KALLA_SHUTDOWN_TIMEOUT", "at shutdown, how long running jobs may finish before they are requeued (env KALLA_SHUTDOWN_TIMEOUT)"},
		{&o.taskAckWait, "task-ack-wait", 15 * time.Second, "KALLA_TASK_ACK_WAIT", "how long an executor task may go without a heartbeat before another executor retries it (env KALLA_TASK_ACK_WAIT)"},
		{&o.executorTTL, "executor-ttl", 6 * time.Second, "KALLA_EXECUTOR_TTL", "how long an executor stays listed after its last heartbeat; executors heartbeat every third of it (env KALLA_EXECUTOR_TTL)"},
	}
	for _, f := range durations {
		v := f.def
		if s := env("", f.env); s != "" {
			d, e := time.ParseDuration(s)
			if e != nil {
				err = errors.Join(err, fmt.Errorf("environment variable %s=%q is not a duration such as 30s", f.env, s))
			}
			v = d
		}
		fs.DurationVar(f.p, f.name, v, f.help)
	}
	fs.StringVar(&o.bindHost, "bind-host", env("0.0.0.0", "BIND_HOST"), "address the HTTP API and the cluster port listen on (env BIND_HOST)")
	fs.StringVar(&o.stagingPath, "staging-path", env("./staging", "STAGING_PATH"), "where executors exchange staged data: a folder every process shares, or an s3://bucket/prefix (env STAGING_PATH)")
	fs.StringVar(&o.dataDir, "data-dir", env("./kalla-data", "KALLA_DATA_DIR"), "folder of the durable job store and queue (env KALLA_DATA_DIR)")
	fs.StringVar(&o.natsURL, "nats-url", env("", "NATS_URL"), "use this NATS cluster instead of the embedded server (env NATS_URL)")
	o.auth = clusterAuthFlags(fs, true)
	o.proxies.register(fs)
	return o, errors.Join(err, o.limits.register(fs), o.scale.register(fs), replicasFlag(fs, &o.natsReplicas), o.ui.register(fs), o.submitCheck.register(fs))
}

func (o *schedulerOptions) validate() error {
	switch {
	case o.httpPort < 0 || o.httpPort > 65535:
		return fmt.Errorf("--http-port %d: not a port (0 picks a free one)", o.httpPort)
	case o.grpcPort < -1 || o.grpcPort > 65535:
		return fmt.Errorf("--grpc-port %d: not a port (-1 picks a free one)", o.grpcPort)
	case o.maxJobs < 1:
		return fmt.Errorf("--max-jobs %d: must be at least 1", o.maxJobs)
	case o.maxAttempts < 1:
		return fmt.Errorf("--max-attempts %d: must be at least 1", o.maxAttempts)
	case o.ackWait < time.Second:
		return fmt.Errorf("--ack-wait %s: must be at least 1s", o.ackWait)
	case o.taskAckWait < time.Second:
		return fmt.Errorf("--task-ack-wait %s: must be at least 1s", o.taskAckWait)
	case o.executorTTL < time.Second:
		return fmt.Errorf("--executor-ttl %s: must be at least 1s", o.executorTTL)
	case o.shutdownTimeout < 0:
		return fmt.Errorf("--shutdown-timeout %s: must not be negative", o.shutdownTimeout)
	}
	return errors.Join(checkReplicas(o.natsReplicas, o.natsURL), o.limits.validate(), o.scale.validate(), o.submitCheck.validate(), o.proxies.validate())
}

// daemonFlags is the start of the command line of a long-running mode
// (scheduler, executor): the flags every mode has, logging at info.
type daemonFlags struct {
	name   string
	stderr io.Writer
	fs     *flag.FlagSet
	eng    engineOptions
	logs   logOptions
}

func newDaemonFlags(name string, stderr io.Writer) (*daemonFlags, error) {
	d := &daemonFlags{name: name, stderr: stderr, fs: flag.NewFlagSet("kallad "+name, flag.ContinueOnError)}
	d.fs.SetOutput(stderr)
	return d, commonFlags(d.fs, &d.eng, &d.logs, "info")
}

// parse parses args, which take no operands; about is the usage text.
func (d *daemonFlags) parse(args []string, about string) error {
	d.fs.Usage = func() {
		fmt.Fprintf(d.stderr, "Usage: kallad %s [flags]\n\n%s\n\nFlags:\n", d.name, about)
		d.fs.PrintDefaults()
	}
	operands, err := parseArgs(d.fs, args)
	if err != nil {
		return err
	}
	if len(operands) != 0 {
		d.fs.Usage()
		return errUsage
	}
	return nil
}

func (c *SchedulerCommand) fail(stderr io.Writer, err error) error {
	fmt.Fprintln(stderr, "kallad scheduler:", kalla.RedactText(err.Error()))
	return err
}

// serve wires the services and runs them until ctx is done.
func serve(ctx context.Context, o *schedulerOptions, eng engineOptions, logger *slog.Logger) error {
	staging, err := newStaging(o.stagingPath, logger)
	if err != nil {
		return err
	}
	defer logger.Info("scheduler stopped")
	runner, closeRunner, err := newRunner(eng.withSessions(o.maxJobs), logger)
	if err != nil {
		return err
	}
	defer closeRunner()

	apiToken, err := o.auth.apiToken()
	if err != nil {
		return err
	}
	var nc *nats.Conn
	clusterProtected := false
	if o.natsURL == "" {
		key, err := storeKey(o.dataDir, logger)
		if err != nil {
			return err
		}
		cfg := cluster.ServerConfig{DataDir: o.dataDir, Host: o.bindHost, Port: o.grpcPort, StoreKey: key, Logger: logger}
		if err := o.auth.server(&cfg); err != nil {
			return err
		}
		clusterProtected = cfg.Protected()
		srv, err := cluster.NewServer(cfg)
		if err != nil {
			return err
		}
		if err := srv.Start(ctx); err != nil {
			return err
		}
		defer srv.Stop()
		if nc, err = srv.Connect("kallad-scheduler"); err != nil {
			return err
		}
	} else {
		if err := o.auth.checkExternal(); err != nil {
			return err
		}
		if nc, err = cluster.Connect(o.natsURL, "kallad-scheduler"); err != nil {
			return err
		}
	}
	defer nc.Close()
	js, err := cluster.JetStream(nc)
	if err != nil {
		return err
	}
	store, err := cluster.OpenStore(ctx, js, cluster.StoreConfig{Retention: o.limits.jobRetention, MaxRecords: o.limits.maxStoredJobs, Replicas: o.natsReplicas})
	if err != nil {
		return err
	}
	go store.Maintain(ctx, time.Minute, logger)
	queue, err := cluster.OpenQueue(ctx, js, cluster.QueueConfig{AckWait: o.ackWait, MaxAttempts: o.maxAttempts, Replicas: o.natsReplicas})
	if err != nil {
		return err
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	metrics, err := cluster.NewMetrics(reg, queue)
	if err != nil {
		return err
	}
	callbacks, err := kallahttp.NewCallbackSender(kallahttp.CallbackConfig{Store: store, Hosts: runner.CallbackHosts, MaxPendingPerHost: o.limits.maxPendingCallbacks, Logger: logger})
	if err != nil {
		return err
	}
	members, err := cluster.OpenMembers(ctx, js, cluster.MembersConfig{TTL: o.executorTTL, Replicas: o.natsReplicas})
	if err != nil {
		return err
	}
	tasks, err := cluster.OpenTaskQueue(ctx, js, cluster.TaskQueueConfig{AckWait: o.taskAckWait, MaxAttempts: o.maxAttempts, Replicas: o.natsReplicas})
	if err != nil {
		return err
	}
	taskMetrics, err := cluster.NewTaskMetrics(reg, tasks, members, metrics.Executors)
	if err != nil {
		return err
	}
	parts := eng.Partitions
	if parts <= 0 {
		parts = runtime.NumCPU()
	}
	ccfg := cluster.CoordinatorConfig{
		Local: runner, Splitter: distributed.NewRunner(runner), Tasks: tasks, Members: members, Partitions: parts, Staging: staging,
		Metrics: taskMetrics, Logger: logger,
	}
	o.scale.apply(&ccfg, o.maxJobs)
	coordinator, err := cluster.NewCoordinator(ccfg)
	if err != nil {
		return err
	}
	if err := cluster.RegisterScaleMetrics(reg, queue, tasks, coordinator, o.maxJobs); err != nil {
		return err
	}
	tracker := cluster.NewExecutorTracker(members, metrics.Executors, logger)
	if err := tracker.Start(ctx); err != nil {
		return err
	}
	defer tracker.Stop()
	notifier := seedLogNotifier{next: callbacks, store: store, log: logger}
	worker, err := cluster.NewWorker(cluster.WorkerConfig{
		Store: store, Queue: queue, Runner: coordinator, Notifier: notifier, Metrics: metrics,
		MaxJobs: o.maxJobs, JobTimeout: o.limits.jobTimeout, ShutdownTimeout: o.shutdownTimeout, Logger: logger,
	})
	if err != nil {
		return err
	}
	scratch := eng.TempDir
	if e, ok := runner.Engine.(interface{ Dir() string }); ok {
		scratch = e.Dir()
	}
	// One count of wrong tokens per address for the API and the console.
	guesses := authlimit.New(authlimit.Config{TrustedProxies: o.proxies.nets})
	console, closeConsole, err := o.ui.console(runner, scratch, apiToken, guesses, queueDepth(queue), logger)
	if err != nil {
		return err
	}
	defer closeConsole()
	api, err := kallahttp.NewServer(kallahttp.Config{
		Addr:      net.JoinHostPort(o.bindHost, strconv.Itoa(o.httpPort)),
		Validator: runner, Store: store, Queue: queue, Notifier: notifier, Gatherer: reg,
		Token:     apiToken,
		Saturated: worker.Saturated,
		Cluster:   members,
		MaxQueued: o.limits.maxQueued, QueueDepth: queueDepth(queue), ReadHeaderTimeout: o.limits.httpHeaderTimeout,
		DryRuns:    kallahttp.DryRuns{Runner: runner, TakeSlot: worker.TakeSlot, JobTimeout: o.limits.jobTimeout},
		SubmitBind: o.submitCheck.config(runner),
		Logger:     logger, UI: console, AuthLimiter: guesses,
	})
	if err != nil {
		return err
	}

	// The API answers /health (and 503 on /ready) while the rest starts.
	if err := api.Start(ctx); err != nil {
		return err
	}
	defer api.Stop()
	o.ui.logURL(logger, api.Addr())
	logProtectedMode(ctx, logger, o.bindHost, clusterProtected, apiToken == "")
	if err := callbacks.Start(ctx); err != nil {
		return err
	}
	defer callbacks.Stop()
	if err := worker.Start(ctx); err != nil {
		return err
	}
	api.MarkReady()
	logger.Info("scheduler ready", "http", api.Addr(), "max_jobs", o.maxJobs, "data_dir", o.dataDir, "nats_url", kalla.RedactURI(o.natsURL), "nats_replicas", o.natsReplicas, "staging", staging.String(),
		"job_timeout", o.limits.jobTimeout, "max_queued", o.limits.maxQueued, "job_retention", o.limits.jobRetention, "max_stored_jobs", o.limits.maxStoredJobs)

	<-ctx.Done()
	logger.Info("shutting down: finishing running jobs", "timeout", o.shutdownTimeout, "active", worker.Active())
	api.Drain()
	worker.Stop()
	return nil
}
