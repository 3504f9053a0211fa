package cluster

import (
	"errors"
	"testing"

	"github.com/kalla-dev/kalla"
	"github.com/kalla-dev/kalla/distributed"
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
	// spec returns a fresh spec, so that a case that spoils one spoils no
	// other.
	spec := func() kalla.MatchSpec {
		return kalla.MatchSpec{Rules: []kalla.RuleSpec{{Name: "match", SQL: job.MatchSQL,
			Left:  kalla.KeyMapping{Alias: "left_src", SourceColumns: []string{"id"}, ResultColumns: []string{"left_src_id"}},
			Right: kalla.KeyMapping{Alias: "right_src", SourceColumns: []string{"id"}, ResultColumns: []string{"right_src_id"}},
		}}}
	}
	match := func() *ExecTask {
		return &ExecTask{Gen: "GEN1", ID: "match-0", Kind: TaskMatch, Job: job, Root: root,
			Match: &distributed.PartitionSpec{Parts: 4, Partition: 1, Dir: root + "/match/p1", Spec: spec(), Broadcast: -1,
				Sides: [2]distributed.PartitionSide{
					{StageDirs: []string{root + "/stage/0-0"}, Columns: []distributed.StagedColumn{{Name: "id", Type: "BIGINT"}, {Name: "tags", Type: `STRUCT("a b" VARCHAR[], e ENUM('x', 'y'))`}}},
					{Direct: true, Hash: `hash(CAST("ref" AS DECIMAL(20,0)))`},
				}}}
	}
	stage := func() *ExecTask {
		return &ExecTask{Gen: "GEN1", ID: "stage-0-0", Kind: TaskStage, Job: job, Root: root,
			Stage: &distributed.StageSpec{Side: 0, Hash: `hash("id", "a ""quoted"" key")`, Parts: 4, Dir: root + "/stage/0-0"}}
	}
	merge := func() *ExecTask {
		return &ExecTask{Gen: "GEN1", ID: "merge", Kind: TaskMerge, Job: job, Root: root,
			Merge: &distributed.MergeSpec{Spec: spec(), Broadcast: -1, Matched: []string{root + "/match/p0/matched.parquet"}}}
	}
	plan := func() *ExecTask {
		return &ExecTask{Gen: "GEN1", ID: "plan", Kind: TaskPlan, Job: job, Root: root, Plan: &distributed.PlanSpec{Splits: 4}}
	}
	// exclusive makes x's job exclusive and returns the spec its tasks carry.
	exclusive := func(x *ExecTask) kalla.MatchSpec {
		x.Job.Exclusive = &kalla.Exclusive{}
		s := spec()
		s.Rules[0].Exclusive = &kalla.ExclusiveSpec{Sides: [2]bool{true, true}}
		return s
	}
	whole := func() *ExecTask { return &ExecTask{Gen: "GEN1", ID: "job", Kind: TaskJob, Job: job, Root: root} }
	exclusiveMatch := match()
	exclusiveMatch.Match.Spec = exclusive(exclusiveMatch)
	for name, task := range map[string]*ExecTask{"match": match(), "stage": stage(), "merge": merge(), "plan": plan(), "job": whole(), "exclusive match": exclusiveMatch} {
		if err := task.check(); err != nil {
			t.Errorf("%s task refused: %v", name, err)
		}
	}
	cases := []struct {
		name  string
		task  *ExecTask
		field string
	}{
		{"dir outside staging", func() *ExecTask { x := stage(); x.Stage.Dir = root + "/../../../etc"; return x }(), "task.stage.dir"},
		{"absolute dir", func() *ExecTask { x := stage(); x.Stage.Dir = "/tmp/x"; return x }(), "task.stage.dir"},
		{"another job's dir", func() *ExecTask { x := stage(); x.Stage.Dir = "cluster/other/GEN1/stage/0"; return x }(), "task.stage.dir"},
		{"root of staging", func() *ExecTask { x := stage(); x.Root = ""; return x }(), "task.root"},
		{"gen with a path", func() *ExecTask { x := stage(); x.Gen = "../x"; return x }(), "task.gen"},
		{"hash injection", func() *ExecTask {
			x := stage()
			x.Stage.Hash = `hash("id")) FROM read_text('/etc/passwd') --`
			return x
		}(), "task.stage.hash"},
		{"hash statement", func() *ExecTask { x := stage(); x.Stage.Hash = `1; COPY left_src TO '/tmp/x'`; return x }(), "task.stage.hash"},
		{"side", func() *ExecTask { x := stage(); x.Stage.Side = 2; return x }(), "task.stage.side"},
		{"parts", func() *ExecTask { x := stage(); x.Stage.Parts = 1 << 30; return x }(), "task.stage.parts"},
		{"spec sql", func() *ExecTask {
			x := match()
			x.Match.Spec.Rules[0].SQL = "SELECT 1; COPY (SELECT 1) TO '/tmp/x'"
			return x
		}(), "task.match.spec.rules[0]"},
		{"spec keys", func() *ExecTask {
			x := match()
			x.Match.Spec.Rules[0].Left.SourceColumns = []string{"amount"}
			return x
		}(), "task.match.spec.rules[0].left.source_columns"},
		{"spec alias", func() *ExecTask { x := match(); x.Match.Spec.Rules[0].Right.Alias = "kalla_job_1.right_src"; return x }(), "task.match.spec.rules[0].right.alias"},
		{"direct hash", func() *ExecTask { x := match(); x.Match.Sides[1].Hash = "read_text('/etc/passwd')"; return x }(), "task.match.sides[1].hash"},
		{"partition", func() *ExecTask { x := match(); x.Match.Partition = 4; return x }(), "task.match.partition"},
		{"stage dirs", func() *ExecTask { x := match(); x.Match.Sides[0].StageDirs = []string{"cluster/../../etc"}; return x }(), "task.match.sides[0].stage_dirs"},
		{"column type", func() *ExecTask {
			x := match()
			x.Match.Sides[0].Columns[0].Type = "INTEGER) AS id FROM read_text('/etc/passwd') --"
			return x
		}(), "task.match.sides[0].columns"},
		{"column type comment", func() *ExecTask { x := match(); x.Match.Sides[0].Columns[0].Type = "INTEGER -- x"; return x }(), "task.match.sides[0].columns"},
		{"merge file", func() *ExecTask { x := merge(); x.Merge.Matched = []string{"../../etc/passwd"}; return x }(), "task.merge"},
		{"merge sql", func() *ExecTask { x := merge(); x.Merge.Spec.Rules[0].SQL = "SELECT 2"; return x }(), "task.merge.spec.rules[0]"},
		{"kind", func() *ExecTask { x := stage(); x.Kind = "shell"; return x }(), "task.kind"},
		{"match dir", func() *ExecTask { x := match(); x.Match.Dir = root + "/../GEN2/match/p1"; return x }(), "task.match.dir"},
		{"match broadcast", func() *ExecTask { x := match(); x.Match.Broadcast = 2; return x }(), "task.match.broadcast"},
		{"merge broadcast partition", func() *ExecTask {
			x := merge()
			x.Merge.Broadcast = 0
			x.Merge.BroadcastFiles.Source = &distributed.SourcePartition{Partition: 1}
			return x
		}(), "task.merge.broadcast_files.source"},
		// Only a plain match_sql job is ever broadcast.
		{"broadcast match of an exclusive job", func() *ExecTask {
			x := match()
			x.Match.Spec, x.Match.Broadcast = exclusive(x), 0
			return x
		}(), "task.match.broadcast"},
		{"broadcast merge of an exclusive job", func() *ExecTask { x := merge(); x.Merge.Spec, x.Merge.Broadcast = exclusive(x), 1; return x }(), "task.merge.broadcast"},
		{"plan splits", func() *ExecTask { x := plan(); x.Plan.Splits = 0; return x }(), "task.plan.splits"},
		// The tag and the payload agree: a payload of another kind, or
		// none, is refused rather than ignored.
		{"kind without payload", func() *ExecTask { x := stage(); x.Stage = nil; return x }(), "task.stage"},
		{"payload of another kind", func() *ExecTask { x := stage(); x.Merge = merge().Merge; return x }(), "task.merge"},
		{"job with a payload", func() *ExecTask { x := whole(); x.Match = match().Match; return x }(), "task.match"},
		{"kind renamed", func() *ExecTask { x := stage(); x.Kind = TaskMatch; return x }(), "task.stage"},
	}
	for _, tc := range cases {
		err := tc.task.check()
		var v *kalla.ValidationError
		if !errors.As(err, &v) || v.Field != tc.field {
			t.Errorf("%s: got %v, want a validation error on %s", tc.name, err, tc.field)
		}
	}
}
