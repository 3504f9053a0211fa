// Command kallad is Kalla's single binary: `kallad run` reconciles one job in
// process, `kallad scheduler` serves the HTTP job API, and `kallad executor`
// joins a scheduler's cluster.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/kalla-dev/kalla"
)

const usage = `kallad reconciles two sources with SQL match rules.

Usage:
  kallad run [flags] JOB.json     run one job in process and print its result
  kallad scheduler [flags]        serve the HTTP job API
  kallad executor [flags]         join a scheduler's cluster and run parts of its jobs
  kallad health [flags] [URL]     exit 0 if a scheduler or executor answers /health (for healthchecks)
  kallad version                  print the version

Run "kallad COMMAND -h" for a command's flags. Flags may follow operands;
"--" ends them. The benchmark against raw DuckDB and Postgres is
"go run ./benchmarks/kallabench" in the source tree.
`

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:])
	stop()
	os.Exit(exitCode(err))
}

func run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, usage)
		return errUsage
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "run":
		return (&RunCommand{Stdout: os.Stdout, Stderr: os.Stderr}).Run(ctx, rest)
	case "scheduler":
		return (&SchedulerCommand{Stderr: os.Stderr}).Run(ctx, rest)
	case "executor":
		return (&ExecutorCommand{Stderr: os.Stderr}).Run(ctx, rest)
	case "health":
		return (&HealthCommand{Stderr: os.Stderr}).Run(ctx, rest)
	case "version", "--version", "-version":
		fmt.Println("kallad", version)
		return nil
	case "help", "-h", "--help":
		fmt.Print(usage)
		return nil
	default:
		fmt.Fprintf(os.Stderr, "kallad: unknown command %q\n\n%s", cmd, usage)
		return errUsage
	}
}

// errUsage is returned after a usage message has been printed.
var errUsage = errors.New("usage")

// exitCode is 0 on success, 2 for bad usage or an invalid job, 130 when
// interrupted, and 1 for any other failure. The message has been printed.
func exitCode(err error) int {
	switch {
	case err == nil:
		return 0
	case errors.Is(err, errUsage), errors.Is(err, flag.ErrHelp), kalla.IsValidation(err):
		return 2
	case errors.Is(err, kalla.ErrCancelled), errors.Is(err, context.Canceled):
		return 130
	default:
		return 1
	}
}
