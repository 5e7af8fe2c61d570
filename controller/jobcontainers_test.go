package controller

import (
	"slices"
	"testing"
	"time"

	"github.com/docker/docker/api/types/swarm"

	"github.com/swarm-reconciler/reconciler/spec"
	"github.com/swarm-reconciler/reconciler/swarmstate"
)

// TestTeardownRemovesAJobContainerWhoseTaskSwarmForgot: the pass that makes a running recipe
// job run nowhere records its task's container; by the next pass swarm has deleted the stopped
// task of the job's earlier run (its desired state is remove), so no task names the container.
// The job's removal still comes after its container's (CI, 2026-12-05: the container outlived
// Deleted when the pass came after swarm's reaper). The record lives in the status file, so a
// reconciler restarted between the two passes removes the container too.
func TestTeardownRemovesAJobContainerWhoseTaskSwarmForgot(t *testing.T) {
	own := map[string]string{swarmstate.LabelApp: "a", swarmstate.LabelOwner: "d"}
	running, _ := stoppedJob(own, false)
	running.Spec.TaskTemplate.Placement = nil // not made to run nowhere yet
	t1 := swarm.Task{ID: "t1", ServiceID: "mig", NodeID: "self", JobIteration: &swarm.Version{Index: 1}, DesiredState: swarm.TaskStateComplete,
		Status: swarm.TaskStatus{State: swarm.TaskStateRunning, ContainerStatus: &swarm.ContainerStatus{ContainerID: "c-t1"}}}
	w := &world{App: "a", Owner: swarmstate.Owner{App: "a", Dir: "d"}, Self: "self", Now: time.Now(),
		Nodes: map[string]swarm.Node{"self": {ID: "self"}}, Removals: slotView{Held: true}}
	st := &spec.Status{App: "a", Phase: spec.PhaseDeleting}
	kinds := func(d decision) (got []string) {
		for _, a := range d.Actions {
			got = append(got, string(a.Kind)+" "+a.Name)
		}
		return got
	}

	w.Snap = &swarmstate.Snapshot{Services: []swarm.Service{running}, Tasks: []swarm.Task{t1}}
	d := decideTeardown(w, decision{Status: st, Phase: st.Phase}, spec.PhaseDeleted, "")
	if got := kinds(d); !slices.Equal(got, []string{"update service s_migrate"}) {
		t.Fatalf("first pass: %v, want the job made to run nowhere", got)
	}

	// The reconciler restarts here: what it recorded comes back from the status file alone.
	dir := t.TempDir()
	if err := spec.WriteStatus(dir, d.Status); err != nil {
		t.Fatal(err)
	}
	read, err := spec.ReadStatus(dir, "a")
	if err != nil {
		t.Fatal(err)
	}
	stopped, pending := stoppedJob(own, false)
	w.Snap = &swarmstate.Snapshot{Services: []swarm.Service{stopped}, Tasks: pending[1:]} // t1 reaped
	d = decideTeardown(w, decision{Status: read, Phase: st.Phase}, spec.PhaseDeleted, "")
	if got, want := kinds(d), []string{"remove container c-t1", "remove service s_migrate"}; !slices.Equal(got, want) {
		t.Errorf("once swarm forgot the stopped task: %v, want %v", got, want)
	}
	// Removed: not asked again.
	d.Status.Removed = append(d.Status.Removed, "container c-t1")
	d = decideTeardown(w, decision{Status: d.Status, Phase: st.Phase}, spec.PhaseDeleted, "")
	if got, want := kinds(d), []string{"remove service s_migrate"}; !slices.Equal(got, want) {
		t.Errorf("after the container's removal: %v, want %v", got, want)
	}
}

// TestJobContainersRecordedForLeavingJobsOnly: what is recorded, and when a recorded container
// is removed: a leaving job's tasks on this node with a container, and only with its job.
func TestJobContainersRecordedForLeavingJobsOnly(t *testing.T) {
	own := map[string]string{swarmstate.LabelApp: "a", swarmstate.LabelOwner: "d"}
	owner := swarmstate.Owner{App: "a", Dir: "d"}
	job := func(id string, stopped bool) swarm.Service {
		s := swarm.Service{ID: id, Spec: swarm.ServiceSpec{Annotations: swarm.Annotations{Name: "s_" + id, Labels: own},
			Mode: swarm.ServiceMode{ReplicatedJob: &swarm.ReplicatedJob{}}}}
		if stopped {
			s.Spec.TaskTemplate.Placement = &swarm.Placement{Constraints: []string{jobStopped}}
		}
		return s
	}
	task := func(id, service, node, container string) swarm.Task {
		return swarm.Task{ID: id, ServiceID: service, NodeID: node, Status: swarm.TaskStatus{State: swarm.TaskStateRunning,
			ContainerStatus: &swarm.ContainerStatus{ContainerID: container}}}
	}
	snap := &swarmstate.Snapshot{
		Services: []swarm.Service{job("kept", false), job("stopped", true), job("dropped", false),
			{ID: "web", Spec: swarm.ServiceSpec{Annotations: swarm.Annotations{Name: "s_web", Labels: own}}}},
		Tasks: []swarm.Task{task("t1", "kept", "self", "c1"), task("t2", "stopped", "self", "c2"), task("t3", "dropped", "self", "c3"),
			task("t4", "dropped", "n2", "c4"), task("t5", "dropped", "self", ""), task("t6", "web", "self", "c6")},
	}
	plan := []Action{{Kind: RemoveService, ID: "dropped", Name: "s_dropped"}, {Kind: RemoveService, ID: "web", Name: "s_web"}}
	leaving := leavingJobs(owner, snap, plan)
	if !leaving["stopped"] || !leaving["dropped"] || leaving["kept"] || leaving["web"] {
		t.Errorf("leaving jobs %v, want stopped and dropped", leaving)
	}
	rec := recordJobContainers(nil, snap, "self", leaving)
	rec = recordJobContainers(rec, snap, "self", leaving) // once each
	if want := []spec.JobContainer{{Service: "stopped", Container: "c2"}, {Service: "dropped", Container: "c3"}}; !slices.Equal(rec, want) {
		t.Errorf("recorded %v, want %v (this node's, with a container, of leaving jobs)", rec, want)
	}
	var got []string
	st := &spec.Status{}
	for _, a := range withJobContainers(st, owner, snap, "self", plan) {
		got = append(got, string(a.Kind)+" "+a.Name)
	}
	if want := []string{"remove container c3", "remove service s_dropped", "remove service s_web"}; !slices.Equal(got, want) {
		t.Errorf("plan %v, want %v (a recorded container goes only with its job, before it)", got, want)
	}
	if !slices.Equal(st.JobContainers, rec) {
		t.Errorf("withJobContainers recorded %v, want %v", st.JobContainers, rec)
	}
	st.Removed = []string{"container c3"}
	if got := withJobContainers(st, owner, snap, "self", plan); len(got) != len(plan) {
		t.Errorf("a container removed already is asked again: %v", got)
	}
	st.Removed = nil
	if got := withJobContainers(st, owner, snap, "self", append([]Action{{Kind: RemoveContainer, ID: "c3", Name: "c3"}}, plan...)); len(got) != len(plan)+1 {
		t.Errorf("a container the plan removes is asked twice: %v", got)
	}
}
