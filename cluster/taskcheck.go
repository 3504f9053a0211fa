package cluster

import (
	"path"
	"regexp"
	"slices"
	"strings"

	"github.com/kalla-dev/kalla"
)

// An executor trusts nothing in a task but its job, which it validates as
// the scheduler did (the same SQL sandbox); everything else a task carries
// is checked against what the coordinator can have produced from that
// job, because anyone holding the cluster's credentials can publish a task:
//
//   - the match query and its key mappings are the job's own (Spec.SQL is
//     the job's match_sql, the keys its primary keys);
//   - the SQL fragments the planner builds (partition hash expressions,
//     staged column types) match the planner's grammar, so they stay inside
//     the expression they are spliced into;
//   - every staging key lies below the job attempt's own folder,
//     cluster/<run_id>/<gen>, with no ".." or absolute path;
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
// *kalla.ValidationError naming the field.
func (t *ExecTask) check() error {
	job := &t.Job
	if !genID.MatchString(t.Gen) {
		return kalla.Invalid("task.gen", "%q is not an attempt id", t.Gen)
	}
	root := path.Join("cluster", job.RunID, t.Gen)
	if t.Root != root {
		return kalla.Invalid("task.root", "%q is not the job attempt's staging folder %s", t.Root, root)
	}
	if t.Dir != "" {
		if err := underRoot("task.dir", t.Dir, root); err != nil {
			return err
		}
	}
	switch t.Kind {
	case TaskPlan:
		return checkParts("task.parts", t.Parts)
	case TaskJob:
		return nil
	case TaskStage:
		if t.Side != 0 && t.Side != 1 {
			return kalla.Invalid("task.side", "%d is not a source (0 or 1)", t.Side)
		}
		if t.Dir == "" {
			return kalla.Invalid("task.dir", "is required")
		}
		if !hashExpr.MatchString(t.Hash) {
			return kalla.Invalid("task.hash", "%q is not a partition hash", t.Hash)
		}
		return checkParts("task.parts", t.Parts)
	case TaskMatch:
		if err := checkParts("task.parts", t.Parts); err != nil {
			return err
		}
		if t.Partition < 0 || t.Partition >= t.Parts {
			return kalla.Invalid("task.partition", "%d is not a partition of %d", t.Partition, t.Parts)
		}
		if t.Broadcast < -1 || t.Broadcast > 1 {
			return kalla.Invalid("task.broadcast", "%d is not a side (-1, 0 or 1)", t.Broadcast)
		}
		if t.Dir == "" {
			return kalla.Invalid("task.dir", "is required")
		}
		if err := checkSpec("task.spec", t.Spec, job); err != nil {
			return err
		}
		for side := range 2 {
			if t.Direct[side] && !hashExpr.MatchString(t.Hashes[side]) {
				return kalla.Invalid("task.hashes", "%q is not a partition hash", t.Hashes[side])
			}
			if err := checkKeys("task.stage_dirs", t.StageDirs[side], root); err != nil {
				return err
			}
			if err := checkColumns("task.columns", t.Columns[side]); err != nil {
				return err
			}
		}
		return nil
	case TaskMerge:
		m := t.Merge
		if err := checkSpec("task.merge.spec", m.Spec, job); err != nil {
			return err
		}
		if m.Broadcast < -1 || m.Broadcast > 1 {
			return kalla.Invalid("task.merge.broadcast", "%d is not a side (-1, 0 or 1)", m.Broadcast)
		}
		for _, l := range [][]string{m.Matched, m.Unmatched[0], m.Unmatched[1], m.BroadcastFiles.Files} {
			if err := checkKeys("task.merge", l, root); err != nil {
				return err
			}
		}
		if src := m.BroadcastFiles.Source; src != nil && src.Partition != -1 {
			return kalla.Invalid("task.merge.broadcast_files.source", "a broadcast side is read whole (partition -1), not partition %d", src.Partition)
		}
		return checkColumns("task.merge.broadcast_files.columns", m.BroadcastFiles.Columns)
	}
	return kalla.Invalid("task.kind", "%q is not a task kind", t.Kind)
}

func checkParts(field string, n int) error {
	if n < 1 || n > maxParts {
		return kalla.Invalid(field, "%d is not a partition count (1 to %d)", n, maxParts)
	}
	return nil
}

// checkSpec checks that s is what Runner.PlanSplit makes of job: its
// match_sql, and its sources' primary keys.
func checkSpec(field string, s kalla.MatchSpec, job *kalla.Job) error {
	if s.SQL != job.MatchSQL {
		return kalla.Invalid(field+".sql", "is not the job's match_sql")
	}
	for _, k := range []struct {
		name  string
		m     kalla.KeyMapping
		alias string
	}{{"left", s.Left, job.Left().Alias}, {"right", s.Right, job.Right().Alias}} {
		f := field + "." + k.name
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
	return nil
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
func checkColumns(field string, cols []kalla.StagedColumn) error {
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
