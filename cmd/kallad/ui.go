package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"strconv"

	"github.com/kalla-dev/kalla"
	"github.com/kalla-dev/kalla/duckdb"
	"github.com/kalla-dev/kalla/internal/authlimit"
	"github.com/kalla-dev/kalla/s3"
	"github.com/kalla-dev/kalla/ui"
)

// uiOptions is the scheduler's web console switch, --ui (env KALLA_UI).
type uiOptions struct{ enabled bool }

func (u *uiOptions) register(fs *flag.FlagSet) error {
	def := true
	var err error
	if v := env("", "KALLA_UI"); v != "" {
		if def, err = strconv.ParseBool(v); err != nil {
			def, err = true, fmt.Errorf("environment variable KALLA_UI=%q is not true or false", v)
		}
	}
	fs.BoolVar(&u.enabled, "ui", def, "serve the web console under /ui/ on the HTTP port, with the API's authentication (env KALLA_UI; --ui=false turns it off)")
	return err
}

// console builds the web console mounted by kallahttp.Config.UI, or nil
// with --ui=false, and the func that closes it. It reads result files with
// the runner's DuckDB engine's settings.
func (u *uiOptions) console(runner *kalla.Runner, tempDir, token string, guesses *authlimit.Limiter, depth func(context.Context) (int, error), logger *slog.Logger) (func(http.Handler) http.Handler, func(), error) {
	if !u.enabled {
		return nil, func() {}, nil
	}
	eng, ok := runner.Engine.(*duckdb.Engine)
	if !ok {
		return nil, nil, errors.New("web console: the engine is not DuckDB's")
	}
	browser := duckdb.NewBrowser(eng)
	c, err := ui.New(ui.Config{Token: token, Limiter: guesses, Browser: browser, QueueDepth: depth, Fetch: fetchS3(logger), TempDir: tempDir, Logger: logger})
	if err != nil {
		browser.Close()
		return nil, nil, err
	}
	return c.Handler, func() {
		browser.Close()
		c.Close()
	}, nil
}

// fetchS3 copies files of a result folder on S3 for the console, with the
// AWS configuration the jobs use.
func fetchS3(logger *slog.Logger) ui.Fetcher {
	client := s3.New(s3.Config{Logger: logger})
	return func(ctx context.Context, uri string, names []string, scratch string) (string, error) {
		folder, err := client.OpenStaging(uri)
		if err != nil {
			return "", err
		}
		paths, err := folder.Fetch(ctx, names, scratch)
		if err != nil {
			return "", err
		}
		return filepath.Dir(paths[0]), nil
	}
}

// logURL says where the console is, once the API listens.
func (u *uiOptions) logURL(logger *slog.Logger, addr string) {
	if u.enabled {
		logger.Info("web console", "url", "http://"+addr+"/ui/")
	}
}
