package swarmstate

import (
	"sync"
	"time"

	"github.com/docker/docker/api/types/swarm"
)

// StartedTasks remembers which tasks' containers the engine reported running, from its event
// stream. Swarm's manager records a task as running only when its dispatcher next writes the
// agents' status reports, which it batches (every 100 ms), so the task list lags the
// container by up to ~0.1 s. The event is the same fact seen first: the agent reports a task
// running when its container started, or, when the container has a healthcheck, when the
// container turned healthy; a task whose container did so and has not stopped is running,
// whatever the task list says yet.
//
// Only containers of the engine the reconciler talks to send events, so on a multi-node
// swarm tasks on other nodes are seen running through the task list alone, as before.
type StartedTasks struct {
	mu sync.Mutex
	at map[string]time.Time // task ID -> when its container start event arrived
	// Keep is how long a start is remembered; by then the task list has caught up.
	Keep time.Duration
	now  func() time.Time
}

// NewStartedTasks returns an empty set that forgets a start after a minute.
func NewStartedTasks() *StartedTasks {
	return &StartedTasks{at: map[string]time.Time{}, Keep: time.Minute, now: time.Now}
}

// Observe records what an engine event says about a task's container: a start without a
// healthcheck, or a healthy health status, makes the task running; anything that may end the
// container (or an unhealthy status) makes the task list the only word again. It is safe on
// a nil set.
func (s *StartedTasks) Observe(c Change) {
	if s == nil || c.Task == "" {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	for id, at := range s.at {
		if now.Sub(at) > s.Keep {
			delete(s.at, id)
		}
	}
	switch c.Action {
	case "start":
		if c.Healthcheck {
			delete(s.at, c.Task) // swarm waits for "healthy"
		} else {
			s.at[c.Task] = now
		}
	case "health_status: healthy":
		s.at[c.Task] = now
	case "health_status: unhealthy", "die", "kill", "stop", "oom", "destroy":
		delete(s.at, c.Task)
	}
}

// Len is the number of starts remembered.
func (s *StartedTasks) Len() int {
	if s == nil {
		return 0
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.at)
}

// Promote returns tasks with every task that swarm wants running, that the task list still
// shows on its way there (pending to starting) and whose container was seen starting marked
// running. Everything else, failed and shut-down tasks included, is left as listed. tasks
// itself is not modified.
func (s *StartedTasks) Promote(tasks []swarm.Task) []swarm.Task {
	if s == nil {
		return tasks
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.at) == 0 {
		return tasks
	}
	out := tasks
	copied := false
	for i, t := range tasks {
		if t.DesiredState != swarm.TaskStateRunning || !beforeRunning(t.Status.State) {
			continue
		}
		if _, ok := s.at[t.ID]; !ok {
			continue
		}
		if !copied {
			out = append([]swarm.Task(nil), tasks...)
			copied = true
		}
		out[i].Status.State = swarm.TaskStateRunning
		out[i].Status.Message = "started (engine event; the task list has not caught up)"
	}
	return out
}

func beforeRunning(s swarm.TaskState) bool {
	switch s {
	case swarm.TaskStateNew, swarm.TaskStateAllocated, swarm.TaskStatePending, swarm.TaskStateAssigned,
		swarm.TaskStateAccepted, swarm.TaskStatePreparing, swarm.TaskStateReady, swarm.TaskStateStarting:
		return true
	}
	return false
}
