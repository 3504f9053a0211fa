package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// HealthCommand checks a running scheduler or executor: `kallad health
// [URL]`. It exits 0 when GET URL/health answers 200 within the timeout and
// 1 otherwise. The image has no HTTP client (no curl, no shell), so container
// healthchecks run this.
type HealthCommand struct {
	Stderr io.Writer
}

// errUnhealthy is returned, after its line is printed, when the check fails.
var errUnhealthy = errors.New("unhealthy")

// Run parses args and checks the URL, or the default addresses.
func (c *HealthCommand) Run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("kallad health", flag.ContinueOnError)
	fs.SetOutput(c.Stderr)
	timeout := fs.Duration("timeout", 5*time.Second, "how long the check may take in all")
	fs.Usage = func() {
		fmt.Fprintf(c.Stderr, `Usage: kallad health [flags] [URL]

Exits 0 when GET URL/health answers 200, else 1 with the reason on stderr.
A URL with a path (http://127.0.0.1:8080/ready) is requested as given.
Without URL it checks the scheduler's http://127.0.0.1:$HTTP_PORT (8080 when
unset) and, when $BIND_PORT is set, the executor's http://127.0.0.1:$BIND_PORT,
and succeeds when either is healthy: one image healthcheck serves both modes.

Flags:
`)
		fs.PrintDefaults()
	}
	operands, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	var targets []string
	switch len(operands) {
	case 0:
		if targets, err = defaultHealthTargets(); err != nil {
			return c.fail(err, errUsage)
		}
	case 1:
		t, err := healthURL(operands[0])
		if err != nil {
			return c.fail(err, errUsage)
		}
		targets = []string{t}
	default:
		fs.Usage()
		return errUsage
	}
	if *timeout <= 0 {
		return c.fail(fmt.Errorf("--timeout %s: must be positive", *timeout), errUsage)
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	var problems []string
	for _, t := range targets {
		err := checkHealth(ctx, t)
		if err == nil {
			return nil
		}
		problems = append(problems, err.Error())
	}
	return c.fail(errors.New(strings.Join(problems, "; ")), errUnhealthy)
}

// fail prints err as one line and returns kind for the exit code.
func (c *HealthCommand) fail(err, kind error) error {
	fmt.Fprintln(c.Stderr, "kallad health:", err)
	return kind
}

// defaultHealthTargets are the scheduler's API port and, when BIND_PORT
// is set, the executor's probe port, on loopback.
func defaultHealthTargets() ([]string, error) {
	port, err := envInt(8080, "HTTP_PORT")
	if err != nil {
		return nil, err
	}
	targets := []string{"http://127.0.0.1:" + strconv.Itoa(port) + "/health"}
	probe, err := envInt(0, "BIND_PORT")
	if err != nil {
		return nil, err
	}
	if probe > 0 {
		targets = append(targets, "http://127.0.0.1:"+strconv.Itoa(probe)+"/health")
	}
	return targets, nil
}

// healthURL is raw with /health appended when it has no path.
func healthURL(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("URL %q: want http://host:port or https://host:port, optionally with a path", raw)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = "/health"
	}
	return u.String(), nil
}

// healthClient follows no redirect and uses no proxy: the answer must come
// from the process checked.
var healthClient = &http.Client{
	Transport:     &http.Transport{Proxy: nil, DisableKeepAlives: true},
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

func checkHealth(ctx context.Context, target string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return fmt.Errorf("%s: %w", target, err)
	}
	resp, err := healthClient.Do(req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("GET %s: no answer within the timeout", target)
		}
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("GET %s: %w", target, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: answered %s", target, resp.Status)
	}
	return nil
}
