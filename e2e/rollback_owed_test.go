package e2e

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/swarm"
)

// TestCrashAfterMonitorRolledBack: an upgrade whose new task serves for 3s and then exits 3,
// for ever, with update_config monitor 1s and failure_action rollback. Swarm's monitor sees
// the task up for its second and completes the update; the crashes come after it, so swarm
// never rolls back. The spec's stability window (minReady 5s, longer than the monitor) never
// passes, so the attempt is Failed at its timeout, and that verdict makes the rollback the
// recipe asks for: the service's previous spec (no crash) runs and serves again, and the
// status says so. It was never Ready for the generation and stays Failed. The timeout (30s)
// leaves room for crashes on a loaded CI machine, where the new task once took 17s to start.
func TestCrashAfterMonitorRolledBack(t *testing.T) {
	t.Parallel()
	crashAfterMonitorRolledBack(t, newHarness(t), "5s", "", "")
}

// TestMultinodeCrashAfterMonitorRolledBack is TestCrashAfterMonitorRolledBack on the 4-node
// swarm with the app's task on the worker (mn-node4), where the reconciler's engine sees no
// container of it: the crashes, the verdict and the rollback are all read and made through
// the manager. The app has a volume there, as an app with data on a swarm of several nodes
// does: its teardown's volume job is what confirms that nothing of it is left on mn-node4.
// The window is 10s: the managers learn of mn-node4's crashes from its agent alone, which on
// this loaded machine reported one more than 2 s late (a wrong Ready on CI with 5s); on its
// own node the reconciler asks its engine, elsewhere the managers' word is all there is.
func TestMultinodeCrashAfterMonitorRolledBack(t *testing.T) {
	t.Parallel()
	crashAfterMonitorRolledBack(t, mnHarness(t), "10s", "      placement:\n        constraints: [\"node.labels.mn == node4\"]\n",
		"    volumes:\n      - data:/data\nvolumes:\n  data:\n")
}

// crashAfterMonitorRolledBack runs the test of TestCrashAfterMonitorRolledBack with h (not
// started yet) on its swarm, minReady the stability window, placement (YAML for the service's deploy section) saying where
// the task runs and more (YAML after the service's deploy section: its keys, then the file's).
// Without a placement (this host) it also checks that the previous spec serves again on the
// app's port.
func crashAfterMonitorRolledBack(t *testing.T, h *harness, minReady, placement, more string) {
	t.Helper()
	const recipe = "e2e-rollback-owed"
	makeEchoRecipe(t, h, recipe, "PORT=18080\nCRASH_AFTER=\n", fmt.Sprintf(`services:
  app:
    image: %s
    environment:
      - MESSAGE=hello from %s
      - PORT=8080
      - CRASH_AFTER=${CRASH_AFTER}
    ports:
      - target: 8080
        published: ${PORT}
        protocol: tcp
        mode: host
    deploy:
      replicas: 1
      restart_policy:
        condition: any
        delay: 0s
      update_config:
        monitor: 1s
        failure_action: rollback
%s      labels:
        - "coop-cloud.${STACK_NAME}.version=%s"
%s`, echoImage, recipe, placement, miniRelease, more), nil)
	h.start()
	a := h.newApp("e2e-ro-owed")
	specOf := func(crashAfter string) []byte {
		return fmt.Appendf(nil, "recipe: %s\nversion: %q\ntimeout: 30s\nminReady: %s\nenv:\n  PORT: \"%d\"\n  CRASH_AFTER: %q\n", recipe, miniRelease, minReady, a.port, crashAfter)
	}
	h.waitPhase(a.name, h.writeSpec(a.name, specOf("")), "Ready")
	ctx := context.Background()
	services, err := h.docker.ServiceList(ctx, swarm.ServiceListOptions{Filters: filters.NewArgs(filters.Arg("label", appLabel+"="+a.name))})
	if err != nil || len(services) != 1 {
		t.Fatalf("the app's services: %d (%v), want 1", len(services), err)
	}
	svcID := services[0].ID

	w := watchStatus(t, h.statusPath(a.name), time.Millisecond)
	gen := h.writeSpec(a.name, specOf("3s"))
	written := time.Now()
	s, _ := failedNeverReady(t, a, w, gen, written)
	for _, want := range []string{"within 30s", "last exit code 3", "without rolling back", "rolling back to the previous spec"} {
		if !strings.Contains(s.Message, want) {
			t.Errorf("the Failed message does not say %q: %q", want, s.Message)
		}
	}
	var svc swarm.Service
	err = poll(ctx, time.Minute, func() (bool, error) {
		var err error
		svc, _, err = h.docker.ServiceInspectWithRaw(ctx, svcID, swarm.ServiceInspectOptions{})
		return err == nil && updateState(svc) == string(swarm.UpdateStateRollbackCompleted), err
	})
	if err != nil {
		t.Fatalf("the service's rollback did not complete within a minute (update %s): %v", updateState(svc), err)
	}
	if env := svc.Spec.TaskTemplate.ContainerSpec.Env; !slices.Contains(env, "CRASH_AFTER=") {
		t.Errorf("after the rollback the service's env is %v, want the previous spec's CRASH_AFTER=", env)
	}
	if placement == "" {
		if err := waitHTTP(ctx, a.port, "/", "hello from "+recipe); err != nil {
			t.Errorf("the previous spec does not serve after the rollback: %v", err)
		}
	}
	// Failed stays: the rollback is the verdict's, not a new attempt.
	time.Sleep(2 * resync)
	after, _, err := h.readStatus(a.name)
	if err != nil || after.ObservedGeneration != gen || after.Phase != "Failed" {
		t.Errorf("after the rollback the status is %s for %s (%v), want Failed for %s", after.Phase, rolloutShortGen(after.ObservedGeneration), err, rolloutShortGen(gen))
	}
}
