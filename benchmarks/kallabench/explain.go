package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/kalla-dev/kalla"
	"github.com/kalla-dev/kalla/internal/benchdata"
)

// explainVariant is the name of the benchmark job run with "explain": true.
const explainVariant = "kalla-explain"

// explainTarget is the most explaining may add to a run (issue 14).
const explainTarget = 0.25

// writeExplainJob writes the benchmark job over the Parquet files with
// "explain": true: every unmatched row gets its reason and nearest
// candidate (the match's key is the invoice reference, its tolerance the
// one named condition).
func (b *benchChild) writeExplainJob(data *benchdata.Set) (string, error) {
	job := benchdata.Job(data.InvoicesParquet, data.PaymentsParquet, filepath.Join(b.dir, "out", explainVariant))
	job.Explain = true
	raw, err := kalla.MarshalIndent(&job)
	if err != nil {
		return "", err
	}
	path := filepath.Join(b.dir, "job-"+explainVariant+".json")
	return path, os.WriteFile(path, raw, 0o600)
}

// explainVariants is the explained job beside kalla-parquet, the same job
// without explain: their ratio is explain's overhead.
func explainVariants(child *benchChild, data *benchdata.Set) ([]*benchVariant, error) {
	job, err := child.writeExplainJob(data)
	if err != nil {
		return nil, fmt.Errorf("write the explained job: %w", err)
	}
	return []*benchVariant{{Name: explainVariant,
		Note: "kalla-parquet with \"explain\": true: reasons and nearest candidates in the unmatched files",
		run:  func(ctx context.Context) (benchRun, error) { return child.runKalla(ctx, job) }}}, nil
}

// explainOverhead is how much longer the explained job's best run took
// than kalla-parquet's (0.10 = 10% longer); ok is false when either did
// not run.
func (r *benchReport) explainOverhead() (overhead float64, ok bool) {
	var plain, explained float64
	for _, v := range r.Variants {
		switch v.Name {
		case "kalla-parquet":
			plain = v.Best
		case explainVariant:
			explained = v.Best
		}
	}
	if plain <= 0 || explained <= 0 {
		return 0, false
	}
	return explained/plain - 1, true
}

// printExplainOverhead prints explain's overhead against its target.
func (r *benchReport) printExplainOverhead(w io.Writer) {
	o, ok := r.explainOverhead()
	if !ok {
		return
	}
	verdict := "within"
	if o > explainTarget {
		verdict = "ABOVE"
	}
	fmt.Fprintf(w, "\nexplain overhead: %+.1f%% (%s vs kalla-parquet, best runs), %s the %.0f%% target\n",
		100*o, explainVariant, verdict, 100*explainTarget)
}
