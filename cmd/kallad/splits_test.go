package main

import (
	"flag"
	"io"
	"strings"
	"testing"
)

// The split sizes come from their env variables, a flag overrides them, and
// a malformed or negative value of either is an error naming it.
func TestSplitFlags(t *testing.T) {
	parse := func(args ...string) (splitOptions, error) {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		var o splitOptions
		if err := splitFlags(fs, &o); err != nil {
			return o, err
		}
		return o, fs.Parse(args)
	}
	if o, err := parse(); err != nil || o != (splitOptions{}) {
		t.Fatalf("no env, no flags: %+v, %v; want the zero defaults", o, err)
	}

	t.Setenv("KALLA_PG_MIN_RANGE_PAGES", "2")
	t.Setenv("KALLA_CSV_MIN_SPLIT_BYTES", "1024")
	if o, err := parse(); err != nil || o != (splitOptions{PGMinRangePages: 2, CSVMinSplitBytes: 1024}) {
		t.Errorf("from env: %+v, %v", o, err)
	}
	if o, err := parse("--pg-min-range-pages", "16", "--csv-min-split-bytes=0"); err != nil || o != (splitOptions{PGMinRangePages: 16}) {
		t.Errorf("flags over env: %+v, %v", o, err)
	}
	for _, args := range [][]string{{"--pg-min-range-pages", "-1"}, {"--csv-min-split-bytes", "8MB"}} {
		if _, err := parse(args...); err == nil || !strings.Contains(err.Error(), args[0]) {
			t.Errorf("%q: error %v, want one naming %s", args, err, args[0])
		}
	}
	t.Setenv("KALLA_CSV_MIN_SPLIT_BYTES", "lots")
	if _, err := parse(); err == nil || !strings.Contains(err.Error(), "KALLA_CSV_MIN_SPLIT_BYTES") {
		t.Errorf("malformed env: error %v, want one naming KALLA_CSV_MIN_SPLIT_BYTES", err)
	}
}
