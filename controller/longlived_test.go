package controller

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/swarm"

	"github.com/swarm-reconciler/reconciler/locks"
	"github.com/swarm-reconciler/reconciler/spec"
)

// TestHandRollbackRepairRolledBackBacksOff: a Ready app upgraded 1.0.0 -> 1.1.0 is rolled
// back by hand (`docker service rollback`): the 1.0.0 spec, with its labels, runs again. The
// repair applies 1.1.0 again; swarm's monitor rolls that back (the new tasks no longer start:
// a port held, a node short of memory). Making the same repair again at once, on every pass,
// restarts the tasks each time and never settles: as for a set-back swarm rolls back, the
// repair made again must back off.
func TestHandRollbackRepairRolledBackBacksOff(t *testing.T) {
	f := newFixture(t)
	f.writeSpec("a", "recipe: echo\nversion: 1.0.0+1\ntimeout: 15s\n")
	if st := f.settle("a"); st.Phase != spec.PhaseReady {
		t.Fatalf("install: %s %s", st.Phase, st.Message)
	}
	f.writeSpec("a", "recipe: echo\nversion: 1.1.0+1\ntimeout: 15s\n")
	if st := f.settle("a"); st.Phase != spec.PhaseReady {
		t.Fatalf("upgrade: %s %s", st.Phase, st.Message)
	}
	f.now = f.now.Add(time.Hour)
	f.engine.now = f.now
	// `docker service rollback a_test_app`
	svc := serviceNamed(f, "a_test_app")
	if _, err := f.engine.ServiceUpdate(context.Background(), svc.ID, svc.Version, svc.Spec, swarm.ServiceUpdateOptions{Rollback: "previous"}); err != nil {
		t.Fatal(err)
	}
	f.engine.resetCalls()
	var phases []string
	for range 8 {
		st := f.pass("a")
		phases = append(phases, string(st.Phase)+": "+st.Message)
		svc := serviceNamed(f, "a_test_app")
		if svc.Spec.TaskTemplate.ContainerSpec.Image == "echo:1.1.0" && svc.UpdateStatus != nil && svc.UpdateStatus.State != swarm.UpdateStateRollbackCompleted {
			f.engine.now = f.now
			swarmRollsBack(f, svc) // the repair's roll fails: swarm puts the hand rollback's spec back
		}
		f.now = f.now.Add(time.Second)
	}
	updates := 0
	for _, w := range f.engine.writes() {
		if strings.HasPrefix(w, "update service a_test_app") {
			updates++
		}
	}
	t.Logf("phases:\n%s", strings.Join(phases, "\n"))
	if updates > 2 {
		t.Fatalf("the repair was made %d times in 8 s, each rolled back by swarm: want it to back off (as a set-back made again does)\nphases:\n%s",
			updates, strings.Join(phases, "\n"))
	}
}

// TestMoveOnSeveralNodesLeavesNothingOfTheOldStack: on a swarm of several nodes, an app
// whose domain changes is a move; it is Ready "only when nothing of the old stack is left"
// (README, An app's life). The old stack's volume on node n2, where its task ran, is part of
// the old stack.
func TestMoveOnSeveralNodesLeavesNothingOfTheOldStack(t *testing.T) {
	f := multiNodeFixture(t) // app m, domain m.test (stack m_test), its task on n2
	if got := f.engine.remoteVolumes("n2"); len(got) != 1 || got[0] != "m_test_data" {
		t.Fatalf("volumes on n2 after install: %v", got)
	}
	f.writeSpec("m", "recipe: echo\nversion: 1.0.0+1\ndomain: new.test\n")
	var st *spec.Status
	var seen []string
	for i := 0; i < 20 && (st == nil || st.Phase != spec.PhaseReady); i++ {
		st = f.pass("m")
		seen = append(seen, string(st.Phase)+": "+st.Message)
	}
	if st.Phase != spec.PhaseReady || st.Stack != "new_test" {
		t.Fatalf("after the move: %s %s\n%s", st.Phase, st.Message, strings.Join(seen, "\n"))
	}
	// The new stack's task runs on n2 too: its volume there stays, the old one's goes.
	if got := f.engine.remoteVolumes("n2"); strings.Join(got, ",") != "new_test_data" {
		t.Errorf("Ready after the move; n2 holds %v, want the new stack's volume only (the old one's data is what a move back to m.test would find there)\n%s",
			got, strings.Join(seen, "\n"))
	}
	if len(st.Nodes) != 1 || strings.Join(st.Nodes[0].Volumes, ",") != "new_test_data" {
		t.Errorf("status nodes %+v, want n2 with new_test_data only", st.Nodes)
	}
	if !slices.Contains(st.Removed, "volumes on node host-2: m_test_data") {
		t.Errorf("removed %v: want the old stack's volume on host-2 named", st.Removed)
	}
	if len(f.engine.services) != 1 {
		t.Errorf("services left: %d, want the app's one (the move's job removed)", len(f.engine.services))
	}
	// The app's teardown asks n2 again, for every volume of the app there.
	if err := spec.Unplace(f.r.SpecsDir, "m"); err != nil {
		t.Fatal(err)
	}
	if st := f.settle("m"); st.Phase != spec.PhaseDeleted || len(f.engine.remoteVolumes("n2")) != 0 {
		t.Fatalf("teardown: %s %s; n2 holds %v", st.Phase, st.Message, f.engine.remoteVolumes("n2"))
	}
}

// TestMoveBackBeforeItsJobAnswered: a move's job removes the volumes of the stack the app
// left, on a node that is down; the domain is set back before the node returns: the job is
// removed (the app runs in that stack again, its data in those volumes), and nothing of the
// app is removed when the node is back.
func TestMoveBackBeforeItsJobAnswered(t *testing.T) {
	f := multiNodeFixture(t) // m on m.test, its task and volume m_test_data on n2
	f.engine.place = func(_ *swarm.Service, i int) string { return "n3" }
	f.writeSpec("m", "recipe: echo\nversion: 1.0.0+1\ndomain: new.test\n")
	f.engine.setNodeState("n2", swarm.NodeStateDown)
	f.r.NodesChanged()
	var st *spec.Status
	for range 20 {
		if st = f.pass("m"); strings.Contains(st.Message, "node host-2 is down") {
			break
		}
	}
	if !strings.Contains(st.Message, "node host-2 is down") || !strings.Contains(st.Message, "m_test_data") {
		t.Fatalf("the move, n2 down: %s %s; want it waiting on host-2 for m_test_data", st.Phase, st.Message)
	}
	f.writeSpec("m", "recipe: echo\nversion: 1.0.0+1\n") // back on m.test
	f.pass("m")
	f.engine.setNodeState("n2", swarm.NodeStateReady) // a job still there would run now
	f.r.NodesChanged()
	if st = f.settle("m"); st.Phase != spec.PhaseReady || st.Stack != "m_test" {
		t.Fatalf("moved back: %s %s (stack %s)", st.Phase, st.Message, st.Stack)
	}
	if got := f.engine.remoteVolumes("n2"); strings.Join(got, ",") != "m_test_data" {
		t.Errorf("n2 holds %v after the move back, want m_test_data kept", got)
	}
	for _, svc := range f.engine.services {
		if isJob(*svc) {
			t.Errorf("job %s left", svc.Spec.Name)
		}
	}
}

// TestNewAppOnADomainBeingFreed: an operator renames an app: deletes specs/x.yml and
// writes specs/y.yml with the same domain. y's first pass comes while x's teardown is under
// way (the loop runs both at once, and a teardown takes several passes). x's objects are this
// reconciler's, leaving: waiting helps, so y must not be Failed, final for its generation,
// with a message that says x's objects are "not owned by this reconciler".
func TestNewAppOnADomainBeingFreed(t *testing.T) {
	f := newFixture(t)
	renameOnSharedDomain(f)
	// The passes interleave: y, then x, until both settle.
	var ys []string
	var y *spec.Status
	for range 20 {
		y = f.pass("y")
		ys = append(ys, string(y.Phase)+": "+y.Message)
		if _, err := f.r.Reconcile(t.Context(), "x"); err != nil {
			t.Fatal(err)
		}
	}
	if x, _ := spec.ReadStatus(f.r.StatusDir, "x"); x.Phase != spec.PhaseDeleted {
		t.Fatalf("x: %s %s", x.Phase, x.Message)
	}
	if y.Phase != spec.PhaseReady {
		t.Fatalf("y, once x is gone: %s, want Ready\n%s", y.Phase, strings.Join(ys, "\n"))
	}
}

// TestInvalidEditDoesNotGiveTheStackAway: "a deployed app is never displaced by a
// newcomer" (stacks.go) and "nothing already deployed for that app is touched by an invalid
// edit" (DESIGN.md). x runs on shared.test; a typo makes its spec invalid for a moment, while
// y is written with the same domain. y must be the one refused (the stack is x's), and x,
// once fixed, must be Ready again, not Invalid for a stack y took meanwhile.
func TestInvalidEditDoesNotGiveTheStackAway(t *testing.T) {
	f := newFixture(t)
	f.writeSpec("x", "recipe: echo\nversion: 1.0.0+1\ndomain: shared.test\n")
	if st := f.settle("x"); st.Phase != spec.PhaseReady {
		t.Fatalf("install x: %s %s", st.Phase, st.Message)
	}
	f.writeSpec("x", "recipe: echo\nversion: 1.0.0+1\ndomain: shared.test\ntimout: 5m\n") // a typo
	if st := f.settle("x"); st.Phase != spec.PhaseInvalid {
		t.Fatalf("typo: %s %s", st.Phase, st.Message)
	}
	f.writeSpec("y", "recipe: echo\nversion: 1.0.0+1\ndomain: shared.test\n")
	y := f.settle("y")
	f.writeSpec("x", "recipe: echo\nversion: 1.0.0+1\ndomain: shared.test\ntimeout: 5m\n") // fixed
	x := f.settle("x")
	if x.Phase != spec.PhaseReady {
		t.Errorf("x, its typo fixed: %s %s", x.Phase, x.Message)
	}
	if y.Phase != spec.PhaseInvalid || !strings.Contains(y.Message, `app "x" already uses`) {
		t.Errorf("y, the newcomer: %s %s; want Invalid, the stack being x's", y.Phase, y.Message)
	}
}

// TestMoveWaitsForAVolumeInUsePastTheDeadline: a domain change whose new stack converged
// and became stable near the attempt's timeout; the old stack's volume is still held by its
// stopping container when the move removes it. That wait ends by itself ("waiting: ... is
// still used by a container that is stopping"): the app must not be Failed "not deployed
// within" (it is deployed, and waiting helps).
func TestMoveWaitsForAVolumeInUsePastTheDeadline(t *testing.T) {
	f := newFixture(t)
	f.writeSpec("m", "recipe: echo\nversion: 1.0.0+1\ndomain: old.test\n")
	if st := f.settle("m"); st.Phase != spec.PhaseReady {
		t.Fatalf("install: %s %s", st.Phase, st.Message)
	}
	f.engine.taskLinger, f.engine.containersHold = 8, true // the old container stops for a while
	f.writeSpec("m", "recipe: echo\nversion: 1.0.0+1\ndomain: new.test\ntimeout: 8s\n")
	var seen []string
	var st *spec.Status
	for i := 0; i < 20 && (st == nil || st.Phase != spec.PhaseReady && st.Phase != spec.PhaseFailed); i++ {
		st = f.pass("m")
		seen = append(seen, string(st.Phase)+": "+st.Message)
	}
	if st.Phase != spec.PhaseReady {
		t.Fatalf("the move: %s, want Ready once the old container is gone\n%s", st.Phase, strings.Join(seen, "\n"))
	}
}

// TestReadyAppWhoseRecipeNoLongerRendersAfterARestart: a Ready app, its spec unchanged;
// the reconciler restarts (its renders are gone) and the recipe's tag is missing from the
// local repository for a while (re-cloned without it, deleted by hand). The app runs as
// deployed: as for a recipe that cannot be fetched, it is Degraded, saying so, and Ready once
// the recipe renders again, not Invalid for good with nothing watched or repaired meanwhile.
func TestReadyAppWhoseRecipeNoLongerRendersAfterARestart(t *testing.T) {
	f := newFixture(t)
	f.writeSpec("a", "recipe: echo\nversion: 1.0.0+1\n")
	if st := f.settle("a"); st.Phase != spec.PhaseReady {
		t.Fatalf("install: %s %s", st.Phase, st.Message)
	}
	dir := f.r.RecipesDir + "/echo"
	gitIn(t, dir, "tag", "-d", "1.0.0+1")
	restart := func() {
		f.r = &Reconciler{Engine: f.r.Engine, SpecsDir: f.r.SpecsDir, StatusDir: f.r.StatusDir,
			RecipesDir: f.r.RecipesDir, Defaults: f.r.Defaults, Now: f.r.Now, Log: f.r.Log, Owner: f.r.Owner}
	}
	restart()
	st := f.pass("a")
	t.Logf("tag gone: %s %s", st.Phase, st.Message)
	if st.Phase != spec.PhaseDegraded {
		t.Errorf("tag gone: %s, want Degraded (the app runs as deployed)", st.Phase)
	}
	// The tag is back (fetched again); the app is changed by hand meanwhile.
	gitIn(t, dir, "tag", "-a", "1.0.0+1", "-m", "1.0.0+1", "HEAD~2")
	f.engine.byHand("a_test_app", func(s *swarm.ServiceSpec) { s.TaskTemplate.ContainerSpec.Image = "echo:1.1.0" })
	f.now = f.now.Add(2 * time.Minute)
	st = f.settle("a")
	if st.Phase != spec.PhaseReady {
		t.Fatalf("tag back: %s %s, want Ready (repaired)", st.Phase, st.Message)
	}
}

// TestTTLOfAnAppFailedAtItsImageCheck: an app with a ttl (the safety net for a CI job
// that dies without deleting its spec) whose image cannot be pulled: its network and config
// were created (the support round) before the image check failed it. Past its ttl, they are
// still there, and stay until someone deletes the spec.
func TestTTLOfAnAppFailedAtItsImageCheck(t *testing.T) {
	f := newFixture(t)
	f.engine.images["echo:1.0.0"] = false // not here, and the pull is denied
	f.writeSpec("t", "recipe: echo\nversion: 1.0.0+1\nttl: 1m\n")
	st := f.settle("t")
	if st.Phase != spec.PhaseFailed {
		t.Fatalf("install: %s %s", st.Phase, st.Message)
	}
	left := len(f.engine.networks) + len(f.engine.configs) + len(f.engine.secrets)
	if left == 0 {
		t.Fatal("nothing was created before the image check failed: the case this test is about (leftovers of a Failed app past its ttl) no longer arises")
	}
	f.now = f.now.Add(10 * time.Minute)
	st = f.settle("t")
	if n := len(f.engine.networks) + len(f.engine.configs) + len(f.engine.secrets); n > 0 {
		t.Errorf("10 min past a 1m ttl: %s %q; %d objects of the app left (networks %v, configs %d)", st.Phase, st.Message, n, f.engine.networks, len(f.engine.configs))
	}
}

// TestRenameKeepsTheDomainLockHeld: x is renamed y on the same domain (x's spec deleted, y's
// written). y claims the domain's lock while x's teardown goes on; x's teardown ending must not
// unlink and release the lock y holds: between that and y's next pass a CI harness could take
// it, and y would then wait on the harness with its objects half made.
func TestRenameKeepsTheDomainLockHeld(t *testing.T) {
	f := newFixture(t)
	harness := withLocks(f)
	renameOnSharedDomain(f)
	// y's first pass claims the lock and waits for x's names; x's teardown runs to its end.
	f.pass("y")
	f.settle("x")
	if x, _ := spec.ReadStatus(f.r.StatusDir, "x"); x.Phase != spec.PhaseDeleted {
		t.Fatalf("x: %s %s", x.Phase, x.Message)
	}
	l, err := harness.TryApp("shared.test")
	if err == nil {
		l.Release()
		t.Fatal("x's teardown ended and the lock of shared.test was free, though y claimed it: another process could take it")
	}
	if y := f.settle("y"); y.Phase != spec.PhaseReady {
		t.Fatalf("y: %s %s", y.Phase, y.Message)
	}
}

// renameOnSharedDomain installs x on shared.test, then renames it: deletes x's spec and writes
// y's with the same domain.
func renameOnSharedDomain(f *fixture) {
	f.t.Helper()
	f.writeSpec("x", "recipe: echo\nversion: 1.0.0+1\ndomain: shared.test\n")
	if st := f.settle("x"); st.Phase != spec.PhaseReady {
		f.t.Fatalf("install x: %s %s", st.Phase, st.Message)
	}
	if err := spec.Unplace(f.r.SpecsDir, "x"); err != nil {
		f.t.Fatal(err)
	}
	f.writeSpec("y", "recipe: echo\nversion: 1.0.0+1\ndomain: shared.test\n")
}

// TestTTLLeavesAStackWhoseLockIsHeld: an app moving from old.test to new.test, the old
// stack's lock held by another live process (the move waits on it), reaches its ttl. The ttl's
// teardown takes the old stack only under its lock, as every teardown does: it waits, and
// reaps it once the lock is released.
func TestTTLLeavesAStackWhoseLockIsHeld(t *testing.T) {
	f := newFixture(t)
	other := withLocks(f)
	f.writeSpec("m", "recipe: echo\nversion: 1.0.0+1\ndomain: old.test\nttl: 1h\n")
	if st := f.settle("m"); st.Phase != spec.PhaseReady {
		t.Fatalf("install: %s %s", st.Phase, st.Message)
	}
	f.r.ReleaseAll()
	harness, err := other.TryApp("old.test")
	if err != nil {
		t.Fatal(err)
	}
	defer harness.Release()
	f.writeSpec("m", "recipe: echo\nversion: 1.0.0+1\ndomain: new.test\nttl: 1h\n")
	st := f.settle("m")
	if !strings.Contains(st.Message, "waiting to remove the stack of old.test") {
		t.Fatalf("the move: %s %s; want it waiting on old.test's lock", st.Phase, st.Message)
	}
	f.engine.resetCalls()
	f.now = f.now.Add(2 * time.Hour)
	st = f.settle("m")
	for _, w := range f.engine.writes() {
		if strings.Contains(w, "old_test") {
			t.Errorf("past the ttl, with old.test's lock held by another process: %s", w)
		}
	}
	if st.Phase == spec.PhaseExpired {
		t.Errorf("Expired while the old stack is left: %s", st.Message)
	}
	harness.Release()
	if st = f.settle("m"); st.Phase != spec.PhaseExpired || len(f.engine.services)+len(f.engine.networks) != 0 {
		t.Errorf("lock released: %s %s; services %d networks %d", st.Phase, st.Message, len(f.engine.services), len(f.engine.networks))
	}
}

// withLocks gives f's reconciler a lock directory, and returns another process's view of it
// (a CI harness's).
func withLocks(f *fixture) *locks.Dir {
	f.t.Helper()
	lockDir := f.t.TempDir()
	ours, err := locks.Open(lockDir)
	if err != nil {
		f.t.Fatal(err)
	}
	other, err := locks.Open(lockDir)
	if err != nil {
		f.t.Fatal(err)
	}
	f.r.Locks = ours
	return other
}
