package main

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"

	"github.com/kalla-dev/kalla"
)

// env returns the value of the first of names that is set, else def. Several
// names let the seed's variables (BALLISTA_PARTITIONS, ...) keep working.
func env(def string, names ...string) string {
	for _, n := range names {
		if v, ok := os.LookupEnv(n); ok && v != "" {
			return v
		}
	}
	return def
}

// envInt is env for integers; a malformed value is reported, not ignored.
func envInt(def int, names ...string) (int, error) {
	for _, n := range names {
		if v, ok := os.LookupEnv(n); ok && v != "" {
			i, err := strconv.Atoi(v)
			if err != nil {
				return 0, fmt.Errorf("environment variable %s=%q is not an integer", n, v)
			}
			return i, nil
		}
	}
	return def, nil
}

// engineOptions are the flags every mode shares for the DuckDB engine.
type engineOptions struct {
	MemoryLimit string
	TempDir     string
	Partitions  int
	// Policy holds the allow-lists (policy.go).
	Policy      policyOptions
	MaxTempSize string
	// Sessions is how many jobs or tasks the process runs at once, among
	// which the memory limit is divided; 0 means 1.
	Sessions int
}

// withSessions returns o for a process that runs n jobs or tasks at once.
func (o engineOptions) withSessions(n int) engineOptions {
	o.Sessions = n
	return o
}

// logOptions configure log/slog.
type logOptions struct {
	Level  string
	Format string
}

// commonFlags registers the engine and log flags with their env fallbacks.
func commonFlags(fs *flag.FlagSet, eng *engineOptions, logs *logOptions, defaultLevel string) error {
	parts, err := envInt(0, "KALLA_PARTITIONS", "BALLISTA_PARTITIONS")
	if err != nil {
		return err
	}
	fs.StringVar(&eng.MemoryLimit, "memory-limit", env("", "KALLA_MEMORY_LIMIT"), "DuckDB memory limit, e.g. 4GB or 75% (env KALLA_MEMORY_LIMIT; default DuckDB's 80% of RAM)")
	fs.StringVar(&eng.TempDir, "temp-dir", env("", "KALLA_TEMP_DIR"), "folder DuckDB spills to beyond the memory limit (env KALLA_TEMP_DIR; default the system temp dir)")
	fs.StringVar(&eng.MaxTempSize, "max-temp-size", env("", "KALLA_MAX_TEMP_SIZE"), "most DuckDB may spill to --temp-dir, e.g. 20GB; a job needing more fails (env KALLA_MAX_TEMP_SIZE; default DuckDB's 90% of the free disk space)")
	fs.IntVar(&eng.Partitions, "partitions", parts, "parallel streams and DuckDB threads (env KALLA_PARTITIONS; default the number of CPUs)")
	fs.StringVar(&logs.Level, "log-level", env(defaultLevel, "KALLA_LOG_LEVEL"), "log level: debug, info, warn, error (env KALLA_LOG_LEVEL)")
	fs.StringVar(&logs.Format, "log-format", env("text", "KALLA_LOG_FORMAT"), "log format: text or json (env KALLA_LOG_FORMAT)")
	policyFlags(fs, &eng.Policy)
	return nil
}

// newLogger builds the process logger from logOptions. It masks secrets
// (kalla.RedactLogs) and becomes slog's default, so adapters that log
// through slog.Default are masked and formatted alike.
func newLogger(o logOptions, w io.Writer) (*slog.Logger, error) {
	h, err := newHandler(o, w)
	if err != nil {
		return nil, err
	}
	l := slog.New(kalla.RedactLogs(h))
	slog.SetDefault(l)
	return l, nil
}

// newHandler is the slog handler of logOptions' level and format.
func newHandler(o logOptions, w io.Writer) (slog.Handler, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.Level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: use debug, info, warn or error", o.Level)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch strings.ToLower(o.Format) {
	case "json":
		return slog.NewJSONHandler(w, opts), nil
	case "text", "":
		return slog.NewTextHandler(w, opts), nil
	default:
		return nil, fmt.Errorf("--log-format %q: use text or json", o.Format)
	}
}
