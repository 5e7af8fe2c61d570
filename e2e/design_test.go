package e2e

import (
	"context"
	"fmt"
	"maps"
	"net"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/swarm"
)

// The tests in this file check the rest of DESIGN.md's promises that only a real swarm can
// show: failures said at once and in words, rollbacks, suspend, drift, crashes, orphans and
// stacks the reconciler does not own.

// TestMissingImageFailsAtOnce: an image that is neither local nor pullable makes the app
// Failed with the engine's error naming the image, within a minute where the converge
// deadline is 10m, and leaves no service of the app with a running task.
func TestMissingImageFailsAtOnce(t *testing.T) {
	h := startHarness(t)
	a := h.newApp("e2e-noimage")

	start := time.Now()
	gen := h.writeSpec(a.name, a.spec(missingImageVersion, "timeout: 10m"))
	s := h.waitPhase(a.name, gen, "Failed")
	took := time.Since(start)
	t.Logf("Failed after %s: %s", took.Round(time.Millisecond), s.Message)
	if !strings.Contains(s.Message, missingImage) {
		t.Errorf("Failed message %q does not name the image %s", s.Message, missingImage)
	}
	if took > time.Minute {
		t.Errorf("Failed %s after the spec was written: not at once (the timeout is 10m)", took.Round(time.Second))
	}
	ctx := context.Background()
	services, err := suite.docker.ServiceList(ctx, swarm.ServiceListOptions{Filters: filters.NewArgs(filters.Arg("label", "com.docker.stack.namespace="+a.stack()))})
	if err != nil {
		t.Fatal(err)
	}
	for _, svc := range services {
		if ok, task, err := runningTask(ctx, suite.docker, svc.Spec.Name); ok || err != nil {
			t.Errorf("service %s of the Failed app runs a task (%s; %v), want none", svc.Spec.Name, task, err)
		}
	}
}

// TestUpgradeRolledBackIsFailed: an upgrade to a release whose tasks crash is rolled back by
// swarm (failure_action: rollback); the app is Failed saying so, the old release keeps
// answering, and the service's labels are the old release's again.
func TestUpgradeRolledBackIsFailed(t *testing.T) {
	t.Parallel()
	h := startHarness(t)
	a := h.newApp("e2e-rollback")
	from := h.recipe.first().Version
	a.deploy(from)

	gen := h.writeSpec(a.name, a.spec(crashingVersion))
	s := h.waitPhase(a.name, gen, "Failed")
	t.Logf("Failed: %s", s.Message)
	if !strings.Contains(strings.ToLower(s.Message), "roll") {
		t.Errorf("Failed message %q does not say the update was rolled back", s.Message)
	}
	svc := a.appService(t)
	if svc.UpdateStatus == nil || !strings.HasPrefix(string(svc.UpdateStatus.State), "rollback") {
		t.Errorf("service %s: update status %+v, want a rollback", svc.Spec.Name, svc.UpdateStatus)
	}
	if got := svc.Spec.Labels["coop-cloud."+a.stack()+".version"]; got != from {
		t.Errorf("service %s: version label %q after the rollback, want the old %q", svc.Spec.Name, got, from)
	}
	a.checkAnswers(t, from)
}

// TestSuspend: a suspended app is observed and reported, never changed: a version edit made
// while suspended waits until the suspension is lifted, and then deploys.
func TestSuspend(t *testing.T) {
	t.Parallel()
	h := startHarness(t)
	a := h.newApp("e2e-suspend")
	from, to := h.recipe.first().Version, h.recipe.latest().Version
	ready := a.deploy(from)
	idx := h.indexes(a.name)

	gen := h.writeSpec(a.name, a.spec(to, "suspend: true"))
	h.waitPhase(a.name, gen, "Suspended")
	time.Sleep(2 * resync)
	if got := h.indexes(a.name); !maps.Equal(got, idx) {
		t.Errorf("suspended app %s: service Version.Index moved: %v -> %v", a.name, idx, got)
	}
	a.checkAnswers(t, from)

	s := a.deploy(to)
	if s.Deploys != ready.Deploys+1 {
		t.Errorf("deploys = %d after lifting the suspension, want %d", s.Deploys, ready.Deploys+1)
	}
	a.checkAnswers(t, to)
}

// TestDriftSetBack: a service changed by hand is set back to the desired spec: the app is
// Degraded while it is repaired, then Ready, with no new deploy.
func TestDriftSetBack(t *testing.T) {
	t.Parallel()
	h := startHarness(t)
	a := h.newApp("e2e-drift")
	version := h.recipe.first().Version
	gen := h.writeSpec(a.name, a.spec(version))
	ready := h.waitPhase(a.name, gen, "Ready")
	svc := a.appService(t)

	changed := time.Now()
	out, err := exec.Command("docker", "service", "update", "--detach", "--env-add", "MESSAGE=changed by hand", svc.Spec.Name).CombinedOutput()
	if err != nil {
		t.Fatalf("docker service update: %v\n%s", err, out)
	}
	desired := "MESSAGE=" + h.recipe.message(version)
	var env []string
	err = poll(context.Background(), phaseDeadline, func() (bool, error) {
		s, _, err := suite.docker.ServiceInspectWithRaw(context.Background(), svc.ID, swarm.ServiceInspectOptions{})
		if err != nil {
			return false, err
		}
		env = s.Spec.TaskTemplate.ContainerSpec.Env
		return s.Version.Index > svc.Version.Index+1 && slices.Contains(env, desired), nil
	})
	if err != nil {
		t.Fatalf("service %s changed by hand was not set back (env %q): %v", svc.Spec.Name, env, err)
	}
	// Ready again after a Degraded written since the change: the Ready before it does not count.
	s, err := h.awaitStatus(a.name, "Degraded, then Ready again", func(s appStatus) (bool, string) {
		degraded := false
		for _, e := range rolloutFull(t, s).History {
			switch {
			case e.Time.Before(changed.Add(-time.Second)):
			case e.Phase == "Degraded":
				degraded = true
			case e.Phase == "Failed":
				return false, "Failed: " + e.Message
			case e.Phase == "Ready" && degraded:
				return s.ObservedGeneration == gen && s.Phase == "Ready", ""
			}
		}
		return false, ""
	})
	if err != nil {
		t.Fatal(err)
	}
	if s.Deploys != ready.Deploys {
		t.Errorf("deploys %d after setting back a change by hand, want %d: a repair is no deploy", s.Deploys, ready.Deploys)
	}
	a.checkAnswers(t, version)
}

// TestKilledMidDeploy: a reconciler killed (SIGKILL) while it deploys loses nothing: the next
// one finishes the deploy without deploying twice.
func TestKilledMidDeploy(t *testing.T) {
	h := startHarness(t)
	a := h.newApp("e2e-sigkill")
	version := h.recipe.first().Version

	gen := h.writeSpec(a.name, a.spec(version))
	// The status is polled, so the deploy may be over before a poll sees Deploying; the kill
	// then lands after it (TestKillAtEveryInstallStep kills at each step deterministically).
	seen, err := h.awaitStatus(a.name, "the deploy to start", func(s appStatus) (bool, string) {
		return s.ObservedGeneration == gen && s.Phase != "Pending", ""
	})
	if err != nil {
		t.Fatal(err)
	}
	if seen.Phase != "Deploying" {
		t.Logf("the first status seen was %s, not Deploying: killed after the deploy", seen.Phase)
	}
	h.kill()
	h.start()

	s := h.waitPhase(a.name, gen, "Ready")
	if s.Deploys != 1 {
		t.Errorf("deploys = %d after a kill mid-deploy and a restart, want 1; status:\n%s", s.Deploys, s)
	}
	a.appService(t) // exactly one service
	a.checkAnswers(t, version)
}

// TestSpecDeletedWhileDown: a spec deleted while the reconciler is down is an orphan at the
// next start: torn down to phase Deleted with nothing left.
func TestSpecDeletedWhileDown(t *testing.T) {
	h := startHarness(t)
	a := h.newApp("e2e-orphan")
	a.deploy(h.recipe.first().Version)

	if err := h.stop(); err != nil {
		t.Errorf("reconciler on SIGTERM: %v", err)
	}
	h.deleteSpec(a.name)
	h.start()
	if _, err := h.waitDeleted(a.name); err != nil {
		t.Fatal(err)
	}
	h.assertNoResidue(a.name)
}

// TestForeignStackUntouched: a stack deployed by hand, named like the reconciler's own but
// without its label, survives the reconciler's sweeps.
func TestForeignStackUntouched(t *testing.T) {
	h := startHarness(t)
	ctx := context.Background()
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	stack := fmt.Sprintf("e2e-foreign-%s_e2e_test", randomSuffix())
	t.Cleanup(func() {
		if err := stackRemove(context.Background(), stack); err != nil {
			t.Error(err)
		}
	})
	if err := stackDeploy(ctx, h.recipe, h.recipe.first().Version, t.TempDir(), stack, port); err != nil {
		t.Fatal(err)
	}
	if err := waitStackRunning(ctx, stack, 2*time.Minute); err != nil {
		t.Fatal(err)
	}
	before, err := labelled(ctx, suite.docker, namespaceLabel, stack)
	if err != nil {
		t.Fatal(err)
	}
	svc, _, err := suite.docker.ServiceInspectWithRaw(ctx, stack+"_app", swarm.ServiceInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}

	time.Sleep(3 * resync)
	if !h.running() {
		t.Fatalf("the reconciler exited: %v", h.exit)
	}
	after, err := labelled(ctx, suite.docker, namespaceLabel, stack)
	if err != nil {
		t.Fatal(err)
	}
	// Containers may be renamed by nothing; compare everything but their state.
	if !slices.Equal(withoutContainers(before), withoutContainers(after)) {
		t.Errorf("foreign stack %s changed under the reconciler:\nbefore %v\nafter  %v", stack, before, after)
	}
	now, _, err := suite.docker.ServiceInspectWithRaw(ctx, stack+"_app", swarm.ServiceInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if now.Version.Index != svc.Version.Index {
		t.Errorf("foreign service %s updated: Version.Index %d -> %d", svc.Spec.Name, svc.Version.Index, now.Version.Index)
	}
	if err := waitHTTP(ctx, port, "/", h.recipe.first().Message); err != nil {
		t.Error(err)
	}
}

func withoutContainers(objects []string) []string {
	return slices.DeleteFunc(slices.Clone(objects), func(o string) bool { return strings.HasPrefix(o, "container ") })
}

// TestConvergeTimeoutFails: an app whose tasks cannot start (its host port is taken) is
// Failed once its spec's timeout passes, saying why, and is left up for inspection.
func TestConvergeTimeoutFails(t *testing.T) {
	t.Parallel()
	h := startHarness(t)
	a := h.newApp("e2e-timeout")
	taken, err := net.Listen("tcp", ":"+strconv.Itoa(a.port))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { taken.Close() })

	gen := h.writeSpec(a.name, a.spec(h.recipe.first().Version, "timeout: 20s"))
	s := h.waitPhase(a.name, gen, "Failed")
	t.Logf("Failed: %s", s.Message)
	why := []string{"already in use", "not converged within 20s"}
	if !slices.ContainsFunc(why, func(w string) bool { return strings.Contains(s.Message, w) }) {
		t.Errorf("Failed message %q says neither the task error nor the timeout (want one of %q)", s.Message, why)
	}
	a.appService(t) // left up for inspection
}

// TestApplyErrorFails: an app whose objects the engine refuses to create every time (a
// network driver it does not have) does not retry forever: it is Failed by its spec's timeout
// at the latest, with the engine's error.
func TestApplyErrorFails(t *testing.T) {
	t.Parallel()
	h := startHarness(t)
	a := h.newApp("e2e-applyerr")

	gen := h.writeSpec(a.name, a.spec(badNetworkVersion, "timeout: 20s"))
	s := h.waitPhase(a.name, gen, "Failed")
	t.Logf("Failed: %s", s.Message)
	if !strings.Contains(s.Message, badNetworkDriver) {
		t.Errorf("Failed message %q does not carry the engine's error about the driver %s", s.Message, badNetworkDriver)
	}
}

// TestTTLReapsAnAppFailedAtItsImage: a ttl is the safety net of a CI job that dies without
// deleting its spec; an app Failed because its image cannot be pulled had its network (and
// the recipe's secrets and configs) made before the image check. The ttl reaps it too:
// Expired, nothing left.
func TestTTLReapsAnAppFailedAtItsImage(t *testing.T) {
	t.Parallel()
	h := startHarness(t)
	a := h.newApp("e2e-ttlnoimage")
	gen := h.writeSpec(a.name, a.spec(missingImageVersion, "ttl: 10s", "timeout: 20s"))
	s := h.waitPhase(a.name, gen, "Failed")
	if len(h.residue(a.name)) == 0 {
		t.Fatalf("nothing of the Failed app on the swarm: the case (leftovers past the ttl) does not arise; status:\n%s", s)
	}
	s, err := h.awaitStatus(a.name, "Expired", func(s appStatus) (bool, string) {
		return s.ObservedGeneration == gen && s.Phase == "Expired", "" // Failed until then
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("Expired: %s", s.Message)
	reapedAtTTL(t, s, 10*time.Second)
	h.assertNoResidue(a.name)
}
