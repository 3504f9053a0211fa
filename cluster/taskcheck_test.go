package cluster

import (
	"errors"
	"testing"

	"github.com/kalla-dev/kalla"
)

// A forged task is refused naming the field, whatever part of it lies; the
// tasks a coordinator makes pass.
func TestTaskCheckRefusesForgedParts(t *testing.T) {
	t.Parallel()
	job := kalla.Job{
		RunID:       "6f1e1c1e-0b1a-4c1a-9f1e-1c1e0b1a4c1a",
		MatchSQL:    "SELECT i.id AS left_src_id, p.id AS right_src_id FROM left_src i JOIN right_src p ON p.ref = i.id",
		Sources:     []kalla.SourceSpec{{Alias: "left_src", URI: "/d/l.csv"}, {Alias: "right_src", URI: "/d/r.csv"}},
		OutputPath:  "/out",
		PrimaryKeys: map[string][]string{"left_src": {"id"}, "right_src": {"id"}},
	}
	root := "cluster/" + job.RunID + "/GEN1"
	spec := kalla.MatchSpec{SQL: job.MatchSQL,
		Left:  kalla.KeyMapping{Alias: "left_src", SourceColumns: []string{"id"}, ResultColumns: []string{"left_src_id"}},
		Right: kalla.KeyMapping{Alias: "right_src", SourceColumns: []string{"id"}, ResultColumns: []string{"right_src_id"}},
	}
	match := func() *ExecTask {
		return &ExecTask{Gen: "GEN1", ID: "match-0", Kind: TaskMatch, Job: job, Root: root, Broadcast: -1,
			Parts: 4, Partition: 1, Dir: root + "/match/p1", Spec: spec,
			Direct: [2]bool{false, true}, Hashes: [2]string{`hash("id")`, `hash(CAST("ref" AS DECIMAL(20,0)))`},
			StageDirs: [2][]string{{root + "/stage/0-0"}, nil},
			Columns:   [2][]kalla.StagedColumn{{{Name: "id", Type: "BIGINT"}, {Name: "tags", Type: `STRUCT("a b" VARCHAR[], e ENUM('x', 'y'))`}}, nil},
		}
	}
	stage := func() *ExecTask {
		return &ExecTask{Gen: "GEN1", ID: "stage-0-0", Kind: TaskStage, Job: job, Root: root, Broadcast: -1,
			Side: 0, Hash: `hash("id", "a ""quoted"" key")`, Parts: 4, Dir: root + "/stage/0-0"}
	}
	merge := func() *ExecTask {
		return &ExecTask{Gen: "GEN1", ID: "merge", Kind: TaskMerge, Job: job, Root: root, Broadcast: -1,
			Merge: kalla.MergeSpec{Spec: spec, Broadcast: -1, Matched: []string{root + "/match/p0/matched.parquet"}}}
	}
	for name, task := range map[string]*ExecTask{"match": match(), "stage": stage(), "merge": merge()} {
		if err := task.check(); err != nil {
			t.Errorf("%s task refused: %v", name, err)
		}
	}
	cases := []struct {
		name  string
		task  *ExecTask
		field string
	}{
		{"dir outside staging", func() *ExecTask { x := stage(); x.Dir = root + "/../../../etc"; return x }(), "task.dir"},
		{"absolute dir", func() *ExecTask { x := stage(); x.Dir = "/tmp/x"; return x }(), "task.dir"},
		{"another job's dir", func() *ExecTask { x := stage(); x.Dir = "cluster/other/GEN1/stage/0"; return x }(), "task.dir"},
		{"root of staging", func() *ExecTask { x := stage(); x.Root = ""; return x }(), "task.root"},
		{"gen with a path", func() *ExecTask { x := stage(); x.Gen = "../x"; return x }(), "task.gen"},
		{"hash injection", func() *ExecTask {
			x := stage()
			x.Hash = `hash("id")) FROM read_text('/etc/passwd') --`
			return x
		}(), "task.hash"},
		{"hash statement", func() *ExecTask { x := stage(); x.Hash = `1; COPY left_src TO '/tmp/x'`; return x }(), "task.hash"},
		{"side", func() *ExecTask { x := stage(); x.Side = 2; return x }(), "task.side"},
		{"parts", func() *ExecTask { x := stage(); x.Parts = 1 << 30; return x }(), "task.parts"},
		{"spec sql", func() *ExecTask {
			x := match()
			x.Spec.SQL = "SELECT 1; COPY (SELECT 1) TO '/tmp/x'"
			return x
		}(), "task.spec.sql"},
		{"spec keys", func() *ExecTask { x := match(); x.Spec.Left.SourceColumns = []string{"amount"}; return x }(), "task.spec.left.source_columns"},
		{"spec alias", func() *ExecTask { x := match(); x.Spec.Right.Alias = "kalla_job_1.right_src"; return x }(), "task.spec.right.alias"},
		{"direct hash", func() *ExecTask { x := match(); x.Hashes[1] = "read_text('/etc/passwd')"; return x }(), "task.hashes"},
		{"partition", func() *ExecTask { x := match(); x.Partition = 4; return x }(), "task.partition"},
		{"stage dirs", func() *ExecTask { x := match(); x.StageDirs[0] = []string{"cluster/../../etc"}; return x }(), "task.stage_dirs"},
		{"column type", func() *ExecTask {
			x := match()
			x.Columns[0][0].Type = "INTEGER) AS id FROM read_text('/etc/passwd') --"
			return x
		}(), "task.columns"},
		{"column type comment", func() *ExecTask { x := match(); x.Columns[0][0].Type = "INTEGER -- x"; return x }(), "task.columns"},
		{"merge file", func() *ExecTask { x := merge(); x.Merge.Matched = []string{"../../etc/passwd"}; return x }(), "task.merge"},
		{"merge sql", func() *ExecTask { x := merge(); x.Merge.Spec.SQL = "SELECT 2"; return x }(), "task.merge.spec.sql"},
		{"kind", func() *ExecTask { x := stage(); x.Kind = "shell"; return x }(), "task.kind"},
	}
	for _, tc := range cases {
		err := tc.task.check()
		var v *kalla.ValidationError
		if !errors.As(err, &v) || v.Field != tc.field {
			t.Errorf("%s: got %v, want a validation error on %s", tc.name, err, tc.field)
		}
	}
}
