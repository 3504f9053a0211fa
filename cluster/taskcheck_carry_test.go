package cluster

import (
	"errors"
	"testing"

	"github.com/kalla-dev/kalla"
	"github.com/kalla-dev/kalla/distributed"
)

// The tasks of a split carry-over job carry what each partition needs: the
// as_of the plan fixed, the hash of every side (a staged one too) and, in
// the merge, the summed counts and one expired file per side and
// partition when rows expire. A task lacking one, or carrying them for a
// job without carry_over, is refused naming the field.
func TestTaskCheckCarryOver(t *testing.T) {
	t.Parallel()
	maxAge := 60
	job := kalla.Job{
		RunID:       "6f1e1c1e-0b1a-4c1a-9f1e-1c1e0b1a4c1a",
		MatchSQL:    "SELECT l.id AS l_id, r.pid AS r_pid FROM l JOIN r ON r.pid = l.id",
		Sources:     []kalla.SourceSpec{{Alias: "l", URI: "/d/l.csv"}, {Alias: "r", URI: "/d/r.csv"}},
		OutputPath:  "/out",
		PrimaryKeys: map[string][]string{"l": {"id"}, "r": {"pid"}},
		CarryOver:   &kalla.CarryOver{From: "/day1", AsOf: "2026-03-02", MaxAgeDays: &maxAge},
	}
	root := "cluster/" + job.RunID + "/GEN1"
	spec := func() kalla.MatchSpec {
		return kalla.MatchSpec{Rules: []kalla.RuleSpec{{Name: "match", SQL: job.MatchSQL,
			Left:  kalla.KeyMapping{Alias: "l", SourceColumns: []string{"id"}, ResultColumns: []string{"l_id"}},
			Right: kalla.KeyMapping{Alias: "r", SourceColumns: []string{"pid"}, ResultColumns: []string{"r_pid"}},
		}}}
	}
	// withJob gives x a copy of job that change edits.
	withJob := func(x *ExecTask, change func(*kalla.Job)) *ExecTask {
		co := *job.CarryOver
		x.Job.CarryOver = &co
		change(&x.Job)
		return x
	}
	match := func() *ExecTask {
		return withJob(&ExecTask{Gen: "GEN1", ID: "match-1", Kind: TaskMatch, Job: job, Root: root,
			Match: &distributed.PartitionSpec{Parts: 2, Partition: 1, Dir: root + "/match/p1", Spec: spec(), Broadcast: -1,
				Sides: [2]distributed.PartitionSide{
					{StageDirs: []string{root + "/stage/0-0"}, Hash: `hash("id")`, Columns: []distributed.StagedColumn{{Name: "id", Type: "VARCHAR"}}},
					{Direct: true, Hash: `hash("pid")`},
				}}}, func(*kalla.Job) {})
	}
	counts := func() (*kalla.CarryOverCounts, *kalla.Ageing) {
		return &kalla.CarryOverCounts{AsOf: "2026-03-02"}, &kalla.Ageing{}
	}
	merge := func() *ExecTask {
		co, ageing := counts()
		return withJob(&ExecTask{Gen: "GEN1", ID: "merge", Kind: TaskMerge, Job: job, Root: root,
			Merge: &distributed.MergeSpec{Spec: spec(), Broadcast: -1, CarryOver: co, Ageing: ageing,
				Matched: []string{root + "/match/p0/matched.parquet", root + "/match/p1/matched.parquet"},
				Expired: [2][]string{
					{root + "/match/p0/expired_left.parquet", root + "/match/p1/expired_left.parquet"},
					{root + "/match/p0/expired_right.parquet", root + "/match/p1/expired_right.parquet"},
				}}}, func(*kalla.Job) {})
	}
	for name, task := range map[string]*ExecTask{"match": match(), "merge": merge(),
		"merge without max_age_days": func() *ExecTask {
			x := withJob(merge(), func(j *kalla.Job) { j.CarryOver.MaxAgeDays = nil })
			x.Merge.Expired = [2][]string{}
			return x
		}()} {
		if err := task.check(); err != nil {
			t.Errorf("%s task refused: %v", name, err)
		}
	}
	cases := []struct {
		name  string
		task  *ExecTask
		field string
	}{
		{"match without as_of", withJob(match(), func(j *kalla.Job) { j.CarryOver.AsOf = "" }), "task.job.carry_over.as_of"},
		{"merge without as_of", withJob(merge(), func(j *kalla.Job) { j.CarryOver.AsOf = "" }), "task.job.carry_over.as_of"},
		{"staged side without hash", func() *ExecTask { x := match(); x.Match.Sides[0].Hash = ""; return x }(), "task.match.sides[0].hash"},
		{"staged side hash injection", func() *ExecTask {
			x := match()
			x.Match.Sides[0].Hash = `hash("id")) FROM read_text('/etc/passwd') --`
			return x
		}(), "task.match.sides[0].hash"},
		{"broadcast", func() *ExecTask { x := match(); x.Match.Broadcast = 1; return x }(), "task.match.broadcast"},
		{"merge without counts", func() *ExecTask { x := merge(); x.Merge.CarryOver = nil; return x }(), "task.merge.carry_over"},
		{"merge without ageing", func() *ExecTask { x := merge(); x.Merge.Ageing = nil; return x }(), "task.merge.carry_over"},
		{"counts of a job without carry_over", func() *ExecTask {
			x := withJob(merge(), func(j *kalla.Job) { j.CarryOver = nil })
			x.Merge.Expired = [2][]string{}
			return x
		}(), "task.merge.carry_over"},
		{"an expired file missing", func() *ExecTask { x := merge(); x.Merge.Expired[1] = x.Merge.Expired[1][:1]; return x }(), "task.merge.expired[1]"},
		{"expired files without max_age_days", withJob(merge(), func(j *kalla.Job) { j.CarryOver.MaxAgeDays = nil }), "task.merge.expired[0]"},
		{"expired file outside staging", func() *ExecTask { x := merge(); x.Merge.Expired[0][1] = "../../etc/passwd"; return x }(), "task.merge"},
	}
	for _, tc := range cases {
		err := tc.task.check()
		var v *kalla.ValidationError
		if !errors.As(err, &v) || v.Field != tc.field {
			t.Errorf("%s: got %v, want a validation error on %s", tc.name, err, tc.field)
		}
	}
}
