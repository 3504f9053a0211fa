package main

import (
	"context"

	"github.com/kalla-dev/kalla/internal/benchdata"
)

// input is a size's generated data and the job's two source URIs in the
// chosen format.
type input struct {
	*benchdata.Set
	left, right string
}

// sources points the job at d's data in o.format: the Parquet files as
// they are, CSV files with a header (written once from the Parquet
// files), or the tables kallabench seeds in the Postgres at o.pgURL.
func sources(ctx context.Context, o *options, d *benchdata.Set, logf func(string, ...any)) (input, error) {
	in := input{Set: d, left: d.InvoicesParquet, right: d.PaymentsParquet}
	var err error
	switch o.format {
	case "csv":
		in.left, in.right, err = d.HeaderCSV(ctx)
	case "postgres":
		var pg *benchdata.Postgres
		if pg, err = benchdata.SeedPostgres(ctx, o.pgURL, d, logf); err != nil {
			return in, err
		}
		if in.left, err = pg.SourceURI(benchdata.InvoicesTable); err == nil {
			in.right, err = pg.SourceURI(benchdata.PaymentsTable)
		}
	}
	return in, err
}
