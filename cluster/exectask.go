package cluster

import (
	"github.com/kalla-dev/kalla"
	"github.com/kalla-dev/kalla/distributed"
)

// TaskKind is what an executor task does.
type TaskKind string

// The task kinds of a distributed job, in the order the coordinator issues
// them. TaskJob runs a whole job that cannot be split.
const (
	TaskPlan  TaskKind = "plan"
	TaskStage TaskKind = "stage"
	TaskMatch TaskKind = "match"
	TaskMerge TaskKind = "merge"
	TaskJob   TaskKind = "job"
)

// ExecTask is one unit of a distributed job, a tagged value: Kind says
// which one payload is set (Plan, Stage, Match or Merge; none for TaskJob,
// which runs the whole job). Gen identifies the coordinator's attempt; its
// staging folder is Root, and an executor drops a task whose Root is gone
// (the job finished, failed or was retried). Root, the payloads' Dir and
// StageDirs and the files of Merge are keys of the cluster's
// distributed.Staging, not local paths (distributed/layout.go).
type ExecTask struct {
	Gen  string    `json:"gen"`
	ID   string    `json:"id"`
	Kind TaskKind  `json:"kind"`
	Job  kalla.Job `json:"job"`
	Root string    `json:"root"`

	Plan  *distributed.PlanSpec      `json:"plan,omitempty"`
	Stage *distributed.StageSpec     `json:"stage,omitempty"`
	Match *distributed.PartitionSpec `json:"match,omitempty"`
	Merge *distributed.MergeSpec     `json:"merge,omitempty"`
}

// dir is the staging folder t writes into, "" when it writes none there
// (the plan and the merge, whose output is the job's).
func (t *ExecTask) dir() string {
	switch {
	case t.Kind == TaskStage && t.Stage != nil:
		return t.Stage.Dir
	case t.Kind == TaskMatch && t.Match != nil:
		return t.Match.Dir
	}
	return ""
}

// withDir returns a copy of t writing into the folder dir instead.
func (t *ExecTask) withDir(dir string) *ExecTask {
	c := *t
	switch {
	case t.Kind == TaskStage && t.Stage != nil:
		st := *t.Stage
		st.Dir, c.Stage = dir, &st
	case t.Kind == TaskMatch && t.Match != nil:
		m := *t.Match
		m.Dir, c.Match = dir, &m
	}
	return &c
}

// stageOfTask is the job stage a task of kind k belongs to, reported when
// it fails.
func stageOfTask(k TaskKind) kalla.Stage {
	switch k {
	case TaskStage:
		return kalla.StageStaging
	case TaskMatch:
		return kalla.StageMatching
	case TaskMerge:
		return kalla.StageWriting
	}
	return kalla.StageValidating
}
