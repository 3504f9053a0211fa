package kalla

import (
	"context"
	"fmt"
	"strings"
)

// ConfirmedAlias is the engine table holding a job's confirmed pairs
// (Job.Confirmed); match_sql cannot name it (the SQL sandbox allows only
// the source aliases).
const ConfirmedAlias = ReservedPrefix + "confirmed"

// ConfirmedRule is the _kalla_rule of the pairs a person confirmed.
const ConfirmedRule = "confirmed"

// ConfirmedSpec says how the columns of a job's confirmed file identify
// source rows: its key mappings, as a rule's result does, and the columns
// written to matched.parquet (all but Kalla's own).
type ConfirmedSpec struct {
	Left    KeyMapping `json:"left"`
	Right   KeyMapping `json:"right"`
	Columns []string   `json:"columns"`
}

// openConfirmed opens the job's confirmed file; nil when it has none. The
// caller closes it.
func (r *Runner) openConfirmed(ctx context.Context, job *Job) (Source, error) {
	if job.Confirmed == "" {
		return nil, nil
	}
	src, err := r.Sources.Open(ctx, job.Confirmed)
	if err != nil {
		// An opener names the field of a source's URI ("uri"): here
		// that is the field "confirmed" itself.
		if v, ok := err.(*ValidationError); ok && v.Field == "uri" {
			return nil, &ValidationError{Field: "confirmed", Message: v.Message}
		}
		return nil, prefixField("confirmed", err)
	}
	return src, nil
}

// bindConfirmed attaches the confirmed file to sess and checks that its
// columns carry both sources' primary keys, named as in a rule's result
// ("<alias>_<key>", or a lone "<key>").
func (r *Runner) bindConfirmed(ctx context.Context, sess Session, job *Job, src Source) (*ConfirmedSpec, error) {
	cols, err := sess.Attach(ctx, ConfirmedAlias, src, Whole, nil)
	if err != nil {
		if IsValidation(err) {
			return nil, prefixField("confirmed", err)
		}
		return nil, fmt.Errorf("open confirmed pairs (%s): %w", RedactURI(job.Confirmed), err)
	}
	c := &ConfirmedSpec{}
	if c.Left, err = keyMapping(job, "confirmed", job.Left().Alias, job.Right().Alias, cols); err != nil {
		return nil, err
	}
	if c.Right, err = keyMapping(job, "confirmed", job.Right().Alias, job.Left().Alias, cols); err != nil {
		return nil, err
	}
	for _, col := range cols {
		if !strings.HasPrefix(strings.ToLower(col.Name), ReservedPrefix) {
			c.Columns = append(c.Columns, col.Name)
		}
	}
	return c, nil
}
