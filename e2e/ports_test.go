package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/swarm"
)

// TestPortChangeReadyOnTheNewTask: a spec change that moves only the published port (the task
// template as it was) makes swarm replace the app's task, as it does for a task whose endpoint
// is not the service's. Ready for it must come from the new task, serving on the new port:
// not from the old task in the moment before swarm starts the roll. With `minReady: 0s` no
// stability window hides that moment.
func TestPortChangeReadyOnTheNewTask(t *testing.T) {
	t.Parallel()
	h := startHarness(t)
	a := h.newApp("port")
	version := h.recipe.first().Version
	h.waitPhase(a.name, h.writeSpec(a.name, a.spec(version, "minReady: 0s")), "Ready")
	ctx := context.Background()
	old, err := h.docker.TaskList(ctx, swarm.TaskListOptions{Filters: filters.NewArgs(filters.Arg("service", a.stack()+"_app"), filters.Arg("desired-state", "running"))})
	if err != nil || len(old) != 1 {
		t.Fatalf("tasks before the change: %d (%v)", len(old), err)
	}
	if a.port, err = freePort(); err != nil {
		t.Fatal(err)
	}
	changed := time.Now()
	s := h.waitPhase(a.name, h.writeSpec(a.name, a.spec(version, "minReady: 0s")), "Ready")
	code, body, err := httpGet(a.port, "/")
	if err != nil || code != 200 {
		t.Errorf("Ready on port %d, which does not answer: %d %q (%v)", a.port, code, body, err)
	}
	tasks, err := h.docker.TaskList(ctx, swarm.TaskListOptions{Filters: filters.NewArgs(filters.Arg("service", a.stack()+"_app"))})
	if err != nil {
		t.Fatal(err)
	}
	var readyAt time.Time // the first Ready since the change: a flap back would hide behind the last
	for _, e := range rolloutFull(t, s).History {
		if e.Phase == "Ready" && e.Time.After(changed) {
			readyAt = e.Time
			break
		}
	}
	if readyAt.IsZero() {
		t.Fatalf("no Ready in the history since the change:\n%s", s)
	}
	for _, tk := range tasks {
		if tk.ID == old[0].ID || tk.DesiredState != swarm.TaskStateRunning {
			continue
		}
		t.Logf("Ready at %s, the new task %s since %s", readyAt.Format("15:04:05.000"), tk.Status.State, tk.Status.Timestamp.Format("15:04:05.000"))
		if tk.Status.State != swarm.TaskStateRunning || tk.Status.Timestamp.After(readyAt) {
			t.Errorf("Ready at %s, before the new task ran (%s): %s", readyAt.Format("15:04:05.000"), tk.Status.Timestamp.Format("15:04:05.000"), fmt.Sprint(s))
		}
		return
	}
	t.Errorf("Ready with the old task %s only: the port change rolled nothing; tasks %d; status:\n%s", old[0].ID, len(tasks), s)
}
