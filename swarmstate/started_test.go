package swarmstate

import (
	"testing"
	"time"

	"github.com/docker/docker/api/types/swarm"
)

func pendingTask(id string, desired, state swarm.TaskState) swarm.Task {
	return swarm.Task{ID: id, DesiredState: desired, Status: swarm.TaskStatus{State: state}}
}

func TestStartedTasksPromote(t *testing.T) {
	const run, shut = swarm.TaskStateRunning, swarm.TaskStateShutdown
	tests := []struct {
		name    string
		events  []Change
		task    swarm.Task
		want    swarm.TaskState
		changed bool
	}{
		{"no event: as listed", nil, pendingTask("t1", run, swarm.TaskStateStarting), swarm.TaskStateStarting, false},
		{"started while listed starting", []Change{{Task: "t1", Action: "start"}}, pendingTask("t1", run, swarm.TaskStateStarting), run, true},
		{"started while listed assigned", []Change{{Task: "t1", Action: "start"}}, pendingTask("t1", run, swarm.TaskStateAssigned), run, true},
		{"another task started", []Change{{Task: "t2", Action: "start"}}, pendingTask("t1", run, swarm.TaskStateStarting), swarm.TaskStateStarting, false},
		{"started then died", []Change{{Task: "t1", Action: "start"}, {Task: "t1", Action: "die"}}, pendingTask("t1", run, swarm.TaskStateStarting), swarm.TaskStateStarting, false},
		{"started then killed", []Change{{Task: "t1", Action: "start"}, {Task: "t1", Action: "kill"}}, pendingTask("t1", run, swarm.TaskStateStarting), swarm.TaskStateStarting, false},
		{"died then restarted", []Change{{Task: "t1", Action: "start"}, {Task: "t1", Action: "die"}, {Task: "t1", Action: "start"}}, pendingTask("t1", run, swarm.TaskStateStarting), run, true},
		{"failed stays failed", []Change{{Task: "t1", Action: "start"}}, pendingTask("t1", run, swarm.TaskStateFailed), swarm.TaskStateFailed, false},
		{"complete stays complete", []Change{{Task: "t1", Action: "start"}}, pendingTask("t1", run, swarm.TaskStateComplete), swarm.TaskStateComplete, false},
		{"swarm wants it shut down", []Change{{Task: "t1", Action: "start"}}, pendingTask("t1", shut, swarm.TaskStateStarting), swarm.TaskStateStarting, false},
		{"started with a healthcheck", []Change{{Task: "t1", Action: "start", Healthcheck: true}}, pendingTask("t1", run, swarm.TaskStateStarting), swarm.TaskStateStarting, false},
		{"healthy", []Change{{Task: "t1", Action: "start", Healthcheck: true}, {Task: "t1", Action: "health_status: healthy"}}, pendingTask("t1", run, swarm.TaskStateStarting), run, true},
		{"healthy then unhealthy", []Change{{Task: "t1", Action: "health_status: healthy"}, {Task: "t1", Action: "health_status: unhealthy"}}, pendingTask("t1", run, swarm.TaskStateStarting), swarm.TaskStateStarting, false},
		{"health check still starting", []Change{{Task: "t1", Action: "start", Healthcheck: true}, {Task: "t1", Action: "health_status: starting"}}, pendingTask("t1", run, swarm.TaskStateStarting), swarm.TaskStateStarting, false},
		{"event without a task", []Change{{Action: "start"}}, pendingTask("", run, swarm.TaskStateStarting), swarm.TaskStateStarting, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := NewStartedTasks()
			for _, c := range tt.events {
				s.Observe(c)
			}
			in := []swarm.Task{tt.task}
			out := s.Promote(in)
			if got := out[0].Status.State; got != tt.want {
				t.Errorf("state = %s, want %s", got, tt.want)
			}
			if in[0].Status.State != tt.task.Status.State {
				t.Errorf("Promote modified its input: %s", in[0].Status.State)
			}
			if changed := &out[0] != &in[0]; changed != tt.changed {
				t.Errorf("returned a copy = %v, want %v", changed, tt.changed)
			}
		})
	}
}

func TestStartedTasksForgetsOldStarts(t *testing.T) {
	now := time.Unix(1000, 0)
	s := NewStartedTasks()
	s.now = func() time.Time { return now }
	s.Observe(Change{Task: "old", Action: "start"})
	now = now.Add(s.Keep + time.Second)
	s.Observe(Change{Task: "new", Action: "start"})
	if s.Len() != 1 {
		t.Fatalf("remembered %d starts, want 1 (the old one forgotten)", s.Len())
	}
	out := s.Promote([]swarm.Task{pendingTask("old", swarm.TaskStateRunning, swarm.TaskStateStarting)})
	if out[0].Status.State != swarm.TaskStateStarting {
		t.Errorf("a start older than Keep promoted the task")
	}
}

func TestStartedTasksNilIsEmpty(t *testing.T) {
	var s *StartedTasks
	s.Observe(Change{Task: "t1", Action: "start"})
	in := []swarm.Task{pendingTask("t1", swarm.TaskStateRunning, swarm.TaskStateStarting)}
	if out := s.Promote(in); out[0].Status.State != swarm.TaskStateStarting || s.Len() != 0 {
		t.Errorf("a nil set promoted a task")
	}
}
