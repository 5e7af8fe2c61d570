package controller

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/swarm"
	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/swarm-reconciler/reconciler/spec"
	"github.com/swarm-reconciler/reconciler/swarmstate"
)

const testCompose = `version: "3.8"
services:
  app:
    image: echo:%s
    environment:
      MESSAGE: "hello %s"
    volumes:
      - data:/data
    configs:
      - source: conf
        target: /conf
    networks:
      - internal
volumes:
  data:
networks:
  internal:
configs:
  conf:
    name: ${STACK_NAME}_conf_v1
    file: conf.txt
`

// makeRecipe makes a recipe repository with one annotated tag per version.
func makeRecipe(t testing.TB, recipesDir, name string, versions ...string) {
	t.Helper()
	makeRecipeOf(t, recipesDir, name, testCompose, versions...)
}

// makeRecipeOf is makeRecipe with another compose file, in testCompose's form.
func makeRecipeOf(t testing.TB, recipesDir, name, compose string, versions ...string) {
	t.Helper()
	dir := filepath.Join(recipesDir, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	git := func(args ...string) { gitIn(t, dir, args...) }
	git("init", "-q")
	write := func(name, content string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(".env.sample", "TYPE="+name+"\n")
	write("conf.txt", "conf\n")
	for _, v := range versions {
		image := strings.SplitN(v, "+", 2)[0]
		write("compose.yml", strings.ReplaceAll(strings.ReplaceAll(compose, "echo:%s", "echo:"+image), "hello %s", "hello "+v))
		git("add", "-A")
		git("commit", "-q", "-m", v)
		git("tag", "-a", v, "-m", v)
	}
}

// gitIn runs git in dir.
func gitIn(t testing.TB, dir string, args ...string) {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@t", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@t")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
}

type fixture struct {
	t      testing.TB
	engine *fakeEngine
	r      *Reconciler
	now    time.Time
}

func newFixture(t testing.TB) *fixture {
	root := t.TempDir()
	f := &fixture{t: t, engine: newFakeEngine(), now: time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)}
	f.engine.images["echo:1.0.0"], f.engine.images["echo:1.1.0"] = true, true
	f.engine.taskNow = func() time.Time { return f.now }
	f.r = &Reconciler{
		Engine: f.engine, SpecsDir: filepath.Join(root, "specs"), StatusDir: filepath.Join(root, "status"),
		RecipesDir: filepath.Join(root, "recipes"), Defaults: spec.Defaults{DomainSuffix: "test"},
		Now: func() time.Time { return f.now }, Log: logr.Discard(), Owner: "d1",
	}
	for _, d := range []string{f.r.SpecsDir, f.r.StatusDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	makeRecipe(t, f.r.RecipesDir, "echo", "1.0.0+1", "1.1.0+1", "2.0.0+1")
	return f
}

func (f *fixture) writeSpec(app, content string) {
	f.t.Helper()
	if err := spec.Place(f.r.SpecsDir, app, []byte(content)); err != nil {
		f.t.Fatal(err)
	}
}

// settleAs settles app, moving the clock on by step between settles, until it is in phase
// (n settles at most), and returns its status then.
func (f *fixture) settleAs(app string, phase spec.Phase, step time.Duration, n int) *spec.Status {
	f.t.Helper()
	st := f.settle(app)
	for i := 0; st.Phase != phase && i < n; i++ {
		f.now = f.now.Add(step)
		st = f.settle(app)
	}
	return st
}

// settle reconciles app until it stops asking to be requeued, and returns its status.
func (f *fixture) settle(app string) *spec.Status {
	f.t.Helper()
	for i := 0; i < 20; i++ {
		res, err := f.r.Reconcile(f.t.Context(), app)
		if err != nil {
			f.t.Fatalf("reconcile %s: %v", app, err)
		}
		f.now = f.now.Add(time.Second)
		if res.RequeueAfter == 0 {
			break
		}
	}
	st, err := spec.ReadStatus(f.r.StatusDir, app)
	if err != nil {
		f.t.Fatalf("status of %s: %v", app, err)
	}
	return st
}

func TestReconcileLifecycle(t *testing.T) {
	f := newFixture(t)
	f.writeSpec("a", "recipe: echo\nversion: 1.0.0+1\n")

	st := f.settle("a")
	if st.Phase != spec.PhaseReady || st.Deploys != 1 || st.Stack != "a_test" {
		t.Fatalf("install: phase %s deploys %d stack %s: %s", st.Phase, st.Deploys, st.Stack, st.Message)
	}
	data, _ := os.ReadFile(filepath.Join(f.r.SpecsDir, "a.yml"))
	if st.ObservedGeneration != spec.Generation(data) {
		t.Errorf("observedGeneration %s, want the spec's hash", st.ObservedGeneration)
	}
	if !strings.Contains(st.LastAppliedRevision, "echo@1.0.0+1 (") {
		t.Errorf("lastAppliedRevision = %q", st.LastAppliedRevision)
	}
	want := []string{"create network a_test_internal", "create config a_test_conf_v1", "create service a_test_app"}
	if got := f.engine.writes(); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("install calls = %v, want %v", got, want)
	}

	// Do nothing: a second pass over a converged app changes nothing and writes no status.
	f.engine.resetCalls()
	before, _ := os.Stat(filepath.Join(f.r.StatusDir, "a.json"))
	if res, err := f.r.Reconcile(t.Context(), "a"); err != nil || res.RequeueAfter != 0 {
		t.Fatalf("steady reconcile: %v %v", res, err)
	}
	if w := f.engine.writes(); len(w) > 0 {
		t.Errorf("steady state made engine writes: %v", w)
	}
	after, _ := os.Stat(filepath.Join(f.r.StatusDir, "a.json"))
	if !after.ModTime().Equal(before.ModTime()) {
		t.Error("steady state rewrote the status file")
	}

	// Upgrade in place.
	f.writeSpec("a", "recipe: echo\nversion: 1.1.0+1\n")
	f.engine.resetCalls()
	st = f.settle("a")
	if st.Phase != spec.PhaseReady || st.Deploys != 2 {
		t.Fatalf("upgrade: phase %s deploys %d: %s", st.Phase, st.Deploys, st.Message)
	}
	if got := f.engine.writes(); strings.Join(got, ",") != "update service a_test_app" {
		t.Errorf("upgrade calls = %v", got)
	}
	if !hasPhase(st, spec.PhaseUpgrading) {
		t.Errorf("history has no Upgrading: %+v", st.History)
	}

	// An invalid edit touches nothing.
	f.writeSpec("a", "recipe: echo\nversion: 1.1.0+1\nfoo: bar\n")
	f.engine.resetCalls()
	st = f.settle("a")
	if st.Phase != spec.PhaseInvalid || !strings.Contains(st.Message, "foo") {
		t.Fatalf("invalid: phase %s: %s", st.Phase, st.Message)
	}
	if w := f.engine.writes(); len(w) > 0 {
		t.Errorf("invalid spec made engine writes: %v", w)
	}

	// Delete: everything goes, and only then Deleted.
	if err := spec.Unplace(f.r.SpecsDir, "a"); err != nil {
		t.Fatal(err)
	}
	st = f.settle("a")
	if st.Phase != spec.PhaseDeleted {
		t.Fatalf("delete: phase %s: %s", st.Phase, st.Message)
	}
	if n := len(f.engine.services) + len(f.engine.networks) + len(f.engine.configs) + len(f.engine.volumes) + len(f.engine.secrets); n != 0 {
		t.Errorf("%d objects left after Deleted", n)
	}
	if !hasPhase(st, spec.PhaseDeleting) {
		t.Errorf("history has no Deleting: %+v", st.History)
	}
}

func hasPhase(st *spec.Status, p spec.Phase) bool {
	for _, h := range st.History {
		if h.Phase == p {
			return true
		}
	}
	return false
}

func TestReconcileFailures(t *testing.T) {
	tests := []struct {
		name     string
		spec     string
		prepare  func(f *fixture)
		phase    spec.Phase
		message  string
		noWrites bool
	}{
		{name: "unknown version", spec: "recipe: echo\nversion: 9.9.9\n", phase: spec.PhaseInvalid, message: "9.9.9", noWrites: true},
		{name: "unknown recipe", spec: "recipe: nope\nversion: 1.0.0+1\n", phase: spec.PhaseInvalid, message: "nope", noWrites: true},
		{name: "image missing and not pullable", spec: "recipe: echo\nversion: 2.0.0+1\n", phase: spec.PhaseFailed, message: "echo:2.0.0"},
		{name: "tasks never start", spec: "recipe: echo\nversion: 1.0.0+1\ntimeout: 5s\n",
			prepare: func(f *fixture) { f.engine.failTasks = "starting container failed: boom" },
			phase:   spec.PhaseFailed, message: "starting container failed: boom"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			if tt.prepare != nil {
				tt.prepare(f)
			}
			f.writeSpec("b", tt.spec)
			st := f.settle("b")
			if st.Phase != tt.phase || !strings.Contains(st.Message, tt.message) {
				t.Fatalf("phase %s message %q, want %s containing %q", st.Phase, st.Message, tt.phase, tt.message)
			}
			if w := f.engine.writes(); tt.noWrites && len(w) > 0 {
				t.Errorf("engine writes: %v", w)
			}
			// Final for the generation: another pass does nothing.
			f.engine.resetCalls()
			if _, err := f.r.Reconcile(t.Context(), "b"); err != nil {
				t.Fatal(err)
			}
			if w := f.engine.writes(); len(w) > 0 {
				t.Errorf("a final phase was acted on again: %v", w)
			}
		})
	}
}

// upgradeApplied is a fixture whose app, Ready at 1.0.0+1, was given 1.1.0+1 and reconciled
// once: the update applied, its roll for swarm to carry out.
func upgradeApplied(t *testing.T, app string) *fixture {
	t.Helper()
	f := newFixture(t)
	f.writeSpec(app, "recipe: echo\nversion: 1.0.0+1\n")
	if st := f.settle(app); st.Phase != spec.PhaseReady {
		t.Fatalf("install: %s %s", st.Phase, st.Message)
	}
	f.writeSpec(app, "recipe: echo\nversion: 1.1.0+1\n")
	if _, err := f.r.Reconcile(t.Context(), app); err != nil {
		t.Fatal(err)
	}
	return f
}

func TestRollbackIsFailedNotRetried(t *testing.T) {
	f := upgradeApplied(t, "c")
	// Swarm rolls back: the old spec (and its labels) return, with a rollback state.
	for _, svc := range f.engine.services {
		svc.Spec = *svc.PreviousSpec
		started := f.now
		svc.UpdateStatus = &swarm.UpdateStatus{State: swarm.UpdateStateRollbackCompleted, StartedAt: &started, Message: "rollback completed"}
	}
	f.engine.resetCalls()
	st := f.settle("c")
	if st.Phase != spec.PhaseFailed || !strings.Contains(st.Message, "rolled back: the running spec is the previous one") {
		t.Fatalf("phase %s: %s", st.Phase, st.Message)
	}
	if w := f.engine.writes(); len(w) > 0 {
		t.Errorf("rolled-back service updated again: %v", w)
	}
}

// TestRollbackUnderWayIsWaitedFor: while swarm rolls an update back (the old spec back in
// place, the rollback not ended), the reconciler does not apply the new spec again, which
// would start the roll over; the rollback's end makes the attempt Failed.
func TestRollbackUnderWayIsWaitedFor(t *testing.T) {
	f := upgradeApplied(t, "c")
	rollback := func(state swarm.UpdateState) {
		for _, svc := range f.engine.services {
			if svc.PreviousSpec != nil {
				svc.Spec = *svc.PreviousSpec
			}
			started := f.now
			svc.UpdateStatus = &swarm.UpdateStatus{State: state, StartedAt: &started}
		}
	}
	rollback(swarm.UpdateStateRollbackStarted)
	f.engine.resetCalls()
	var st *spec.Status
	for range 4 {
		st = f.pass("c")
	}
	if w := f.engine.writes(); len(w) > 0 {
		t.Fatalf("updated again during the rollback: %v", w)
	}
	if st.Phase != spec.PhaseUpgrading || !strings.Contains(st.Message, "rolling back") {
		t.Fatalf("during the rollback: %s %s", st.Phase, st.Message)
	}
	rollback(swarm.UpdateStateRollbackCompleted)
	st = f.pass("c")
	if st.Phase != spec.PhaseFailed || !strings.Contains(st.Message, "rolled back") {
		t.Fatalf("after the rollback: %s %s", st.Phase, st.Message)
	}
	if w := f.engine.writes(); len(w) > 0 {
		t.Errorf("updated again: %v", w)
	}
}

// failingUpgrade is a fixture whose app u, Ready at 1.0.0+1 of a recipe whose update_config
// says failure_action (none when empty), was given 1.1.0+1 with a 30s timeout: the new
// release's tasks fail, and the fake's update is completed all the same, as swarm leaves it
// when its monitor saw no failure.
func failingUpgrade(t *testing.T, failureAction string) *fixture {
	t.Helper()
	deploy := ""
	if failureAction != "" {
		deploy = "    deploy:\n      update_config:\n        failure_action: " + failureAction + "\n"
	}
	return failingUpgradeOf(t, deploy, "30s")
}

// failingUpgradeOf is failingUpgrade with more compose lines after the app service's (its
// deploy block, more services) and the upgrade's timeout.
func failingUpgradeOf(t *testing.T, more, timeout string) *fixture {
	t.Helper()
	f := newFixture(t)
	compose := strings.Replace(testCompose, "    networks:\n      - internal\n", "    networks:\n      - internal\n"+more, 1)
	makeRecipeOf(t, f.r.RecipesDir, "rb", compose, "1.0.0+1", "1.1.0+1")
	f.writeSpec("u", "recipe: rb\nversion: 1.0.0+1\n")
	if st := f.settle("u"); st.Phase != spec.PhaseReady {
		t.Fatalf("install: %s %s", st.Phase, st.Message)
	}
	f.engine.failTasks = "task: non-zero exit (3)"
	f.engine.now = f.now // the roll's StartedAt falls in the upgrade's attempt
	f.writeSpec("u", "recipe: rb\nversion: 1.1.0+1\ntimeout: "+timeout+"\n")
	return f
}

// TestFailedUpgradeSwarmDidNotRollBack: an upgrade whose new tasks fail, where swarm ended
// the update as completed without rolling back (its monitor saw no failure, or a dockerd
// restart lost the update). With update_config.failure_action rollback, the attempt's Failed
// verdict rolls the service back to its previous spec, once, and says so; the wait before the
// deadline says it will. Without it (or with pause) the new spec is left in place, as swarm
// would leave it.
func TestFailedUpgradeSwarmDidNotRollBack(t *testing.T) {
	for _, tc := range []struct {
		action   string
		rollback bool
	}{
		{"rollback", true},
		{"pause", false},
		{"", false},
	} {
		t.Run("failure_action "+tc.action, func(t *testing.T) {
			f := failingUpgrade(t, tc.action)
			f.engine.resetCalls()
			var st *spec.Status
			for range 3 {
				st = f.pass("u")
			}
			if st.Phase != spec.PhaseUpgrading || strings.Contains(st.Message, "rolled back at") != tc.rollback {
				t.Fatalf("before the deadline: %s %q (rollback said: want %v)", st.Phase, st.Message, tc.rollback)
			}
			f.now = f.now.Add(time.Minute)
			st = f.pass("u")
			if st.Phase != spec.PhaseFailed || !strings.Contains(st.Message, "not converged within 30s") ||
				strings.Contains(st.Message, "rolling back to the previous spec") != tc.rollback {
				t.Fatalf("at the deadline: %s %q (rollback said: want %v)", st.Phase, st.Message, tc.rollback)
			}
			var svc *swarm.Service
			for _, s := range f.engine.services {
				svc = s
			}
			rolled := slices.Contains(f.engine.writes(), "rollback service "+svc.Spec.Name)
			image := svc.Spec.TaskTemplate.ContainerSpec.Image
			if rolled != tc.rollback || (image == "echo:1.0.0") != tc.rollback {
				t.Fatalf("rolled back %v, running image %s; want rolled back %v (writes %v)", rolled, image, tc.rollback, f.engine.writes())
			}
			// Failed is final: nothing more is done, the rollback is not made twice.
			f.engine.resetCalls()
			f.engine.failTasks = ""
			if st = f.pass("u"); st.Phase != spec.PhaseFailed {
				t.Fatalf("after the verdict: %s %s", st.Phase, st.Message)
			}
			if w := f.engine.writes(); len(w) > 0 {
				t.Errorf("a Failed attempt acted on again: %v", w)
			}
		})
	}
}

// TestSlowUpgradeNotStableRolledBack: an upgrade whose new task runs, without a restart, but
// has not run its stability window by the timeout (a slow start on a loaded swarm). Swarm
// completed the update; the verdict is Failed "not stable", so the recipe's failure_action
// rollback is made. While it waits, nothing is said of a rollback: that is how every upgrade
// that works looks for a while. With a window that fits in the timeout it is Ready, untouched.
func TestSlowUpgradeNotStableRolledBack(t *testing.T) {
	for _, tc := range []struct {
		minReady string
		want     spec.Phase
	}{
		{"20s", spec.PhaseFailed},
		{"5s", spec.PhaseReady},
	} {
		t.Run("minReady "+tc.minReady, func(t *testing.T) {
			f := newFixture(t)
			compose := strings.Replace(testCompose, "    networks:\n      - internal\n",
				"    networks:\n      - internal\n    deploy:\n      update_config:\n        failure_action: rollback\n", 1)
			makeRecipeOf(t, f.r.RecipesDir, "rb", compose, "1.0.0+1", "1.1.0+1")
			f.writeSpec("u", "recipe: rb\nversion: 1.0.0+1\nminReady: 0s\n")
			if st := f.settle("u"); st.Phase != spec.PhaseReady {
				t.Fatalf("install: %s %s", st.Phase, st.Message)
			}
			f.engine.now = f.now
			f.engine.rollLists = 1000 // the roll takes a while: its task comes up 16s into the attempt
			f.writeSpec("u", "recipe: rb\nversion: 1.1.0+1\ntimeout: 30s\nminReady: "+tc.minReady+"\n")
			st := f.pass("u")
			f.now = f.now.Add(16 * time.Second)
			f.engine.endRolls()
			for range 3 {
				st = f.pass("u")
			}
			if st.Phase != spec.PhaseUpgrading || !strings.Contains(st.Message, "waiting for them to stay up") || strings.Contains(st.Message, "roll") {
				t.Fatalf("before the deadline: %s %q, want Upgrading waiting for the window, no rollback said", st.Phase, st.Message)
			}
			f.engine.resetCalls()
			f.now = f.now.Add(16 * time.Second)
			st = f.pass("u")
			rolled := slices.Contains(f.engine.writes(), "rollback service u_test_app")
			if st.Phase != tc.want || rolled != (tc.want == spec.PhaseFailed) {
				t.Fatalf("at the deadline: %s %q, rolled back %v (writes %v); want %s", st.Phase, st.Message, rolled, f.engine.writes(), tc.want)
			}
			if tc.want == spec.PhaseFailed && (!strings.Contains(st.Message, "not stable within 30s") || !strings.Contains(st.Message, "rolling back to the previous spec")) {
				t.Errorf("the Failed message does not say why and what is done: %q", st.Message)
			}
		})
	}
}

// TestOwedRollbackKilledBeforeTheStatus: the process dies after the rollback call and before
// the Failed status is written: the next process finds the Upgrading status and swarm's
// rollback of this attempt, and is Failed saying it rolled back, without another rollback.
func TestOwedRollbackKilledBeforeTheStatus(t *testing.T) {
	f := failingUpgrade(t, "rollback")
	f.pass("u")
	f.now = f.now.Add(time.Minute)
	upgrading, err := spec.ReadStatus(f.r.StatusDir, "u")
	if err != nil || upgrading.Phase != spec.PhaseUpgrading {
		t.Fatalf("before the deadline: %v %v", upgrading, err)
	}
	if st := f.pass("u"); st.Phase != spec.PhaseFailed {
		t.Fatalf("at the deadline: %s %s", st.Phase, st.Message)
	}
	if err := spec.WriteStatus(f.r.StatusDir, upgrading); err != nil { // the write that never happened
		t.Fatal(err)
	}
	f.engine.resetCalls()
	st := f.pass("u")
	if st.Phase != spec.PhaseFailed || !strings.Contains(st.Message, "rolled back") {
		t.Fatalf("after the restart: %s %q", st.Phase, st.Message)
	}
	for _, w := range f.engine.writes() {
		if !strings.HasPrefix(w, "logs ") { // the failed task's log, read for the message
			t.Errorf("acted again after the rollback: %s", w)
		}
	}
}

// TestOwedRollbackThatFails: the engine refuses the rollback; the app is Failed with the
// verdict, what failed and the command to run by hand.
func TestOwedRollbackThatFails(t *testing.T) {
	f := failingUpgrade(t, "rollback")
	f.pass("u")
	f.now = f.now.Add(time.Minute)
	f.engine.fail = map[string]int{"rollback service": 1}
	st := f.pass("u")
	for _, want := range []string{"not converged within 30s", "non-zero exit (3)", "rolling u_test_app back to its previous spec failed", "docker service rollback u_test_app"} {
		if st.Phase != spec.PhaseFailed || !strings.Contains(st.Message, want) {
			t.Errorf("%s %q: want Failed saying %q", st.Phase, st.Message, want)
		}
	}
}

// TestOwedRollbacks: which services a Failed verdict rolls back (those that fail it: not
// converged, or not yet up for their window), and which the wait before it names (those of
// them already in trouble).
func TestOwedRollbacks(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	five := func(swarmstate.ServiceState) time.Duration { return 5 * time.Second }
	up := func(ago time.Duration) time.Time { return now.Add(-ago) }
	for _, tc := range []struct {
		name       string
		s          swarmstate.ServiceState
		owed, soon bool
	}{
		{"no rollback owed", swarmstate.ServiceState{Converged: false}, false, false},
		{"not converged", swarmstate.ServiceState{RollbackOwed: true}, true, true},
		{"in its window, nothing ended", swarmstate.ServiceState{RollbackOwed: true, Converged: true, RunningSince: up(2 * time.Second)}, true, false},
		{"in its window, a task ended since the roll", swarmstate.ServiceState{RollbackOwed: true, Converged: true, RunningSince: up(2 * time.Second), Restarts: 2, EndedSinceRoll: true}, true, true},
		{"ran its window after restarts", swarmstate.ServiceState{RollbackOwed: true, Converged: true, RunningSince: up(9 * time.Second), Restarts: 3, EndedSinceRoll: true}, false, false},
		{"restarts before the roll, stable since", swarmstate.ServiceState{RollbackOwed: true, Converged: true, RunningSince: up(9 * time.Second), Restarts: 1}, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.s.Name = "x_app"
			v := swarmstate.Verdict{Services: []swarmstate.ServiceState{tc.s}}
			if got := len(owedRollbacks(v, now, five)) == 1; got != tc.owed {
				t.Errorf("owed at the verdict: %v, want %v", got, tc.owed)
			}
			if got := len(owedSoon(v, now, five)) == 1; got != tc.soon {
				t.Errorf("named while waiting: %v, want %v", got, tc.soon)
			}
		})
	}
	// minReady 0s: no window, so only a service that is not converged fails the verdict.
	zero := func(swarmstate.ServiceState) time.Duration { return 0 }
	v := swarmstate.Verdict{Services: []swarmstate.ServiceState{{Name: "x_app", RollbackOwed: true, Converged: true, RunningSince: now, EndedSinceRoll: true}}}
	if owed := owedRollbacks(v, now, zero); len(owed) > 0 {
		t.Errorf("with no window a converged service is owed %v", owed)
	}
}

// TestOwedRollbackRestartPolicyGaveUp: the new tasks fail after swarm's monitor and the
// restart policy gives up (max_attempts): Failed at once, "cannot converge", and the rollback
// the recipe asks for is made then, not left for a deadline that no longer comes.
func TestOwedRollbackRestartPolicyGaveUp(t *testing.T) {
	f := failingUpgradeOf(t, "    deploy:\n      restart_policy:\n        condition: on-failure\n        max_attempts: 2\n      update_config:\n        failure_action: rollback\n", "10m")
	var st *spec.Status
	for range 6 {
		if st = f.pass("u"); st.Phase == spec.PhaseFailed {
			break
		}
	}
	if st.Phase != spec.PhaseFailed || !strings.Contains(st.Message, "cannot converge") || !strings.Contains(st.Message, "rolling back to the previous spec") {
		t.Fatalf("%s %q: want Failed at once, cannot converge, rolling back", st.Phase, st.Message)
	}
	if !slices.Contains(f.engine.writes(), "rollback service u_test_app") {
		t.Errorf("no rollback made: %v", f.engine.writes())
	}
}

// TestOwedRollbacksEachTried: two services owed a rollback, and the engine refuses the first:
// the second is still rolled back, and Failed says the verdict once, then which failed and
// what to do about it.
func TestOwedRollbacksEachTried(t *testing.T) {
	rollback := "    deploy:\n      update_config:\n        failure_action: rollback\n"
	f := failingUpgradeOf(t, rollback+"  worker:\n    image: echo:%s\n"+rollback, "30s")
	f.pass("u")
	f.now = f.now.Add(time.Minute)
	f.engine.resetCalls()
	f.engine.fail = map[string]int{"rollback service": 1}
	st := f.pass("u")
	var rolled []string
	for _, c := range f.engine.writes() {
		if strings.HasPrefix(c, "rollback service ") {
			rolled = append(rolled, strings.TrimPrefix(c, "rollback service "))
		}
	}
	if len(rolled) != 2 {
		t.Errorf("rollbacks asked for: %v, want both services", rolled)
	}
	if st.Phase != spec.PhaseFailed || strings.Count(st.Message, "not converged within 30s") != 1 ||
		strings.Count(st.Message, "back to its previous spec failed") != 1 || !strings.Contains(st.Message, "docker service rollback "+rolled[0]) {
		t.Errorf("%s %q: want Failed with the verdict once and the one refused rollback", st.Phase, st.Message)
	}
}

// lostAnswer is an engine whose rollback is made but whose answer is lost on the way back.
type lostAnswer struct{ *fakeEngine }

func (l lostAnswer) ServiceUpdate(ctx context.Context, id string, v swarm.Version, s swarm.ServiceSpec, o swarm.ServiceUpdateOptions) (swarm.ServiceUpdateResponse, error) {
	r, err := l.fakeEngine.ServiceUpdate(ctx, id, v, s, o)
	if err == nil && o.Rollback == "previous" {
		err = errors.New("error during connect: unexpected EOF")
	}
	return r, err
}

// TestOwedRollbackAnswerLost: the rollback call reached swarm but its answer did not: the
// service is rolling back, so the verdict says it rolled back, and does not tell the operator
// to roll back by hand (which would put the failing spec back).
func TestOwedRollbackAnswerLost(t *testing.T) {
	f := failingUpgrade(t, "rollback")
	f.r.Engine = lostAnswer{f.engine}
	f.pass("u")
	f.now = f.now.Add(time.Minute)
	st := f.pass("u")
	if st.Phase != spec.PhaseFailed || !strings.HasSuffix(st.Message, "rolling back to the previous spec") || strings.Contains(st.Message, "by hand") {
		t.Errorf("%s %q: want Failed, rolling back, no by-hand advice", st.Phase, st.Message)
	}
}

// failingNetworks is an engine that refuses to create networks, as a missing driver does.
type failingNetworks struct{ *fakeEngine }

func (failingNetworks) NetworkCreate(context.Context, string, network.CreateOptions) (network.CreateResponse, error) {
	return network.CreateResponse{}, errors.New(`plugin "no-such-driver" not found`)
}

func TestPersistentApplyErrorFailsAtTheTimeout(t *testing.T) {
	f := newFixture(t)
	f.r.Engine = failingNetworks{f.engine}
	f.writeSpec("e", "recipe: echo\nversion: 1.0.0+1\ntimeout: 5s\n")
	for i := 0; i < 10; i++ {
		_, err := f.r.Reconcile(t.Context(), "e")
		f.now = f.now.Add(time.Second)
		st, _ := spec.ReadStatus(f.r.StatusDir, "e")
		if err == nil && st.Phase == spec.PhaseFailed {
			if !strings.Contains(st.Message, "no-such-driver") || !strings.Contains(st.Message, "within 5s") {
				t.Fatalf("message %q", st.Message)
			}
			return
		}
		if err == nil {
			t.Fatalf("pass %d: an apply error must be retried before the timeout, got phase %s", i, st.Phase)
		}
	}
	t.Fatal("never Failed")
}

func TestWaitAfter(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	far := start.Add(time.Hour)
	tests := []struct {
		name     string
		waited   time.Duration
		deadline time.Time
		want     time.Duration
	}{
		{"just applied", 0, far, waitInterval},
		{"waited 1s", time.Second, far, waitInterval},
		{"waited 4s", 4 * time.Second, far, time.Second},
		{"waited a minute", time.Minute, far, maxWaitInterval},
		{"deadline in 300ms", time.Minute, start.Add(time.Minute + 300*time.Millisecond), 301 * time.Millisecond},
		{"deadline passed", time.Minute, start, maxWaitInterval},
	}
	for _, tt := range tests {
		if got := waitAfter(start, tt.deadline, start.Add(tt.waited)); got != tt.want {
			t.Errorf("%s: waitAfter = %s, want %s", tt.name, got, tt.want)
		}
	}
}

// TestTasksMoved: a look after a task event costs one task list call and runs a pass only
// when swarm's task list differs from what the last pass saw.
func TestTasksMoved(t *testing.T) {
	f := newFixture(t)
	if !f.r.TasksMoved(t.Context(), "a") {
		t.Error("an app no pass has seen must count as moved")
	}
	f.writeSpec("a", "recipe: echo\nversion: 1.0.0+1\n")
	if st := f.settle("a"); st.Phase != spec.PhaseReady {
		t.Fatalf("install: %s %s", st.Phase, st.Message)
	}
	f.engine.resetCalls()
	if f.r.TasksMoved(t.Context(), "a") {
		t.Error("nothing changed, yet moved")
	}
	if got := strings.Join(f.engine.calls, ","); got != "list tasks" {
		t.Errorf("calls %q, want one task list", got)
	}
	f.engine.mu.Lock()
	f.engine.tasks[0].Status.State = swarm.TaskStateFailed
	f.engine.mu.Unlock()
	if !f.r.TasksMoved(t.Context(), "a") {
		t.Error("a task failed, yet not moved")
	}
	f.engine.fail = map[string]int{"list tasks": 1}
	if _, err := f.r.Reconcile(t.Context(), "a"); err == nil {
		t.Fatal("injected failure did not fail the pass")
	}
	f.engine.fail = map[string]int{"list tasks": 1}
	if !f.r.TasksMoved(t.Context(), "a") {
		t.Error("an engine that does not answer must count as moved")
	}
}

// TestWaitsOnTasksAlone: a pass that waits on swarm's verdict about tasks says so (TasksFor),
// so that the loop's looks are a task list call until then; never past the attempt's deadline,
// and never for a wait on something else (an apply just made, a teardown).
func TestWaitsOnTasksAlone(t *testing.T) {
	f := newFixture(t)
	// No stability window: the waits here are the roll's (TestStabilityWindow has the window's).
	f.writeSpec("a", "recipe: echo\nversion: 1.0.0+1\ntimeout: 5s\nminReady: 0s\n")
	if st := f.settle("a"); st.Phase != spec.PhaseReady {
		t.Fatalf("install: %s %s", st.Phase, st.Message)
	}
	type pass struct {
		phase           spec.Phase
		after, tasksFor time.Duration
	}
	run := func(n int) []pass {
		var out []pass
		for range n {
			res, err := f.r.Reconcile(t.Context(), "a")
			if err != nil {
				t.Fatal(err)
			}
			st, err := spec.ReadStatus(f.r.StatusDir, "a")
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, pass{st.Phase, res.RequeueAfter, res.TasksFor})
			f.now = f.now.Add(2 * time.Second)
			if res.RequeueAfter == 0 {
				break
			}
		}
		return out
	}

	// An upgrade whose roll takes time: the apply waits on its own, then the roll's waits say
	// tasks, for no longer than the 5s deadline (3s and 1s left, plus a millisecond).
	f.engine.rollLists = 3
	f.writeSpec("a", "recipe: echo\nversion: 1.1.0+1\ntimeout: 5s\nminReady: 0s\n")
	got := run(10)
	want := []pass{
		{spec.PhaseUpgrading, waitInterval, 0},
		{spec.PhaseUpgrading, waitInterval, 3*time.Second + time.Millisecond},
		{spec.PhaseUpgrading, time.Second, time.Second + time.Millisecond}, // waited 4s: a look after 1s
		{spec.PhaseReady, 0, 0},
	}
	if !slices.Equal(got, want) {
		t.Errorf("upgrade passes:\n got %+v\nwant %+v", got, want)
	}

	// A repair of a Ready app (Degraded) waits on tasks for tasksOnlyFor.
	f.engine.byHand("a_test_app", func(s *swarm.ServiceSpec) { s.TaskTemplate.ContainerSpec.Image = "echo:1.0.0" })
	got = run(10)
	if len(got) < 2 || got[1] != (pass{spec.PhaseDegraded, maxWaitInterval, tasksOnlyFor}) || got[len(got)-1].phase != spec.PhaseReady {
		t.Errorf("repair passes: %+v; want an apply, then Degraded waiting on tasks for %s, then Ready", got, tasksOnlyFor)
	}

	// A teardown's waits are not on tasks.
	if err := os.Remove(filepath.Join(f.r.SpecsDir, "a.yml")); err != nil {
		t.Fatal(err)
	}
	for _, p := range run(10) {
		if p.tasksFor != 0 {
			t.Errorf("teardown pass %+v waits on tasks", p)
		}
	}
}

// TestOverlayFileEditIsANewAttempt: an overlay file edited moves the app as an edit of the
// spec does. A Failed app is deployed again once its overlay is fixed (its generation changed,
// and with it what it asks for), and a Ready one whose overlay now names an image no node has
// fails that new attempt.
func TestOverlayFileEditIsANewAttempt(t *testing.T) {
	const good = "services:\n  app:\n    image: echo:1.0.0\n"
	const bad = "services:\n  app:\n    image: echo:2.0.0\n" // not present, not pullable
	for _, tc := range []struct {
		name           string
		before, after  string
		first, settled spec.Phase
	}{
		{"fixed after Failed", bad, good, spec.PhaseFailed, spec.PhaseReady},
		{"broken after Ready", good, bad, spec.PhaseReady, spec.PhaseFailed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			ov := filepath.Join(f.r.SpecsDir, "overlays", "img.yml")
			if err := os.MkdirAll(filepath.Dir(ov), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(ov, []byte(tc.before), 0o644); err != nil {
				t.Fatal(err)
			}
			f.writeSpec("o", "recipe: echo\nversion: 1.0.0+1\noverlays:\n  - file: overlays/img.yml\n")
			st := f.settle("o")
			if st.Phase != tc.first {
				t.Fatalf("first overlay: %s %q, want %s", st.Phase, st.Message, tc.first)
			}
			gen, key := st.ObservedGeneration, st.AttemptKey
			if err := os.WriteFile(ov, []byte(tc.after), 0o644); err != nil {
				t.Fatal(err)
			}
			st = f.settle("o")
			if st.ObservedGeneration == gen || st.AttemptKey == key || st.Phase != tc.settled {
				t.Fatalf("overlay edited: %s %q, generation changed %v, attempt key changed %v; want %s in a new attempt",
					st.Phase, st.Message, st.ObservedGeneration != gen, st.AttemptKey != key, tc.settled)
			}
		})
	}
}

// TestDiffRendersAsAPassDoes: Diff of a spec with an overlay, once reconciled, finds nothing
// to do (it renders with the overlay, as a pass does); with the overlay edited, it shows the
// change.
func TestDiffRendersAsAPassDoes(t *testing.T) {
	f := newFixture(t)
	ov := filepath.Join(f.r.SpecsDir, "overlays", "img.yml")
	if err := os.MkdirAll(filepath.Dir(ov), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(ov, []byte("services:\n  app:\n    image: echo:1.1.0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	f.writeSpec("o", "recipe: echo\nversion: 1.0.0+1\noverlays:\n  - file: overlays/img.yml\n")
	if st := f.settle("o"); st.Phase != spec.PhaseReady {
		t.Fatalf("%s %s", st.Phase, st.Message)
	}
	diff := func() []Difference {
		t.Helper()
		d, err := spec.Load(f.r.SpecsDir, "o", f.r.Defaults)
		if err != nil || d == nil || d.Spec == nil {
			t.Fatalf("load: %v %+v", err, d)
		}
		out, err := f.r.Diff(t.Context(), d)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	if got := diff(); len(got) != 0 {
		t.Fatalf("a reconciled app with an overlay: %d changes: %+v", len(got), got)
	}
	if err := os.WriteFile(ov, []byte("services:\n  app:\n    image: echo:1.0.0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	got := diff()
	if len(got) != 1 || got[0].Action.Kind != UpdateService || !strings.Contains(got[0].Detail, "echo:1.1.0") {
		t.Fatalf("overlay edited: %+v, want one service update from echo:1.1.0", got)
	}
}

// TestTimeToReadyIsAGenerationsFirst: swarm_reconciler_time_to_ready_seconds observes the first
// Ready of each generation, spec written to Ready, and not an app's return from Degraded (a
// crash an hour later would be a "time to Ready" of an hour).
func TestTimeToReadyIsAGenerationsFirst(t *testing.T) {
	f := newFixture(t)
	reg := prometheus.NewRegistry()
	f.r.Metrics = NewMetrics(reg)
	const name = "swarm_reconciler_time_to_ready_seconds"
	f.writeSpec("a", "recipe: echo\nversion: 1.0.0+1\ntimeout: 15s\n")
	installed := f.now
	if st := f.settle("a"); st.Phase != spec.PhaseReady || gathered(t, reg, name) != 1 {
		t.Fatalf("install: %s, %v observations", st.Phase, gathered(t, reg, name))
	}
	f.now = f.now.Add(time.Hour)
	f.engine.crashAfter = f.now.Sub(installed) // the task crashes now, once
	if st := f.pass("a"); st.Phase != spec.PhaseDegraded {
		t.Fatalf("after the crash: %s %q", st.Phase, st.Message)
	}
	f.engine.crashAfter = 0
	if seen, _ := f.stepPasses("a", 100*time.Millisecond, time.Minute); seen[len(seen)-1].Phase != spec.PhaseReady {
		t.Fatalf("after the crash: ended %s", seen[len(seen)-1].Phase)
	}
	if n := gathered(t, reg, name); n != 1 {
		t.Errorf("%v observations after a return from Degraded; want the install's one", n)
	}
	f.writeSpec("a", "recipe: echo\nversion: 1.1.0+1\ntimeout: 15s\n")
	if st := f.settle("a"); st.Phase != spec.PhaseReady || gathered(t, reg, name) != 2 {
		t.Errorf("upgrade: %s, %v observations; want 2", st.Phase, gathered(t, reg, name))
	}
}
