package controller

import (
	"testing"

	"github.com/docker/docker/api/types/swarm"
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
