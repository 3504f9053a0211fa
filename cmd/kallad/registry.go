package main

import (
	"log/slog"
	"strings"

	"github.com/kalla-dev/kalla"
	"github.com/kalla-dev/kalla/distributed"
	"github.com/kalla-dev/kalla/file"
	"github.com/kalla-dev/kalla/postgres"
	"github.com/kalla-dev/kalla/s3"
)

// newRegistries maps every source URI scheme and output_path scheme to its
// adapter. This is the one place that knows them all, conn:// (the
// operator's named Postgres connections, see loadConnections) included. S3
// outputs are prepared under tempDir (--temp-dir), like the engine's own
// files; Postgres tables are split as splits says. Each adapter enforces its
// allow-list of pol.
func newRegistries(tempDir string, splits splitOptions, pol *policy, logger *slog.Logger) (*kalla.Registry[kalla.Source], *kalla.Registry[kalla.Output], error) {
	objects := s3.New(s3.Config{TempDir: tempDir, Buckets: pol.s3Buckets, Logger: logger})
	files := &file.Files{Paths: pol.paths}
	sources := kalla.NewSourceRegistry()
	sources.Register(files.OpenSource, "file")
	pg := postgres.Config{MinRangePages: splits.PGMinRangePages}
	sources.Register(postgres.Opener(pol.dbHosts, pg), "postgres", "postgresql")
	sources.Register(objects.OpenSource, "s3")
	conns, err := loadConnections()
	if err != nil {
		return nil, nil, err
	}
	conns.Config = pg
	sources.Register(conns.Open, postgres.ConnScheme)
	if names := conns.Names(); len(names) > 0 {
		logger.Info("named connections", "names", strings.Join(names, ","))
	}
	outputs := kalla.NewOutputRegistry()
	outputs.Register(files.OpenOutput, "file")
	outputs.Register(objects.OpenOutput, "s3")
	return sources, outputs, nil
}

// newStaging returns the cluster's staging for --staging-path: an s3://
// prefix, or else a folder every process shares.
func newStaging(stagingPath string, logger *slog.Logger) (distributed.Staging, error) {
	if stagingOnS3(stagingPath) {
		return s3.New(s3.Config{Logger: logger}).OpenStaging(stagingPath)
	}
	return file.NewStaging(stagingPath)
}

func stagingOnS3(stagingPath string) bool {
	return len(stagingPath) >= 5 && strings.EqualFold(stagingPath[:5], "s3://")
}
