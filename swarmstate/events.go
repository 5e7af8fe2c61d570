package swarmstate

import (
	"context"
	"strings"
	"time"

	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
)

// EventSource is the event side of the Engine API; *client.Client satisfies it.
type EventSource interface {
	Events(ctx context.Context, o events.ListOptions) (<-chan events.Message, <-chan error)
}

// Change names the swarm object an engine event was about. It carries no state: the
// controller only uses it to pick which app to reconcile, then re-reads the world.
type Change struct {
	// Service is the full service name (a service event, or the service of a container).
	Service string
	// Stack is the stack namespace of a container, when the event carries it.
	Stack string
	// Action is the engine's action, e.g. "update", "remove", "die".
	Action string
	// Task is the swarm task ID of a container, when the event carries it.
	Task string
	// At is when the engine says the event happened.
	At time.Time
	// Node is the ID of a swarm node the event was about.
	Node string
	// NodeState says the node joined or left, or its state, availability or role changed
	// (it went down, came back, was drained): any app may have tasks there. Its other updates
	// do not move tasks: swarm rewrites a node's network attachments each time a task starts
	// on a network new to the node, hundreds of times while a hundred apps deploy.
	NodeState bool
}

// refusedWithin is how long Watch waits for an error after asking for the event stream before
// it counts the stream as connected. The client returns once the engine answered the request
// or failed to; a refusal's error follows at once.
const refusedWithin = 50 * time.Millisecond

// Watch streams service, node and container events until ctx ends, reconnecting with backoff when
// the stream breaks. connected is called with true after each connect and with false when that
// stream breaks, so readiness can report it; an attempt the engine refuses (dockerd down) calls
// neither. Events missed while disconnected are covered by resyncs.
func Watch(ctx context.Context, src EventSource, connected func(bool), out chan<- Change) {
	f := filters.NewArgs(
		filters.Arg("type", string(events.ServiceEventType)),
		filters.Arg("type", string(events.ContainerEventType)),
		filters.Arg("type", string(events.NodeEventType)),
	)
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		since := time.Now().Add(-time.Second).Format(time.RFC3339Nano)
		msgs, errs := src.Events(ctx, events.ListOptions{Filters: f, Since: since})
		if opened(ctx, errs) {
			connected(true)
			if relay(ctx, msgs, errs, out) {
				backoff = 100 * time.Millisecond
			}
			connected(false)
		}
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		if backoff < 5*time.Second {
			backoff *= 2
		}
	}
}

// relay passes the changes of a connected stream to out until the stream or ctx ends, and
// reports whether any event came.
func relay(ctx context.Context, msgs <-chan events.Message, errs <-chan error, out chan<- Change) (got bool) {
	for {
		select {
		case <-ctx.Done():
			return got
		case <-errs:
			return got
		case m := <-msgs:
			got = true
			if c, ok := change(m); ok {
				select {
				case out <- c:
				case <-ctx.Done():
					return got
				}
			}
		}
	}
}

// opened reports whether an event stream just asked for is up: no error within refusedWithin.
func opened(ctx context.Context, errs <-chan error) bool {
	t := time.NewTimer(refusedWithin)
	defer t.Stop()
	select {
	case <-errs:
		return false
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

func change(m events.Message) (Change, bool) {
	switch m.Type {
	case events.ServiceEventType:
		return Change{Service: m.Actor.Attributes["name"], Action: string(m.Action), At: eventTime(m)}, true
	case events.NodeEventType:
		return Change{Node: m.Actor.ID, Action: string(m.Action), At: eventTime(m), NodeState: nodeState(m)}, true
	case events.ContainerEventType:
		svc := m.Actor.Attributes["com.docker.swarm.service.name"]
		if svc == "" || !taskAction(string(m.Action)) {
			return Change{}, false
		}
		return Change{
			Service: svc,
			Stack:   m.Actor.Attributes[LabelNamespace],
			Action:  string(m.Action),
			Task:    m.Actor.Attributes["com.docker.swarm.task.id"],
			At:      eventTime(m),
		}, true
	}
	return Change{}, false
}

// nodeState reports whether node event m says the node joined, left, or changed state,
// availability or role: the engine names each such change in the update's attributes
// (daemon.logNodeEvent: "state.new", "availability.new", "role.new").
func nodeState(m events.Message) bool {
	if m.Action != events.ActionUpdate {
		return true
	}
	for _, a := range []string{"state.new", "availability.new", "role.new"} {
		if _, ok := m.Actor.Attributes[a]; ok {
			return true
		}
	}
	return false
}

// taskAction reports whether a container event can change what swarm reports of the
// container's task. The rest (create, the exec_* of every healthcheck run, attach, resize…)
// would only queue reconciles that find nothing new.
func taskAction(a string) bool {
	switch events.Action(a) {
	case events.ActionStart, events.ActionDie, events.ActionStop, events.ActionKill, events.ActionOOM, events.ActionDestroy:
		return true
	}
	return strings.HasPrefix(a, "health_status")
}

// TaskChange reports whether the event is about a task's container: what it announces (a
// task running, failed, healthy) shows in swarm's task list only once the manager's
// dispatcher has recorded the agent's report, which it batches every 100 ms.
func (c Change) TaskChange() bool { return c.Task != "" }

func eventTime(m events.Message) time.Time {
	if m.TimeNano == 0 {
		return time.Time{}
	}
	return time.Unix(0, m.TimeNano)
}
