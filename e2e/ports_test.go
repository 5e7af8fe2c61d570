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
	made := 0 // since the change: one roll replaces the one task once
	for _, tk := range tasks {
		if tk.CreatedAt.After(changed) {
			made++
		}
	}
	if made != 1 {
		t.Errorf("%d tasks made since the port change, want 1 (one roll)", made)
	}
	for _, tk := range tasks {
		if tk.ID == old[0].ID || tk.DesiredState != swarm.TaskStateRunning {
			continue
		}
		t.Logf("Ready at %s, the new task %s since %s", readyAt.Format("15:04:05.000"), tk.Status.State, tk.Status.Timestamp.Format("15:04:05.000"))
		if tk.Status.State != swarm.TaskStateRunning || tk.Status.Timestamp.After(readyAt) {
			t.Errorf("Ready at %s, before the new task ran (%s): %s", readyAt.Format("15:04:05.000"), tk.Status.Timestamp.Format("15:04:05.000"), fmt.Sprint(s))
		}
		endpointAsStored(t, h, a)
		return
	}
	t.Errorf("Ready with the old task %s only: the port change rolled nothing; tasks %d; status:\n%s", old[0].ID, len(tasks), s)
}

// endpointAsStored: the port change raised the template's counter once, so that the old task
// showed as not running the spec until swarm replaced it. A set-back that leaves the endpoint
// as it is must raise nothing: scaled to 0 by hand and set back, the counter is still 1, which
// it is only when the reconciler takes the endpoint the engine gives back (every enum filled
// in, in lower case) for the one it wrote.
func endpointAsStored(t *testing.T, h *harness, a *testApp) {
	t.Helper()
	ctx := context.Background()
	name := a.stack() + "_app"
	svc, _, err := h.docker.ServiceInspectWithRaw(ctx, name, swarm.ServiceInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if n := svc.Spec.TaskTemplate.ForceUpdate; n != 1 {
		t.Errorf("after the port change: ForceUpdate %d, want 1", n)
	}
	zero := uint64(0)
	svc.Spec.Mode.Replicated.Replicas = &zero
	if _, err := h.docker.ServiceUpdate(ctx, svc.ID, svc.Version, svc.Spec, swarm.ServiceUpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	err = poll(ctx, time.Minute, func() (bool, error) {
		svc, _, err = h.docker.ServiceInspectWithRaw(ctx, name, swarm.ServiceInspectOptions{})
		if err != nil {
			return false, err
		}
		if r := svc.Spec.Mode.Replicated.Replicas; r == nil || *r != 1 {
			return false, fmt.Errorf("%s still scaled to %v", name, r)
		}
		ok, why, err := runningTask(ctx, h.docker, name)
		if err == nil && !ok {
			err = fmt.Errorf("%s has no running task: %s", name, why)
		}
		return ok, err
	})
	if err != nil {
		t.Fatalf("scaled to 0 by hand, not set back: %v", err)
	}
	if n := svc.Spec.TaskTemplate.ForceUpdate; n != 1 {
		t.Errorf("after setting back a scale to 0: ForceUpdate %d, want 1 (the endpoint was taken for changed)", n)
	}
}
