package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/swarm"
)

// TestCrashingUpgradeThroughDockerdRestart: an upgrade to a release whose task crashes, with
// failure_action rollback, and dockerd stopped in the middle of it (the update under way, its
// new task made), then started again. Swarm loses the update's monitor in the restart: it
// marks the update completed and never rolls back, and the new release's task crashes again
// and again. The engine's restart must not turn the verdict: the generation ends Failed at its
// timeout naming the crash's exit code (or, if swarm did roll back, saying so), never Ready,
// and stays Failed; and the rollback the recipe asks for is made (by the reconciler's verdict
// when swarm lost it), so the old release serves again.
//
// SERIAL: it stops the engine under everything on this host, so it never calls t.Parallel; the
// restart helpers start dockerd again in a cleanup whatever happens.
func TestCrashingUpgradeThroughDockerdRestart(t *testing.T) {
	ctx := context.Background()
	h := startHarness(t)
	r := makeRolloutRecipe(t, h.recipes)
	a := h.newApp("e2e-ro-restart")
	r.deploy(t, a, rolloutV1)
	w := watchStatus(t, h.statusPath(a.name), time.Millisecond)
	svcID := a.appService(t).ID

	gen := h.writeSpec(a.name, r.spec(a, rolloutCrashRollback, "timeout: 30s"))
	written := time.Now()
	// The update stays under way for seconds (swarm watches the new task for 5 s before it
	// acts on a failure); a rollback may be over within one look, so it is not waited for.
	var seen []string
	err := poll(ctx, 2*time.Minute, func() (bool, error) {
		svc, _, err := suite.docker.ServiceInspectWithRaw(ctx, svcID, swarm.ServiceInspectOptions{})
		if err != nil {
			return false, err
		}
		state := updateState(svc)
		if len(seen) == 0 || seen[len(seen)-1] != state {
			seen = append(seen, state)
		}
		switch swarm.UpdateState(state) {
		case swarm.UpdateStateRollbackCompleted:
			t.Fatalf("the rollback finished before a look saw the update under way (states %v)", seen)
		case swarm.UpdateStateUpdating, swarm.UpdateStateRollbackStarted:
			tasks, err := suite.docker.TaskList(ctx, swarm.TaskListOptions{Filters: filters.NewArgs(filters.Arg("service", svcID))})
			if err != nil {
				return false, err
			}
			for _, task := range tasks {
				if task.CreatedAt.After(written) {
					return true, nil
				}
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("no task of the update within 2 minutes of the spec write: %v (update states seen %v)", err, seen)
	}
	t.Logf("the update's task made and the update %s, %s after the spec write (update states %v); stopping dockerd", seen[len(seen)-1], time.Since(written).Round(time.Millisecond), seen)
	d := stopDockerd(t)
	stopped := time.Now()
	if err := startDockerd(d); err != nil {
		t.Fatalf("start dockerd again: %v", err)
	}
	t.Logf("dockerd answers and the swarm is healthy %s after the stop", time.Since(stopped).Round(time.Millisecond))

	s, _ := failedNeverReady(t, a, w, gen, written)
	if !strings.Contains(s.Message, fmt.Sprintf("exit code %d", rolloutCrashExit)) {
		t.Errorf("the Failed message does not name the crash's exit code %d: %q", rolloutCrashExit, s.Message)
	}
	// Whether swarm rolled back or lost the update, failure_action rollback holds: the old
	// release runs and serves again (the reconciler's verdict made the rollback swarm owed,
	// and said before the deadline that it would).
	switch {
	case strings.Contains(s.Message, "rolling back to the previous spec"):
		if !w.saw(gen, "Upgrading", "without rolling back, though its update_config.failure_action says rollback: rolled back at ") {
			t.Errorf("the rollback was made at the deadline, but no Upgrading status before it said it would be")
		}
	case !strings.Contains(s.Message, "rolled back"):
		t.Errorf("the Failed message does not say the update is rolled back: %q", s.Message)
	}
	var svc swarm.Service
	err = poll(ctx, time.Minute, func() (bool, error) {
		svc = rolloutService(t, a)
		return updateState(svc) == string(swarm.UpdateStateRollbackCompleted), nil
	})
	release := svc.Spec.Labels["coop-cloud."+a.stack()+".version"]
	t.Logf("after the restart and the verdict the update is %s, and the service runs release %s", updateState(svc), release)
	if err != nil || release != rolloutV1 {
		t.Errorf("the service is not rolled back to %s within a minute of Failed: update %s, release %s", rolloutV1, updateState(svc), release)
	}
	if err := waitHTTP(ctx, a.port, "/", r.Messages[rolloutV1]); err != nil {
		t.Errorf("the old release does not serve after the rollback: %v", err)
	}
	if !h.running() {
		t.Errorf("the reconciler exited: %v", h.exit)
	}
}

// updateState is the state of svc's last update, "none" when it has had none.
func updateState(svc swarm.Service) string {
	if svc.UpdateStatus == nil {
		return "none"
	}
	return string(svc.UpdateStatus.State)
}
