package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/swarm"
)

// TestRollbackThroughDockerdRestart: an upgrade to a release whose task crashes, with
// failure_action rollback, and dockerd stopped while swarm rolls the service back (its update
// state rollback_started) and started again. The engine's restart must not turn the verdict:
// the generation ends Failed saying the update was rolled back, never Ready, and stays Failed;
// the service's spec is the old release's once swarm has finished the rollback.
//
// SERIAL: it stops the engine under everything on this host, so it never calls t.Parallel; the
// restart helpers start dockerd again in a cleanup whatever happens.
func TestRollbackThroughDockerdRestart(t *testing.T) {
	ctx := context.Background()
	h := startHarness(t)
	r := makeRolloutRecipe(t, h.recipes)
	a := h.newApp("e2e-ro-restart")
	r.deploy(t, a, rolloutV1)
	w := watchStatus(t, h.statusPath(a.name), time.Millisecond)
	svcID := a.appService(t).ID

	gen := h.writeSpec(a.name, r.spec(a, rolloutCrashRollback))
	written := time.Now()
	// Swarm monitors the crashing task for 5 s before it rolls back, then monitors the old
	// one's 5 s: the rollback lasts seconds, and a 20 ms look finds it under way.
	var seen []string
	err := poll(ctx, 2*time.Minute, func() (bool, error) {
		svc, _, err := suite.docker.ServiceInspectWithRaw(ctx, svcID, swarm.ServiceInspectOptions{})
		if err != nil {
			return false, err
		}
		state := "none"
		if svc.UpdateStatus != nil {
			state = string(svc.UpdateStatus.State)
		}
		if len(seen) == 0 || seen[len(seen)-1] != state {
			seen = append(seen, state)
		}
		if state == string(swarm.UpdateStateRollbackCompleted) {
			t.Fatalf("the rollback finished before a look saw it under way (states %v): the test cannot stop dockerd mid-rollback", seen)
		}
		return state == string(swarm.UpdateStateRollbackStarted), nil
	})
	if err != nil {
		t.Fatalf("no rollback under way within 2 minutes of the spec write: %v (update states seen %v)", err, seen)
	}
	t.Logf("rollback under way %s after the spec write (update states %v); stopping dockerd", time.Since(written).Round(time.Millisecond), seen)
	d := stopDockerd(t)
	stopped := time.Now()
	if err := startDockerd(d); err != nil {
		t.Fatalf("start dockerd again: %v", err)
	}
	t.Logf("dockerd answers and the swarm is healthy %s after the stop", time.Since(stopped).Round(time.Millisecond))

	s, _ := failedNeverReady(t, a, w, gen, written)
	if msg := strings.ToLower(s.Message); !strings.Contains(msg, "rolled back") && !strings.Contains(msg, "rollback") {
		t.Errorf("Failed message %q does not say the update was rolled back", s.Message)
	}
	svc := rolloutService(t, a)
	if got := svc.Spec.Labels["coop-cloud."+a.stack()+".version"]; got != rolloutV1 {
		t.Errorf("service %s: version label %q after the rollback, want the old %q (update status %+v)", svc.Spec.Name, got, rolloutV1, svc.UpdateStatus)
	}
	if !h.running() {
		t.Errorf("the reconciler exited: %v", h.exit)
	}
}
