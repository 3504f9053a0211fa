package main

import (
	"flag"
	"fmt"
	"strconv"
)

// splitOptions are the two sizes that decide how finely staged sources are
// split, into a cluster job's stage tasks and a Postgres read's parallel
// streams. The defaults suit production; the multi-process tests lower both
// to split small sources.
type splitOptions struct {
	// PGMinRangePages becomes postgres.Config.MinRangePages; 0 is its
	// default (1024 pages).
	PGMinRangePages int64
	// CSVMinSplitBytes becomes duckdb.Config.MinCSVSplitBytes; 0 is its
	// default (8 MB).
	CSVMinSplitBytes int64
}

// splitFlags registers the flags of splitOptions with their env fallbacks.
// A malformed or negative env value is reported, not ignored.
func splitFlags(fs *flag.FlagSet, o *splitOptions) error {
	if err := sizeFlag(fs, &o.PGMinRangePages, "pg-min-range-pages", "KALLA_PG_MIN_RANGE_PAGES",
		"fewest heap pages of a Postgres table given a parallel stream or cluster split of their own (env KALLA_PG_MIN_RANGE_PAGES; 0 for the default, 1024 pages, about 8 MB)"); err != nil {
		return err
	}
	return sizeFlag(fs, &o.CSVMinSplitBytes, "csv-min-split-bytes", "KALLA_CSV_MIN_SPLIT_BYTES",
		"smallest share of a local CSV source given a stage task of its own in a cluster job (env KALLA_CSV_MIN_SPLIT_BYTES; 0 for the default, 8 MB)")
}

// sizeFlag registers a flag for a count that is 0 (the default) or more,
// defaulting to the env variable envName.
func sizeFlag(fs *flag.FlagSet, p *int64, name, envName, help string) error {
	parse := func(what, s string) (int64, error) {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("%s=%q: must be a whole number, 0 (the default) or more", what, s)
		}
		return n, nil
	}
	if s := env("", envName); s != "" {
		n, err := parse("environment variable "+envName, s)
		if err != nil {
			return err
		}
		*p = n
	}
	fs.Func(name, help, func(s string) error {
		n, err := parse("--"+name, s)
		if err != nil {
			return err
		}
		*p = n
		return nil
	})
	return nil
}
