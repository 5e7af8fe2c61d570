package swarmstate

import (
	"testing"
	"time"

	"github.com/docker/docker/api/types/swarm"
)

// TestGlobalDesiredCountSkipsNodesSwarmLeft: under a restart policy that can stop (a condition
// other than "any", or max_attempts), a node whose newest task ended counts as one swarm means
// to run the service on. That holds only while swarm's global orchestrator still runs tasks
// there: a node that is down, drained or paused, or that no longer meets the service's
// constraints, gets no task whatever the service does (swarmkit orchestrator.InvalidNode,
// global.reconcileServices/reconcileOneNode), so its stale ended task must not keep the
// service short of its count: the app would wait out its timeout and be Failed, or stay
// Degraded for good, while every task swarm means to run is up.
func TestGlobalDesiredCountSkipsNodesSwarmLeft(t *testing.T) {
	since := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(s int) time.Time { return since.Add(time.Duration(s) * time.Second) }
	R, S := swarm.TaskStateRunning, swarm.TaskStateShutdown
	two := uint64(2)
	limited := &swarm.RestartPolicy{Condition: swarm.RestartPolicyConditionOnFailure, MaxAttempts: &two}
	node := func(id string, state swarm.NodeState, avail swarm.NodeAvailability, role swarm.NodeRole) swarm.Node {
		return swarm.Node{ID: id, Description: swarm.NodeDescription{Hostname: "h" + id},
			Spec: swarm.NodeSpec{Availability: avail, Role: role}, Status: swarm.NodeStatus{State: state}}
	}
	nodes := func(n2 swarm.Node) Nodes {
		return Nodes{Self: "n1", ByID: map[string]swarm.Node{
			"n1": node("n1", swarm.NodeStateReady, swarm.NodeAvailabilityActive, swarm.NodeRoleManager), "n2": n2}}
	}
	ready, active, worker := swarm.NodeStateReady, swarm.NodeAvailabilityActive, swarm.NodeRoleWorker
	// n1 runs the service's task; n2's newest task ended before this attempt (the policy gave
	// up there, or a dockerd restart ended it with exit 0 under on-failure, moby/moby#32416).
	gaveUpOnN2 := []swarm.Task{
		nodeTask("g", "n1", R, R, at(1), ""),
		nodeTask("g", "n2", S, swarm.TaskStateFailed, at(-20), "task: non-zero exit (1)"),
		nodeTask("g", "n2", S, swarm.TaskStateFailed, at(-10), "task: non-zero exit (1)"),
	}
	completeOnN2 := []swarm.Task{
		nodeTask("g", "n1", R, R, at(1), ""),
		nodeTask("g", "n2", S, swarm.TaskStateComplete, at(-10), ""),
	}
	managersOnly := func() swarm.Service {
		s := globalSvc("g", limited)
		s.Spec.TaskTemplate.Placement = &swarm.Placement{Constraints: []string{"node.role==manager"}}
		return s
	}
	for _, tt := range []struct {
		name      string
		svc       swarm.Service
		tasks     []swarm.Task
		nodes     Nodes
		converged bool
	}{
		{"n2 drained", globalSvc("g", limited), gaveUpOnN2, nodes(node("n2", ready, swarm.NodeAvailabilityDrain, worker)), true},
		{"n2 down", globalSvc("g", limited), gaveUpOnN2, nodes(node("n2", swarm.NodeStateDown, active, worker)), true},
		{"n2 paused", globalSvc("g", limited), gaveUpOnN2, nodes(node("n2", ready, swarm.NodeAvailabilityPause, worker)), true},
		{"n2 no longer meets the constraints", managersOnly(), completeOnN2, nodes(node("n2", ready, active, worker)), true},
		// Controls: a node swarm still runs the service on, and nodes not known, count it.
		{"control: n2 active and eligible: the policy gave up there", globalSvc("g", limited), gaveUpOnN2, nodes(node("n2", ready, active, worker)), false},
		{"control: n2 active, exited 0 under on-failure", globalSvc("g", limited), completeOnN2, nodes(node("n2", ready, active, worker)), false},
		{"control: nodes not known", globalSvc("g", limited), gaveUpOnN2, Nodes{}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			v := ConvergedOn([]swarm.Service{tt.svc}, tt.tasks, since, tt.nodes)
			if v.Converged != tt.converged {
				t.Errorf("converged=%v, want %v (desired %d, message %q)", v.Converged, tt.converged, v.Services[0].Desired, v.Message)
			}
		})
	}
}

// TestOneShotUnderConditionNoneConverges: a replicated (or global) service whose restart
// policy is condition none runs its task once. When the container exits 0, swarm's restart
// supervisor sets the task's desired state to shutdown and starts no replacement
// (restart.Supervisor.Restart: DesiredState = SHUTDOWN, then shouldRestart is false), so the
// task the engine lists is desired "shutdown", state "complete", for good. DESIGN.md: a deficit
// explained entirely by tasks in state complete (a one-shot job that ran) also counts. Counted
// as nothing, the service reads "the restart policy gave up" and the install is Failed.
func TestOneShotUnderConditionNoneConverges(t *testing.T) {
	since := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(s int) time.Time { return since.Add(time.Duration(s) * time.Second) }
	C, S, F := swarm.TaskStateComplete, swarm.TaskStateShutdown, swarm.TaskStateFailed
	slotTask := func(id string, slot int, desired, state swarm.TaskState, s int) swarm.Task {
		code := 0
		if state == F {
			code = 1
		}
		return swarm.Task{ID: id, ServiceID: "a", Slot: slot, DesiredState: desired,
			Status: swarm.TaskStatus{State: state, Timestamp: at(s), ContainerStatus: &swarm.ContainerStatus{ExitCode: code}}}
	}
	svc := func(n uint64, cond swarm.RestartPolicyCondition) swarm.Service {
		s := replicated("a", n, nil, nil)
		s.Spec.TaskTemplate.RestartPolicy = &swarm.RestartPolicy{Condition: cond}
		return s
	}
	global := globalSvc("a", &swarm.RestartPolicy{Condition: swarm.RestartPolicyConditionNone})
	none := swarm.RestartPolicyConditionNone
	for _, tt := range []struct {
		name      string
		svc       swarm.Service
		tasks     []swarm.Task
		converged bool
		gaveUp    bool
	}{
		{"one replica ran and completed", svc(1, none), []swarm.Task{slotTask("t1", 1, S, C, 2)}, true, false},
		{"two replicas ran and completed", svc(2, none), []swarm.Task{slotTask("t1", 1, S, C, 2), slotTask("t2", 2, S, C, 3)}, true, false},
		{"global: ran and completed on its node", global, []swarm.Task{nodeTask("a", "n1", S, C, at(2), "")}, true, false},
		// Controls.
		{"control: it failed: the policy gave up", svc(1, none), []swarm.Task{slotTask("t1", 1, S, F, 2)}, false, true},
		{"control: one completed, the other failed", svc(2, none), []swarm.Task{slotTask("t1", 1, S, C, 2), slotTask("t2", 2, S, F, 3)}, false, true},
		{"control: an update's new task failed after the old one completed in its slot", svc(1, none),
			[]swarm.Task{slotTask("old", 1, S, C, 2), slotTask("new", 1, S, F, 5)}, false, true},
		{"control: a slot scaled away (desired remove) does not count", svc(2, none),
			[]swarm.Task{slotTask("t1", 1, S, C, 2), slotTask("t3", 3, swarm.TaskStateRemove, C, 3), slotTask("t2", 2, S, F, 4)}, false, true},
		{"control: global: it failed on n1; n2, drained, completed before", global, []swarm.Task{
			nodeTask("a", "n1", S, F, at(2), "task: non-zero exit (1)"), nodeTask("a", "n2", S, C, at(-5), "")}, false, true},
		{"control: still running", svc(1, none), []swarm.Task{slotTask("t1", 1, swarm.TaskStateRunning, swarm.TaskStateRunning, 2)}, true, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			v := ConvergedOn([]swarm.Service{tt.svc}, tt.tasks, since, Nodes{Self: "n1", ByID: map[string]swarm.Node{
				"n1": {ID: "n1", Status: swarm.NodeStatus{State: swarm.NodeStateReady}, Spec: swarm.NodeSpec{Availability: swarm.NodeAvailabilityActive}},
				"n2": {ID: "n2", Status: swarm.NodeStatus{State: swarm.NodeStateReady}, Spec: swarm.NodeSpec{Availability: swarm.NodeAvailabilityDrain}},
			}})
			if v.Converged != tt.converged || v.GaveUp != tt.gaveUp {
				t.Errorf("converged=%v gaveUp=%v, want %v %v (message %q)", v.Converged, v.GaveUp, tt.converged, tt.gaveUp, v.Message)
			}
		})
	}
}
