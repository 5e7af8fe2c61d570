package controller

import (
	"slices"
	"testing"
	"time"

	"github.com/docker/docker/api/types/swarm"

	"github.com/swarm-reconciler/reconciler/spec"
	"github.com/swarm-reconciler/reconciler/swarmstate"
)

// stoppedJob is a recipe job (replicated-job, or global-job) already made to run nowhere (stopJob applied: iteration
// 2), whose iteration-1 task is listed running on node n2, and whose iteration-2 task is
// pending on no node.
func stoppedJob(own map[string]string, global bool) (swarm.Service, []swarm.Task) {
	mode := swarm.ServiceMode{ReplicatedJob: &swarm.ReplicatedJob{}}
	if global {
		mode = swarm.ServiceMode{GlobalJob: &swarm.GlobalJob{}}
	}
	job := swarm.Service{ID: "mig", Spec: swarm.ServiceSpec{Annotations: swarm.Annotations{Name: "s_migrate", Labels: own}, Mode: mode,
		TaskTemplate: swarm.TaskSpec{Placement: &swarm.Placement{Constraints: []string{jobStopped}}}},
		JobStatus: &swarm.JobStatus{JobIteration: swarm.Version{Index: 2}}}
	tasks := []swarm.Task{{ID: "t1", ServiceID: "mig", NodeID: "n2", JobIteration: &swarm.Version{Index: 1},
		DesiredState: swarm.TaskStateRemove, Status: swarm.TaskStatus{State: swarm.TaskStateRunning}}}
	if !global {
		tasks = append(tasks, swarm.Task{ID: "t2", ServiceID: "mig", JobIteration: &swarm.Version{Index: 2},
			DesiredState: swarm.TaskStateComplete, Status: swarm.TaskStatus{State: swarm.TaskStatePending, Err: "no suitable node"}})
	}
	return job, tasks
}

// TestTeardownHoldsNoJobOnANodeThatIsGone: the job's old task is on a node that is down (or
// has left the swarm): it will never report its end (until swarm orphans it, 24 h). The
// teardown does not hold the job for it (it did: Deleting for a day, or for good), as
// withoutSettledTasks, the teardown's own notion, does not wait for that very task.
func TestTeardownHoldsNoJobOnANodeThatIsGone(t *testing.T) {
	own := map[string]string{swarmstate.LabelApp: "a", swarmstate.LabelOwner: "d"}
	job, tasks := stoppedJob(own, false)
	for name, nodes := range map[string]map[string]swarm.Node{
		"down": {"n2": {ID: "n2", Status: swarm.NodeStatus{State: swarm.NodeStateDown}}},
		"gone": {},
	} {
		t.Run(name, func(t *testing.T) {
			snap := &swarmstate.Snapshot{Services: []swarm.Service{job}, Tasks: tasks}
			if name == "down" && len(withoutSettledTasks(snap, nodes).Tasks) != 1 {
				t.Fatalf("withoutSettledTasks keeps %v", withoutSettledTasks(snap, nodes).Tasks)
			}
			w := &world{App: "a", Owner: swarmstate.Owner{App: "a", Dir: "d"}, Snap: snap, Nodes: nodes, Self: "self", Now: time.Now()}
			st := &spec.Status{App: "a", Phase: spec.PhaseDeleting}
			for pass := 0; pass < 3; pass++ {
				d := decideTeardown(w, decision{Status: st, Phase: st.Phase}, spec.PhaseDeleted, "")
				if slices.ContainsFunc(d.Actions, func(a Action) bool { return a.Kind == RemoveService && a.ID == "mig" }) {
					return
				}
				if pass == 2 {
					t.Errorf("node %s: the job is never removed; actions %v; %s", name, d.Actions, d.Message)
				}
			}
		})
	}
}

// TestJobsLeavingOnANodeThatIsDown: a job a release dropped, made to run nowhere, whose
// old task is listed running on a node that is down. jobsLeaving removes it: held, the
// verdict would count it among the app's services, its new run never completing, and the
// attempt would go Failed at its deadline ("0/1 tasks of the job's run completed ... no
// suitable node"; for a global-job "waiting for swarm to create its tasks").
func TestJobsLeavingOnANodeThatIsDown(t *testing.T) {
	own := map[string]string{swarmstate.LabelApp: "a", swarmstate.LabelOwner: "d"}
	down := map[string]swarm.Node{"n2": {ID: "n2", Status: swarm.NodeStatus{State: swarm.NodeStateDown}}}
	for _, global := range []bool{false, true} {
		job, tasks := stoppedJob(own, global)
		snap := &swarmstate.Snapshot{Services: []swarm.Service{job}, Tasks: tasks}
		if v := swarmstate.ConvergedOn(snap.Services, snap.Tasks, time.Now().Add(-time.Minute), swarmstate.Nodes{ByID: down, Self: "self"}); !v.Converged {
			t.Logf("global %v: while the job is held, the app cannot converge: %s", global, v.Message)
		}
		plan := []Action{{Kind: RemoveService, Name: job.Spec.Name, ID: job.ID, Labels: own}}
		got := jobsLeaving(swarmstate.Owner{App: "a", Dir: "d"}, plan, snap, "self", down)
		if !slices.ContainsFunc(got, func(a Action) bool { return a.Kind == RemoveService && a.ID == "mig" }) {
			t.Errorf("global %v: jobsLeaving %v, want the job removed (its task's node is down)", global, got)
		}
	}
}
