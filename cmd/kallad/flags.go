package main

import (
	"errors"
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
	// Splits size the splits of staged sources (splits.go).
	Splits splitOptions
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
	fs.StringVar(&eng.TempDir, "temp-dir", env("", "KALLA_TEMP_DIR"), "local folder DuckDB spills to beyond the memory limit, and where S3 objects and staged files are copied to (env KALLA_TEMP_DIR; default the system temp dir, $TMPDIR or /tmp; never the staging folder)")
	fs.StringVar(&eng.MaxTempSize, "max-temp-size", env("", "KALLA_MAX_TEMP_SIZE"), "most DuckDB may spill to --temp-dir, e.g. 20GB; a job needing more fails (env KALLA_MAX_TEMP_SIZE; default DuckDB's 90% of the free disk space)")
	fs.IntVar(&eng.Partitions, "partitions", parts, "parallel streams and DuckDB threads (env KALLA_PARTITIONS; default the number of CPUs)")
	fs.StringVar(&logs.Level, "log-level", env(defaultLevel, "KALLA_LOG_LEVEL"), "log level: debug, info, warn, error (env KALLA_LOG_LEVEL)")
	fs.StringVar(&logs.Format, "log-format", env("text", "KALLA_LOG_FORMAT"), "log format: text or json (env KALLA_LOG_FORMAT)")
	policyFlags(fs, &eng.Policy)
	return splitFlags(fs, &eng.Splits)
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

// parseArgs parses args with fs and returns the operands. Flags may come
// after operands as well as before (`kallad run job.json --memory-limit 1GB`),
// as `go test` and kubectl accept: flag.FlagSet.Parse alone stops at the
// first operand, and users then got the usage for a flag they had typed.
// "--" ends the flags; everything after it is an operand.
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var operands []string
	for len(args) > 0 {
		a := args[0]
		if a == "--" {
			return append(operands, args[1:]...), nil
		}
		if a == "-" || !strings.HasPrefix(a, "-") {
			operands = append(operands, a)
			args = args[1:]
			continue
		}
		// One flag, with its value when it takes the next argument; fs
		// parses it and reports unknown flags and missing values.
		n := 1
		if !strings.Contains(a, "=") && takesValue(fs, strings.TrimLeft(a, "-")) && len(args) > 1 {
			n = 2
		}
		if err := fs.Parse(args[:n]); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			// fs has printed it with the usage; exit 2 as for bad usage.
			return nil, fmt.Errorf("%w: %w", errUsage, err)
		}
		args = args[n:]
	}
	return operands, nil
}

// takesValue reports whether the flag name reads the next argument as its
// value: every defined flag except booleans. An undefined name is left to
// flag.FlagSet.Parse to report.
func takesValue(fs *flag.FlagSet, name string) bool {
	f := fs.Lookup(name)
	if f == nil {
		return false
	}
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return !ok || !b.IsBoolFlag()
}
