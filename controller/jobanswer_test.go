package controller

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/swarm"

	"github.com/swarm-reconciler/reconciler/spec"
	"github.com/swarm-reconciler/reconciler/swarmstate"
)

// TestJobStoppedReadsOnlyWhereItMatters: a volume job's output is read only when a task of
// the app on its node was reported ended after the job's answer, and the tasks it names as
// removed by it are what cover such a task (lateTasks).
func TestJobStoppedReadsOnlyWhereItMatters(t *testing.T) {
	t0 := time.Date(2026, 12, 5, 4, 0, 0, 0, time.UTC)
	job := swarm.Service{ID: "job", Spec: swarm.ServiceSpec{Annotations: swarm.Annotations{Name: "a_volumes-n2",
		Labels: map[string]string{swarmstate.LabelApp: "a", swarmstate.LabelOwner: "d", LabelJob: jobVolumes, LabelJobNode: "n2"}}}}
	answer := swarm.Task{ID: "jt", ServiceID: "job", NodeID: "n2", Status: swarm.TaskStatus{State: swarm.TaskStateComplete, Timestamp: t0}}
	app := func(id string, ended time.Time) swarm.Task {
		return swarm.Task{ID: id, ServiceID: "app", NodeID: "n2",
			Spec: swarm.TaskSpec{ContainerSpec: &swarm.ContainerSpec{Mounts: []mountSpec{{Type: "volume", Source: "a_data", VolumeOptions: ownVolume()}}}}, Status: swarm.TaskStatus{State: swarm.TaskStateShutdown, Timestamp: ended,
				ContainerStatus: &swarm.ContainerStatus{ContainerID: "c-" + id}}}
	}
	for _, tc := range []struct {
		name  string
		tasks []swarm.Task
		want  []string // the covered tasks read
	}{
		{"ended before the answer: nothing to read", []swarm.Task{answer, app("t1", t0.Add(-time.Second))}, nil},
		{"ended after the answer: read", []swarm.Task{answer, app("t1", t0.Add(time.Second))}, []string{"t1", "t9"}},
		{"the job has not answered", []swarm.Task{{ID: "jt", ServiceID: "job", NodeID: "n2", Status: swarm.TaskStatus{State: swarm.TaskStateRunning}},
			app("t1", t0.Add(time.Second))}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newFakeEngine()
			e.taskLog = func(id string) string {
				return "removed 0 containers of the app's jobs\n" + StoppedRemoved + " t1 t9\nnothing of app a left on this node; removed 1 volumes: a_data\n"
			}
			r := &Reconciler{Engine: e}
			got := r.jobStopped(t.Context(), &swarmstate.Snapshot{Services: []swarm.Service{job}, Tasks: tc.tasks})
			if !slices.Equal(got["jt"], tc.want) {
				t.Errorf("covered %v, want %v", got, tc.want)
			}
			if read := slices.Contains(e.calls, "logs jt"); read != (tc.want != nil) {
				t.Errorf("job output read: %v, want %v (calls %v)", read, tc.want != nil, e.calls)
			}
		})
	}
}

// TestTeardownAsksANodeOnce: a node's job answers while swarm still lists the app's ended
// tasks there (the job removed their stopped containers itself, before the managers reaped
// the tasks): the teardown takes the answer and does not record the node again from those
// tasks, which made it start a second job there (CI: TestMultinodeHA, "created 2 times").
func TestTeardownAsksANodeOnce(t *testing.T) {
	f := multiNodeFixture(t)
	f.engine.taskLinger, f.engine.containersHold = 20, true
	if err := spec.Unplace(f.r.SpecsDir, "m"); err != nil {
		t.Fatal(err)
	}
	st := f.settle("m")
	if st.Phase != spec.PhaseDeleted || len(f.engine.remoteVolumes("n2")) != 0 {
		t.Fatalf("%s %s; n2 volumes %v", st.Phase, st.Message, f.engine.remoteVolumes("n2"))
	}
	// Passes after Deleted (an engine event, a resync) while swarm still lists the tasks: the
	// node is not recorded again (CI: a job made after Deleted, left for good).
	for range 3 {
		if st = f.pass("m"); st.Phase != spec.PhaseDeleted {
			t.Fatalf("a pass after Deleted: %s %s", st.Phase, st.Message)
		}
	}
	created := 0
	for _, c := range f.engine.writes() {
		if strings.HasPrefix(c, "create service") && strings.Contains(c, "_volumes-") {
			created++
		}
	}
	if created != 1 {
		t.Errorf("%d volume jobs created on host-2, want 1: %v", created, f.engine.writes())
	}
}

// TestOnceTeardownOnOtherNodesEndsWithoutEvents: in `reconciler once` and the janitor no
// engine event comes; a teardown with a volume job on another node still ends within seconds
// (review K: a pass that waited on the looks of tasks that never move came after 30 s).
func TestOnceTeardownOnOtherNodesEndsWithoutEvents(t *testing.T) {
	f := multiNodeFixture(t)
	f.engine.now = f.now
	if err := spec.Unplace(f.r.SpecsDir, "m"); err != nil {
		t.Fatal(err)
	}
	c := &Controller{R: f.r, Workers: 1}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	start := time.Now()
	ok := c.settle(ctx, "m")
	st, _ := spec.ReadStatus(f.r.StatusDir, "m")
	if !ok || st.Phase != spec.PhaseDeleted || time.Since(start) > 5*time.Second {
		t.Fatalf("settled %v after %s: %s %s", ok, time.Since(start).Round(time.Millisecond), st.Phase, st.Message)
	}
}
