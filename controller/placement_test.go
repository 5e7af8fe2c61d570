package controller

import (
	"fmt"
	"strings"
	"testing"

	"github.com/docker/docker/api/types/swarm"

	"github.com/swarm-reconciler/reconciler/spec"
)

func TestPlacement(t *testing.T) {
	node := func(id string, role swarm.NodeRole, state swarm.NodeState, avail swarm.NodeAvailability, labels map[string]string) swarm.Node {
		return swarm.Node{ID: id, Spec: swarm.NodeSpec{Role: role, Availability: avail, Annotations: swarm.Annotations{Labels: labels}},
			Description: swarm.NodeDescription{Hostname: "h" + id, Platform: swarm.Platform{OS: "linux", Architecture: "x86_64"}},
			Status:      swarm.NodeStatus{State: state}}
	}
	nodes := map[string]swarm.Node{
		"1": node("1", swarm.NodeRoleManager, swarm.NodeStateReady, swarm.NodeAvailabilityActive, map[string]string{"mn": "node1"}),
		"2": node("2", swarm.NodeRoleManager, swarm.NodeStateReady, swarm.NodeAvailabilityActive, map[string]string{"mn": "node2"}),
		"3": node("3", swarm.NodeRoleManager, swarm.NodeStateDown, swarm.NodeAvailabilityActive, map[string]string{"mn": "node3"}),
		"4": node("4", swarm.NodeRoleWorker, swarm.NodeStateReady, swarm.NodeAvailabilityActive, map[string]string{"mn": "node4"}),
		"5": node("5", swarm.NodeRoleWorker, swarm.NodeStateReady, swarm.NodeAvailabilityDrain, nil),
	}
	service := func(constraints ...string) Action {
		return Action{Kind: CreateService, Name: "s_app", Service: &swarm.ServiceSpec{TaskTemplate: swarm.TaskSpec{Placement: &swarm.Placement{Constraints: constraints}}}}
	}
	tests := []struct {
		name string
		plan []Action
		one  bool // a swarm of one node: nothing to say
		want string
	}{
		{"no constraints: every ready, active node", []Action{service()}, false, "can run: s_app on h1, h2, h4 (each of those nodes needs the image)"},
		{"role", []Action{service("node.role==worker")}, false, "can run: s_app on h4 (each of those nodes needs the image)"},
		{"label and hostname", []Action{service("node.labels.mn != node4", "node.hostname!=h1")}, false, "can run: s_app on h2 (each of those nodes needs the image)"},
		{"no node", []Action{service("node.labels.mn==nowhere")}, false, "no node available now meets the placement of s_app (constraints node.labels.mn==nowhere)"},
		{"only a node that is down", []Action{service("node.labels.mn==node3")}, false, "no node available now meets the placement of s_app (constraints node.labels.mn==node3)"},
		{"removals say nothing", []Action{{Kind: RemoveService, Name: "s_old"}}, false, ""},
		{"one node", []Action{service()}, true, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n := nodes
			if tc.one {
				n = map[string]swarm.Node{"1": nodes["1"]}
			}
			if got := placement(tc.plan, n); got != tc.want {
				t.Fatalf("got  %q\nwant %q", got, tc.want)
			}
		})
	}
}

// TestImageMissingOnSomeNodes: a swarm of three nodes where host-3 lacks the app's image
// (built locally on the others, no registry). Swarm places the task on host-3 first: rejected
// "No such image". While another node can take the task, swarm places the next one there
// (here, on host-2, where it runs): the attempt is not Failed in the seconds between. When
// host-3 is the only node that can take it, waiting cannot help: Failed at once, naming it.
func TestImageMissingOnSomeNodes(t *testing.T) {
	for _, onlyThere := range []bool{false, true} {
		t.Run(fmt.Sprintf("host-3 the only node for it %v", onlyThere), func(t *testing.T) {
			f := newFixture(t)
			f.engine.addNode("n2", "host-2")
			f.engine.addNode("n3", "host-3")
			f.engine.place = func(_ *swarm.Service, i int) string { return "n3" }
			f.engine.failTasks = "No such image: echo:1.0.0"
			if onlyThere {
				compose := strings.Replace(testCompose, "    networks:\n      - internal\n",
					"    networks:\n      - internal\n    deploy:\n      placement:\n        constraints: [node.hostname==host-3]\n", 1)
				makeRecipeOf(t, f.r.RecipesDir, "pinned", compose, "1.0.0+1")
			}
			recipe := map[bool]string{false: "echo", true: "pinned"}[onlyThere]
			f.writeSpec("a", "recipe: "+recipe+"\nversion: 1.0.0+1\n")
			var st *spec.Status
			for range 3 { // 3 s: within swarm's default 5 s restart delay
				st = f.pass("a")
			}
			if onlyThere {
				if st.Phase != spec.PhaseFailed || !strings.Contains(st.Message, "could not be found or pulled on node host-3") {
					t.Fatalf("host-3 the only node: %s %q", st.Phase, st.Message)
				}
				return
			}
			if st.Phase == spec.PhaseFailed {
				t.Fatalf("Failed while host-2 can take the task: %q", st.Message)
			}
			f.engine.mu.Lock() // swarm's replacement, on host-2
			for _, svc := range f.engine.services {
				f.engine.tasks = append(f.engine.tasks, swarm.Task{ID: f.engine.id(), ServiceID: svc.ID, NodeID: "n2", DesiredState: swarm.TaskStateRunning,
					Spec: svc.Spec.TaskTemplate, Status: swarm.TaskStatus{State: swarm.TaskStateRunning, Timestamp: f.now}})
			}
			f.engine.mu.Unlock()
			for range 15 {
				st = f.pass("a")
			}
			if st.Phase != spec.PhaseReady {
				t.Fatalf("the task runs on host-2: %s %q", st.Phase, st.Message)
			}
		})
	}
}
