package swarmstate

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
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

// streamSource replays a fixed list of events once and knows some containers' configs.
type streamSource struct {
	msgs       []events.Message
	containers map[string]*container.Config
}

func (s streamSource) Events(ctx context.Context, _ events.ListOptions) (<-chan events.Message, <-chan error) {
	out := make(chan events.Message, len(s.msgs))
	for _, m := range s.msgs {
		out <- m
	}
	return out, make(chan error)
}

func (s streamSource) ContainerInspect(_ context.Context, id string) (container.InspectResponse, error) {
	cfg, ok := s.containers[id]
	if !ok {
		return container.InspectResponse{}, errors.New("no such container: " + id)
	}
	return container.InspectResponse{Config: cfg}, nil
}

func TestWatchTellsWhichStartsWaitForAHealthcheck(t *testing.T) {
	start := func(ctr, task string) events.Message {
		return events.Message{Type: events.ContainerEventType, Action: events.ActionStart, Actor: events.Actor{ID: ctr,
			Attributes: map[string]string{"com.docker.swarm.service.name": "app_web", "com.docker.swarm.task.id": task}}}
	}
	src := streamSource{
		msgs: []events.Message{start("plain", "t1"), start("checked", "t2"), start("none", "t3"), start("gone", "t4"), start("empty-test", "t5")},
		containers: map[string]*container.Config{
			"plain":      {},
			"checked":    {Healthcheck: &container.HealthConfig{Test: []string{"CMD", "/echo", "check"}}},
			"none":       {Healthcheck: &container.HealthConfig{Test: []string{"NONE"}}},
			"empty-test": {Healthcheck: &container.HealthConfig{}},
		},
	}
	want := map[string]bool{"t1": false, "t2": true, "t3": false, "t4": true, "t5": false}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	out := make(chan Change, 8)
	go Watch(ctx, src, func(bool) {}, out)
	for range want {
		select {
		case c := <-out:
			if c.Healthcheck != want[c.Task] {
				t.Errorf("task %s: Healthcheck = %v, want %v", c.Task, c.Healthcheck, want[c.Task])
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Watch sent fewer changes than events")
		}
	}
}

func TestChangeLagging(t *testing.T) {
	tests := []struct {
		c    Change
		want bool
	}{
		{Change{Service: "app_web", Action: "update"}, false},
		{Change{Task: "t1", Action: "start"}, false},
		{Change{Task: "t1", Action: "health_status: healthy"}, false},
		{Change{Task: "t1", Action: "health_status: unhealthy"}, true},
		{Change{Task: "t1", Action: "die"}, true},
		{Change{Task: "t1", Action: "destroy"}, true},
	}
	for _, tt := range tests {
		if got := tt.c.Lagging(); got != tt.want {
			t.Errorf("%+v.Lagging() = %v, want %v", tt.c, got, tt.want)
		}
	}
}
