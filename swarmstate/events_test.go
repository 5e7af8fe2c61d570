package swarmstate

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

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

// attempts is an EventSource whose first refused calls fail at once (dockerd down), and whose
// next call is a stream that sends one service event and stays up until its context ends.
type attempts struct {
	refused int
	calls   atomic.Int32
}

func (a *attempts) Events(ctx context.Context, _ events.ListOptions) (<-chan events.Message, <-chan error) {
	msgs, errs := make(chan events.Message), make(chan error, 1)
	if int(a.calls.Add(1)) <= a.refused {
		errs <- errors.New("Cannot connect to the Docker daemon")
		close(errs)
		return msgs, errs
	}
	go func() {
		select {
		case msgs <- events.Message{Type: events.ServiceEventType, Action: "update", Actor: events.Actor{Attributes: map[string]string{"name": "s_app"}}}:
		case <-ctx.Done():
		}
		<-ctx.Done()
		errs <- ctx.Err()
	}()
	return msgs, errs
}

// TestWatchReportsOnlyRealConnects: attempts the engine refuses say nothing (readiness must not
// flap to ready while dockerd is down); the stream that comes up says connected once, delivers
// its events, and says disconnected when it ends.
func TestWatchReportsOnlyRealConnects(t *testing.T) {
	src := &attempts{refused: 3}
	var mu sync.Mutex
	var seen []bool
	ctx, cancel := context.WithCancel(t.Context())
	out := make(chan Change, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		Watch(ctx, src, func(up bool) { mu.Lock(); seen = append(seen, up); mu.Unlock() }, out)
	}()
	select {
	case c := <-out:
		if c.Service != "s_app" {
			t.Errorf("change %+v, want service s_app", c)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no event delivered")
	}
	cancel()
	<-done
	if n := src.calls.Load(); n != 4 {
		t.Errorf("%d attempts, want 3 refused and 1 that connected", n)
	}
	if want := []bool{true, false}; !slices.Equal(seen, want) {
		t.Errorf("connected called with %v, want %v", seen, want)
	}
}
