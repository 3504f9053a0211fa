package main

import (
	"github.com/kalla-dev/kalla"
	"github.com/kalla-dev/kalla/file"
	"github.com/kalla-dev/kalla/postgres"
	"github.com/kalla-dev/kalla/s3"
)

// newRegistries maps every source URI scheme and output_path scheme to its
// adapter. This is the one place that knows them all.
func newRegistries() (*kalla.Registry, *kalla.OutputRegistry, error) {
	sources := kalla.NewRegistry()
	sources.Register(file.OpenSource, "file")
	sources.Register(postgres.Open, "postgres", "postgresql")
	sources.Register(s3.OpenSource, "s3")
	outputs := kalla.NewOutputRegistry()
	outputs.Register(file.OpenOutput, "file")
	outputs.Register(s3.OpenOutput, "s3")
	return sources, outputs, nil
}
