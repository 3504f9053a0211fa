package cluster

import (
	"fmt"
	"path"
	"regexp"
	"slices"
	"strings"

	"github.com/kalla-dev/kalla"
	"github.com/kalla-dev/kalla/distributed"
)

// An executor trusts nothing in a task but its job, which it validates as
// the scheduler did (the same SQL sandbox); everything else a task carries
// is checked against what the coordinator can have produced from that
// job, because anyone holding the cluster's credentials can publish a task:
//
//   - the match queries and their key mappings are the job's own (each
//     rule's name, SQL and exclusive setting are the job's rule's, the keys
//     its primary keys), and only a plain match_sql job is broadcast;
//   - the SQL fragments the planner builds (partition hash expressions,
//     staged column types) match the planner's grammar, so they stay inside
//     the expression they are spliced into;
//   - every staging key lies below the job attempt's own folder
//     (distributed.AttemptDir), with no ".." or absolute path;
//   - sides, partitions and part counts are in range.
//
// A task failing these checks is refused for good with a validation error
// naming the field; it is never retried.

// maxParts bounds a task's partition count: far above any --partitions in
// use, low enough that a forged count cannot make an executor create
// millions of folders.
const maxParts = 4096

var (
	// hashColumn is a column as the planner quotes it.
	hashColumn = `"(?:[^"]|"")+"`
	// hashExpr is what duckdb's PlanSplit produces: hash of key columns,
	// or of one key cast to a DECIMAL both sides hold.
	hashExpr = regexp.MustCompile(`^hash\((` + hashColumn + `(, ` + hashColumn + `)*|CAST\(` + hashColumn + ` AS DECIMAL\(\d{1,2},\d{1,2}\)\))\)$`)
	// genID is a coordinator attempt id (a NUID).
	genID = regexp.MustCompile(`^[A-Za-z0-9]{1,64}$`)
)

// check validates t, whose job has been validated; it returns a
// *kalla.ValidationError naming the field as it is on the wire.
func (t *ExecTask) check() error {
	job := &t.Job
	if !genID.MatchString(t.Gen) {
		return kalla.Invalid("task.gen", "%q is not an attempt id", t.Gen)
	}
	root := distributed.AttemptDir(job.RunID, t.Gen)
	if t.Root != root {
		return kalla.Invalid("task.root", "%q is not the job attempt's staging folder %s", t.Root, root)
	}
	// The tag: exactly the payload of Kind is set.
	set := map[TaskKind]bool{TaskPlan: t.Plan != nil, TaskStage: t.Stage != nil, TaskMatch: t.Match != nil, TaskMerge: t.Merge != nil}
	if _, known := set[t.Kind]; !known && t.Kind != TaskJob {
		return kalla.Invalid("task.kind", "%q is not a task kind", t.Kind)
	}
	for _, k := range []TaskKind{TaskPlan, TaskStage, TaskMatch, TaskMerge} {
		switch {
		case k == t.Kind && !set[k]:
			return kalla.Invalid("task."+string(k), "is required for a %s task", t.Kind)
		case k != t.Kind && set[k]:
			return kalla.Invalid("task."+string(k), "is not allowed in a %s task", t.Kind)
		}
	}
	switch t.Kind {
	case TaskPlan:
		return checkParts("task.plan.splits", t.Plan.Splits)
	case TaskStage:
		return checkStage(t.Stage, root)
	case TaskMatch:
		return checkMatch(t.Match, job, root)
	case TaskMerge:
		return checkMerge(t.Merge, job, root)
	}
	return nil
}

func checkStage(st *distributed.StageSpec, root string) error {
	if st.Side != 0 && st.Side != 1 {
		return kalla.Invalid("task.stage.side", "%d is not a source (0 or 1)", st.Side)
	}
	if err := underRoot("task.stage.dir", st.Dir, root); err != nil {
		return err
	}
	if !hashExpr.MatchString(st.Hash) {
		return kalla.Invalid("task.stage.hash", "%q is not a partition hash", st.Hash)
	}
	return checkParts("task.stage.parts", st.Parts)
}

func checkMatch(m *distributed.PartitionSpec, job *kalla.Job, root string) error {
	if err := checkParts("task.match.parts", m.Parts); err != nil {
		return err
	}
	if m.Partition < 0 || m.Partition >= m.Parts {
		return kalla.Invalid("task.match.partition", "%d is not a partition of %d", m.Partition, m.Parts)
	}
	if err := checkBroadcast("task.match.broadcast", m.Broadcast, m.Spec); err != nil {
		return err
	}
	if err := checkCarry(job, "task.match.broadcast", m.Broadcast); err != nil {
		return err
	}
	if err := underRoot("task.match.dir", m.Dir, root); err != nil {
		return err
	}
	if err := checkSpec("task.match.spec", m.Spec, job); err != nil {
		return err
	}
	for i, s := range m.Sides {
		field := fmt.Sprintf("task.match.sides[%d]", i)
		if (s.Direct || s.Hash != "") && !hashExpr.MatchString(s.Hash) {
			return kalla.Invalid(field+".hash", "%q is not a partition hash", s.Hash)
		}
		if job.CarryOver != nil && s.Hash == "" {
			return kalla.Invalid(field+".hash", "is required for a carry-over job: the task carries the previous run's rows of its partition by it")
		}
		if err := checkKeys(field+".stage_dirs", s.StageDirs, root); err != nil {
			return err
		}
		if err := checkColumns(field+".columns", s.Columns); err != nil {
			return err
		}
	}
	return nil
}

func checkMerge(m *distributed.MergeSpec, job *kalla.Job, root string) error {
	if err := checkSpec("task.merge.spec", m.Spec, job); err != nil {
		return err
	}
	if err := checkBroadcast("task.merge.broadcast", m.Broadcast, m.Spec); err != nil {
		return err
	}
	if err := checkCarry(job, "task.merge.broadcast", m.Broadcast); err != nil {
		return err
	}
	switch {
	case job.CarryOver == nil && (m.CarryOver != nil || m.Ageing != nil):
		return kalla.Invalid("task.merge.carry_over", "is not allowed for a job without carry_over")
	case job.CarryOver != nil && (m.CarryOver == nil || m.Ageing == nil):
		return kalla.Invalid("task.merge.carry_over", "is required for a carry-over job, with its ageing")
	}
	// A job with max_age_days has an expired file per side and partition.
	want := 0
	if job.CarryOver != nil && job.CarryOver.MaxAgeDays != nil {
		want = len(m.Matched)
	}
	for side, l := range m.Expired {
		if len(l) != want {
			return kalla.Invalid(fmt.Sprintf("task.merge.expired[%d]", side), "has %d files, not %d: one per partition of a carry-over job with max_age_days, else none", len(l), want)
		}
	}
	for _, l := range [][]string{m.Matched, m.Unmatched[0], m.Unmatched[1], m.BroadcastFiles.Files, m.Suggested, m.Expired[0], m.Expired[1]} {
		if err := checkKeys("task.merge", l, root); err != nil {
			return err
		}
	}
	if src := m.BroadcastFiles.Source; src != nil && src.Partition != -1 {
		return kalla.Invalid("task.merge.broadcast_files.source", "a broadcast side is read whole (partition -1), not partition %d", src.Partition)
	}
	return checkColumns("task.merge.broadcast_files.columns", m.BroadcastFiles.Columns)
}

// checkBroadcast checks the broadcast side b: only a plain match_sql job is
// broadcast (see duckdb's PlanSplit); with rules or exclusive every match
// task would use the broadcast side's rows again.
func checkBroadcast(field string, b int, spec kalla.MatchSpec) error {
	switch {
	case b < -1 || b > 1:
		return kalla.Invalid(field, "%d is not a side (-1, 0 or 1)", b)
	case b >= 0 && !spec.Plain():
		return kalla.Invalid(field, "a job with rules or exclusive is never broadcast")
	}
	return nil
}

// checkCarry checks what a split carry-over job's tasks need: the as_of
// the plan fixed, so every partition ages its rows to the same day, and no
// broadcast side, whose carried rows every task would carry again.
func checkCarry(job *kalla.Job, field string, broadcast int) error {
	switch {
	case job.CarryOver == nil:
		return nil
	case job.CarryOver.AsOf == "":
		return kalla.Invalid("task.job.carry_over.as_of", "is required: the plan of a split carry-over job fixes it for every task")
	case broadcast >= 0:
		return kalla.Invalid(field, "a carry-over job is never broadcast")
	}
	return nil
}

func checkParts(field string, n int) error {
	if n < 1 || n > maxParts {
		return kalla.Invalid(field, "%d is not a partition count (1 to %d)", n, maxParts)
	}
	return nil
}

// checkSpec checks that s is what distributed.Runner.Plan makes of job: its
// rules' names, match_sql and exclusivity, and its sources' primary keys.
func checkSpec(field string, s kalla.MatchSpec, job *kalla.Job) error {
	rules := job.RuleList()
	if len(s.Rules) != len(rules) {
		return kalla.Invalid(field+".rules", "has %d rules, the job %d", len(s.Rules), len(rules))
	}
	if s.Labelled != (job.HasRules() || job.Confirmed != "") {
		return kalla.Invalid(field+".labelled", "is %v for a job whose rules are %v", s.Labelled, job.HasRules())
	}
	for i, r := range s.Rules {
		f := fmt.Sprintf("%s.rules[%d]", field, i)
		if r.Name != rules[i].Name || r.SQL != rules[i].MatchSQL || r.Explain != job.Explains(i) || r.Suggested != (rules[i].Status == kalla.StatusSuggested) {
			return kalla.Invalid(f, "is not the job's rule %d", i)
		}
		want, err := job.ExclusiveSpec(i)
		if err != nil {
			return err
		}
		if !sameExclusive(r.Exclusive, want) {
			return kalla.Invalid(f+".exclusive", "is not the job's exclusive setting of rule %d", i)
		}
		for _, k := range []struct {
			name  string
			m     kalla.KeyMapping
			alias string
		}{{"left", r.Left, job.Left().Alias}, {"right", r.Right, job.Right().Alias}} {
			f := f + "." + k.name
			if k.m.Alias != k.alias {
				return kalla.Invalid(f+".alias", "%q is not the job's source %q", k.m.Alias, k.alias)
			}
			if !slices.Equal(k.m.SourceColumns, job.KeysOf(k.alias)) {
				return kalla.Invalid(f+".source_columns", "%q are not the primary keys of %q", k.m.SourceColumns, k.alias)
			}
			if len(k.m.ResultColumns) != len(k.m.SourceColumns) {
				return kalla.Invalid(f+".result_columns", "has %d columns for %d keys", len(k.m.ResultColumns), len(k.m.SourceColumns))
			}
		}
	}
	return nil
}

// sameExclusive compares exclusive settings; order_by columns match as SQL
// identifiers do, case-insensitively (the plan spells them as the rule's
// result does).
func sameExclusive(a, b *kalla.ExclusiveSpec) bool {
	if a == nil || b == nil {
		return a == b
	}
	if a.Sides != b.Sides || a.LeaveTies != b.LeaveTies || len(a.OrderBy) != len(b.OrderBy) {
		return false
	}
	for i := range a.OrderBy {
		if !strings.EqualFold(a.OrderBy[i].Column, b.OrderBy[i].Column) || a.OrderBy[i].Desc != b.OrderBy[i].Desc {
			return false
		}
	}
	return true
}

// checkKeys checks that every staging key lies below root.
func checkKeys(field string, keys []string, root string) error {
	for _, k := range keys {
		if err := underRoot(field, k, root); err != nil {
			return err
		}
	}
	return nil
}

func underRoot(field, key, root string) error {
	if path.IsAbs(key) || path.Clean(key) != key || strings.Contains(key, `\`) || !strings.HasPrefix(key, root+"/") {
		return kalla.Invalid(field, "%q is not below the job attempt's staging folder %s", key, root)
	}
	return nil
}

// checkColumns checks staged column types, which are spliced into CASTs.
func checkColumns(field string, cols []distributed.StagedColumn) error {
	for _, c := range cols {
		if !typeName(c.Type) {
			return kalla.Invalid(field, "%q is not a column type", c.Type)
		}
	}
	return nil
}

// typeName reports whether t can be a DuckDB type name as DESCRIBE prints
// it (DECIMAL(18,2), VARCHAR[], STRUCT("a b" INTEGER), ENUM('x', 'y')):
// names, numbers, quoted names and strings, and brackets that never close
// more than they opened, so the text cannot leave the CAST(... AS t) it is
// placed in; no statement separator or comment.
func typeName(t string) bool {
	if t == "" {
		return false
	}
	depth := 0
	for i := 0; i < len(t); i++ {
		c := t[i]
		switch {
		case c == '\'' || c == '"':
			end := i + 1
			for ; end < len(t); end++ {
				if t[end] == c {
					if end+1 < len(t) && t[end+1] == c {
						end++
						continue
					}
					break
				}
			}
			if end >= len(t) {
				return false
			}
			i = end
		case c == '(' || c == '[':
			depth++
		case c == ')' || c == ']':
			depth--
			if depth < 0 {
				return false
			}
		case c == ' ' || c == ',' || c == '_' || c == '.' ||
			('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') || ('0' <= c && c <= '9'):
		default:
			return false
		}
	}
	return depth == 0
}
