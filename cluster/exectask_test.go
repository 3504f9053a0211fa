package cluster

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/kalla-dev/kalla"
	"github.com/kalla-dev/kalla/distributed"
)

// A task's payload travels as explicit JSON under its kind's name, and
// nothing of the other kinds travels with it: the wire format is pinned
// here, so that a renamed Go field cannot silently change what executors
// of the same release read.
func TestExecTaskWire(t *testing.T) {
	t.Parallel()
	spec := kalla.MatchSpec{Rules: []kalla.RuleSpec{{Name: "match", SQL: "SELECT 1",
		Left:  kalla.KeyMapping{Alias: "l", SourceColumns: []string{"id"}, ResultColumns: []string{"l_id"}},
		Right: kalla.KeyMapping{Alias: "r", SourceColumns: []string{"id"}, ResultColumns: []string{"r_id"}}}},
	}
	const specJSON = `{"rules":[{"name":"match","sql":"SELECT 1","left":{"alias":"l","source_columns":["id"],"result_columns":["l_id"]},"right":{"alias":"r","source_columns":["id"],"result_columns":["r_id"]}}]}`
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	cases := []struct {
		task *ExecTask
		want string
	}{
		{&ExecTask{Kind: TaskPlan, Plan: &distributed.PlanSpec{Splits: 4}}, `{"splits":4}`},
		{&ExecTask{Kind: TaskStage, Stage: &distributed.StageSpec{Side: 1, Hash: `hash("id")`, Parts: 4, Dir: "a/stage/1-0",
			Split: &kalla.SourceSplit{Columns: []kalla.Column{}, Data: json.RawMessage(`{"pages":[0,8]}`)}}},
			`{"side":1,"hash":"hash(\"id\")","parts":4,"dir":"a/stage/1-0","split":{"columns":[],"data":{"pages":[0,8]}}}`},
		{&ExecTask{Kind: TaskMatch, Match: &distributed.PartitionSpec{Partition: 2, Parts: 4, Dir: "a/match/p2", Spec: spec, Broadcast: -1,
			Sides: [2]distributed.PartitionSide{
				{StageDirs: []string{"a/stage/0-0"}, Columns: []distributed.StagedColumn{{Name: "id", Type: "BIGINT"}}},
				{Direct: true, Hash: `hash("id")`},
			}}},
			`{"partition":2,"parts":4,"dir":"a/match/p2","spec":` + specJSON + `,"broadcast":-1,"sides":[` +
				`{"stage_dirs":["a/stage/0-0"],"columns":[{"name":"id","type":"BIGINT"}]},{"direct":true,"hash":"hash(\"id\")"}]}`},
		{&ExecTask{Kind: TaskMerge, Merge: &distributed.MergeSpec{Spec: spec, Matched: []string{"a/match/p0/matched.parquet"},
			Broadcast: 0, BroadcastFiles: distributed.StagedSet{Source: &distributed.SourcePartition{Partition: -1}},
			Counts: [2]int64{3, 4}, Start: start}},
			`{"spec":` + specJSON + `,"matched":["a/match/p0/matched.parquet"],"unmatched":[null,null],"broadcast":0,` +
				`"broadcast_files":{"files":null,"columns":null,"source":{"hash":"","parts":0,"partition":-1}},"counts":[3,4],"start":"2026-01-02T03:04:05Z"}`},
		{&ExecTask{Kind: TaskJob}, ``},
	}
	for _, tc := range cases {
		data, err := json.Marshal(tc.task)
		if err != nil {
			t.Fatal(err)
		}
		var fields map[string]json.RawMessage
		if err := json.Unmarshal(data, &fields); err != nil {
			t.Fatal(err)
		}
		for _, k := range []TaskKind{TaskPlan, TaskStage, TaskMatch, TaskMerge} {
			got, sent := fields[string(k)]
			switch {
			case k != tc.task.Kind && sent:
				t.Errorf("%s task carries a %s payload: %s", tc.task.Kind, k, got)
			case k == tc.task.Kind && !bytes.Equal(got, []byte(tc.want)):
				t.Errorf("%s payload on the wire:\n got %s\nwant %s", k, got, tc.want)
			}
		}
		var back ExecTask
		if err := json.Unmarshal(data, &back); err != nil {
			t.Fatal(err)
		}
		again, _ := json.Marshal(&back)
		if !bytes.Equal(again, data) {
			t.Errorf("%s task does not survive the wire:\n sent %s\n read %s", tc.task.Kind, data, again)
		}
	}
}
