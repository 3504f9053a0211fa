package main

import (
	"errors"
	"flag"
	"io"
	"slices"
	"strings"
	"testing"
)

func TestParseArgsInterleaved(t *testing.T) {
	t.Parallel()
	cases := []struct {
		args     []string
		operands []string
		mem      string
		parts    int
		verbose  bool
	}{
		{[]string{"job.json", "--memory-limit", "1GB"}, []string{"job.json"}, "1GB", 0, false},
		{[]string{"--memory-limit=2GB", "job.json", "-partitions", "3"}, []string{"job.json"}, "2GB", 3, false},
		{[]string{"a", "--verbose", "b"}, []string{"a", "b"}, "", 0, true},
		{[]string{"a", "--verbose=false", "b", "--memory-limit", "-"}, []string{"a", "b"}, "-", 0, false},
		{[]string{"-", "--partitions", "2"}, []string{"-"}, "", 2, false},
		// "--" ends the flags, wherever it is.
		{[]string{"job.json", "--", "--memory-limit", "1GB"}, []string{"job.json", "--memory-limit", "1GB"}, "", 0, false},
		{[]string{"--", "-x.json"}, []string{"-x.json"}, "", 0, false},
		// A value that looks like "--" is a value.
		{[]string{"--memory-limit", "--", "a"}, []string{"a"}, "--", 0, false},
		{nil, nil, "", 0, false},
	}
	for _, tc := range cases {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		mem := fs.String("memory-limit", "", "")
		parts := fs.Int("partitions", 0, "")
		verbose := fs.Bool("verbose", false, "")
		operands, err := parseArgs(fs, tc.args)
		if err != nil {
			t.Errorf("%q: %v", tc.args, err)
			continue
		}
		if !slices.Equal(operands, tc.operands) || *mem != tc.mem || *parts != tc.parts || *verbose != tc.verbose {
			t.Errorf("%q: operands %q mem %q parts %d verbose %v; want %q %q %d %v",
				tc.args, operands, *mem, *parts, *verbose, tc.operands, tc.mem, tc.parts, tc.verbose)
		}
	}
}

func TestParseArgsErrors(t *testing.T) {
	t.Parallel()
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"job.json", "--nope"}, "flag provided but not defined: -nope"},
		{[]string{"job.json", "--memory-limit"}, "flag needs an argument: -memory-limit"},
		{[]string{"job.json", "--partitions", "many"}, `invalid value "many" for flag -partitions`},
		{[]string{"job.json", "---x"}, "bad flag syntax"},
	}
	for _, tc := range cases {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		fs.String("memory-limit", "", "")
		fs.Int("partitions", 0, "")
		_, err := parseArgs(fs, tc.args)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want %q", tc.args, err, tc.want)
		}
	}
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	if _, err := parseArgs(fs, []string{"job.json", "-h"}); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-h after an operand: %v, want flag.ErrHelp", err)
	}
}
