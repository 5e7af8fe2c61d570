package swarmstate

import (
	"testing"

	"github.com/docker/docker/api/types/events"
)

func TestChangeOfEvent(t *testing.T) {
	tests := []struct {
		name string
		msg  events.Message
		want Change
		ok   bool
	}{
		{"service update", events.Message{Type: events.ServiceEventType, Action: "update",
			Actor: events.Actor{Attributes: map[string]string{"name": "app_web"}}},
			Change{Service: "app_web", Action: "update"}, true},
		{"task container start", events.Message{Type: events.ContainerEventType, Action: events.ActionStart,
			Actor: events.Actor{Attributes: map[string]string{
				"com.docker.swarm.service.name": "app_web", LabelNamespace: "app", "com.docker.swarm.task.id": "t1"}}},
			Change{Service: "app_web", Stack: "app", Action: "start", Task: "t1"}, true},
		{"healthcheck exec of a task container", events.Message{Type: events.ContainerEventType, Action: "exec_start: /echo check",
			Actor: events.Actor{Attributes: map[string]string{
				"com.docker.swarm.service.name": "app_web", LabelNamespace: "app", "com.docker.swarm.task.id": "t1"}}},
			Change{}, false},
		{"task container turned healthy", events.Message{Type: events.ContainerEventType, Action: "health_status: healthy",
			Actor: events.Actor{Attributes: map[string]string{
				"com.docker.swarm.service.name": "app_web", LabelNamespace: "app", "com.docker.swarm.task.id": "t1"}}},
			Change{Service: "app_web", Stack: "app", Action: "health_status: healthy", Task: "t1"}, true},
		{"plain container", events.Message{Type: events.ContainerEventType, Action: events.ActionStart,
			Actor: events.Actor{Attributes: map[string]string{"name": "x"}}}, Change{}, false},
		{"network event", events.Message{Type: events.NetworkEventType, Action: "create"}, Change{}, false},
		{"node down", events.Message{Type: events.NodeEventType, Action: "update",
			Actor: events.Actor{ID: "n2", Attributes: map[string]string{"state.old": "ready", "state.new": "down"}}},
			Change{Node: "n2", Action: "update", NodeState: true}, true},
		{"node drained", events.Message{Type: events.NodeEventType, Action: "update",
			Actor: events.Actor{ID: "n2", Attributes: map[string]string{"availability.old": "active", "availability.new": "drain"}}},
			Change{Node: "n2", Action: "update", NodeState: true}, true},
		{"worker promoted", events.Message{Type: events.NodeEventType, Action: "update",
			Actor: events.Actor{ID: "n2", Attributes: map[string]string{"role.old": "worker", "role.new": "manager"}}},
			Change{Node: "n2", Action: "update", NodeState: true}, true},
		{"node joined", events.Message{Type: events.NodeEventType, Action: "create", Actor: events.Actor{ID: "n5"}},
			Change{Node: "n5", Action: "create", NodeState: true}, true},
		{"node left", events.Message{Type: events.NodeEventType, Action: "remove", Actor: events.Actor{ID: "n5"}},
			Change{Node: "n5", Action: "remove", NodeState: true}, true},
		// What swarm writes as tasks start on networks new to the node, or a label added.
		{"node attachments or labels updated", events.Message{Type: events.NodeEventType, Action: "update",
			Actor: events.Actor{ID: "n2", Attributes: map[string]string{"name": "node-2"}}},
			Change{Node: "n2", Action: "update"}, true},
		{"leader moved", events.Message{Type: events.NodeEventType, Action: "update",
			Actor: events.Actor{ID: "n2", Attributes: map[string]string{"leader.old": "true", "leader.new": "false"}}},
			Change{Node: "n2", Action: "update"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := change(tt.msg)
			if got != tt.want || ok != tt.ok {
				t.Errorf("change = %+v, %v; want %+v, %v", got, ok, tt.want, tt.ok)
			}
		})
	}
}
