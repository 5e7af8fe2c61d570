package controller

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/swarm"

	"github.com/swarm-reconciler/reconciler/spec"
)

// Updates that leave the task template as its tasks run it start no roll in swarm (swarmkit
// rolls only a task whose spec is not the template's, and a plain update clears UpdateStatus):
// the verdict must not wait for one.

// TestHandEditsThatStartNoRoll: a Ready app, long past its timeout, edited by hand in ways
// that end with its tasks running the template the reconciler sets back; it must be Ready
// again, not wait for a roll swarm never starts.
func TestHandEditsThatStartNoRoll(t *testing.T) {
	image := func(ref string) func(*swarm.ServiceSpec) {
		return func(s *swarm.ServiceSpec) { s.TaskTemplate.ContainerSpec.Image = ref }
	}
	for _, tc := range []struct {
		name string
		edit func(f *fixture)
	}{
		// `docker service update --force`: swarm rolls the tasks; only ForceUpdate changes, and
		// the set-back keeps it.
		{"restarted with --force", func(f *fixture) {
			f.engine.byHand("a_test_app", func(s *swarm.ServiceSpec) { s.TaskTemplate.ForceUpdate++ })
			for _, svc := range f.engine.services {
				started := f.now
				svc.UpdateStatus = &swarm.UpdateStatus{State: swarm.UpdateStateCompleted, StartedAt: &started}
			}
		}},
		// Changed, then changed back, before a pass saw it (or while the reconciler was down).
		{"a change undone by hand", func(f *fixture) {
			f.engine.byHand("a_test_app", image("echo:1.1.0"))
			f.engine.byHand("a_test_app", image("echo:1.0.0"))
		}},
		// `docker service update --image bad`, rolled back by swarm (failure_action rollback).
		{"a hand update swarm rolled back", func(f *fixture) {
			f.engine.byHand("a_test_app", image("echo:1.1.0"))
			swarmRollsBack(f, serviceNamed(f, "a_test_app"))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := readyLongAgo(t)
			tc.edit(f)
			f.now = f.now.Add(time.Second)
			f.engine.resetCalls()
			st := f.passEvery("a", 10, 30*time.Second)
			if st.Phase != spec.PhaseReady {
				t.Fatalf("5 min later: %s %q (writes %v)", st.Phase, st.Message, f.engine.writes())
			}
		})
	}
}

// An operator suspends the app, hot-fixes the image by hand (`docker service update --image
// echo:1.1.0`), then records the fix in the spec (version 1.1.0+1, whose release changes only
// the image) and lifts the suspend in the same edit. The live service already runs exactly
// the desired template: the upgrade must end Ready, not wait for a roll swarm never starts
// and fail at its deadline.
func TestSpecCatchesUpWithHandFix(t *testing.T) {
	f := newFixture(t)
	compose := strings.Replace(testCompose, "    environment:\n      MESSAGE: \"hello %s\"\n", "", 1)
	makeRecipeOf(t, f.r.RecipesDir, "img", compose, "1.0.0+1", "1.1.0+1")
	f.writeSpec("a", "recipe: img\nversion: 1.0.0+1\n")
	if st := f.settle("a"); st.Phase != spec.PhaseReady {
		t.Fatalf("install: %s %s", st.Phase, st.Message)
	}
	f.writeSpec("a", "recipe: img\nversion: 1.0.0+1\nsuspend: true\n")
	if st := f.settle("a"); st.Phase != spec.PhaseSuspended {
		t.Fatalf("suspend: %s %s", st.Phase, st.Message)
	}
	f.now = f.now.Add(time.Minute)
	f.engine.now = f.now
	f.engine.byHand("a_test_app", func(s *swarm.ServiceSpec) { s.TaskTemplate.ContainerSpec.Image = "echo:1.1.0" })
	for _, svc := range f.engine.services {
		started := f.now
		svc.UpdateStatus = &swarm.UpdateStatus{State: swarm.UpdateStateCompleted, StartedAt: &started}
	}
	f.now = f.now.Add(time.Minute)
	f.writeSpec("a", "recipe: img\nversion: 1.1.0+1\ntimeout: 1m\n")
	st := f.passEvery("a", 10, 10*time.Second)
	if st.Phase != spec.PhaseReady {
		t.Fatalf("the desired template runs: %s %q (writes %v)", st.Phase, st.Message, f.engine.writes())
	}
}

// A Ready app changed by hand (an env var added); the reconciler's repair roll is rolled
// back by swarm (a new task failed inside the monitor: a port still held, a node short of
// memory), which puts the hand-made spec back. The app must be repaired again (or at least
// not be left with the hand-made spec for good).
func TestRepairRolledBackBySwarm(t *testing.T) {
	f := readyLongAgo(t)
	f.engine.byHand("a_test_app", func(s *swarm.ServiceSpec) {
		s.TaskTemplate.ContainerSpec.Env = append(s.TaskTemplate.ContainerSpec.Env, "DEBUG=1")
	})
	if st := f.pass("a"); st.Phase != spec.PhaseDegraded || !strings.Contains(st.Message, "repairing") {
		t.Fatalf("repair: %s %s", st.Phase, st.Message)
	}
	for _, svc := range f.engine.services { // swarm rolls the repair back
		ours := svc.Spec
		svc.Spec, svc.PreviousSpec = *svc.PreviousSpec, &ours
		svc.UpdateStatus.State, svc.UpdateStatus.Message = swarm.UpdateStateRollbackCompleted, "rollback completed"
		f.engine.runTasks(svc)
	}
	f.engine.resetCalls()
	st := f.passEvery("a", 10, 30*time.Second)
	var env []string
	for _, svc := range f.engine.services {
		env = svc.Spec.TaskTemplate.ContainerSpec.Env
	}
	if slices.Contains(env, "DEBUG=1") || st.Phase != spec.PhaseReady {
		t.Fatalf("5 min later: %s %q, env %v; want the hand-made spec set back again, and Ready (writes %v)", st.Phase, st.Message, env, f.engine.writes())
	}
}

// readyLongAgo is a fixture whose app a has been Ready for an hour, four times its timeout.
func readyLongAgo(t *testing.T) *fixture {
	f := newFixture(t)
	f.writeSpec("a", "recipe: echo\nversion: 1.0.0+1\ntimeout: 15s\n")
	if st := f.settle("a"); st.Phase != spec.PhaseReady {
		t.Fatalf("install: %s %s", st.Phase, st.Message)
	}
	f.now = f.now.Add(time.Hour)
	f.engine.now = f.now
	return f
}

// TestSetBackRolledBackEveryTime: a set-back that swarm rolls back every time (the desired spec
// cannot start on the node any more: a port held by something else, a node short of memory,
// or the hand edit was the hot fix that keeps the app up) is made again after a backoff that
// doubles, not once a roll: each roll restarts the tasks that run.
func TestSetBackRolledBackEveryTime(t *testing.T) {
	f := readyLongAgo(t)
	f.engine.byHand("a_test_app", func(s *swarm.ServiceSpec) {
		s.TaskTemplate.ContainerSpec.Env = append(s.TaskTemplate.ContainerSpec.Env, "DEBUG=1")
	})
	f.engine.resetCalls()
	rollbacks := 0
	var st *spec.Status
	for range 40 { // 20 minutes
		st = f.pass("a")
		for _, svc := range f.engine.services {
			if svc.PreviousSpec != nil && svc.UpdateStatus != nil && svc.UpdateStatus.State == swarm.UpdateStateCompleted &&
				!containsEnv(svc.Spec, "DEBUG=1") && containsEnv(*svc.PreviousSpec, "DEBUG=1") {
				// swarm's monitor sees the set-back's new task fail and rolls back
				ours := svc.Spec
				svc.Spec, svc.PreviousSpec = *svc.PreviousSpec, &ours
				started := f.now
				svc.UpdateStatus = &swarm.UpdateStatus{State: swarm.UpdateStateRollbackCompleted, StartedAt: &started, Message: "update rolled back due to failure"}
				f.engine.runTasks(svc)
				rollbacks++
			}
		}
		f.now = f.now.Add(30 * time.Second)
	}
	updates := 0
	for _, w := range f.engine.writes() {
		if strings.HasPrefix(w, "update service") {
			updates++
		}
	}
	// The first set-back, then again at once, then after 1, 2, 4 and 8 minutes: 6 in 20 minutes.
	if updates > 6 || st.Phase != spec.PhaseDegraded || !strings.Contains(st.Message, "the hand-made spec runs: set back again at") {
		t.Fatalf("%d set-backs and %d rollbacks in 20 minutes, %s %q: want at most 6, backing off", updates, rollbacks, st.Phase, st.Message)
	}
}

func containsEnv(s swarm.ServiceSpec, kv string) bool {
	for _, e := range s.TaskTemplate.ContainerSpec.Env {
		if e == kv {
			return true
		}
	}
	return false
}

const twoCompose = `version: "3.8"
services:
  app:
    image: echo:%s
    environment:
      MESSAGE: "hello %s"
  side:
    image: echo:1.0.0
    environment:
      MESSAGE: "side"
`

// swarmRollsBack does what swarm's monitor does to a service whose last roll failed: the
// previous spec comes back, rollback_completed.
func swarmRollsBack(f *fixture, svc *swarm.Service) {
	ours := svc.Spec
	svc.Spec, svc.PreviousSpec = *svc.PreviousSpec, &ours
	started := f.now
	svc.UpdateStatus = &swarm.UpdateStatus{State: swarm.UpdateStateRollbackCompleted, StartedAt: &started, Message: "update rolled back due to failure"}
	delete(f.engine.rolling, svc.ID)
	delete(f.engine.rollStarting, svc.ID)
	f.engine.runTasks(svc)
}

func serviceNamed(f *fixture, name string) *swarm.Service {
	for _, s := range f.engine.services {
		if s.Spec.Name == name {
			return s
		}
	}
	f.t.Fatalf("no service %s", name)
	return nil
}

// TestHeldSetBackDoesNotEndAnUpgradeAttempt: a set-back of "side" is held by its backoff when
// the spec is upgraded (only "app" changes). The held set-back must not make the upgrade
// attempt Degraded (converged) before the upgrade has been judged: when swarm rolls the
// upgrade of app back, the attempt is Failed ("did not roll out"), as without a held set-back.
func TestHeldSetBackDoesNotEndAnUpgradeAttempt(t *testing.T) {
	f := newFixture(t)
	makeRecipeOf(t, f.r.RecipesDir, "two", twoCompose, "1.0.0+1", "1.1.0+1")
	f.writeSpec("t", "recipe: two\nversion: 1.0.0+1\ntimeout: 15s\n")
	if st := f.settle("t"); st.Phase != spec.PhaseReady {
		t.Fatalf("install: %s %s", st.Phase, st.Message)
	}
	f.now = f.now.Add(time.Hour)
	f.engine.now = f.now
	f.engine.byHand("t_test_side", func(s *swarm.ServiceSpec) {
		s.TaskTemplate.ContainerSpec.Env = append(s.TaskTemplate.ContainerSpec.Env, "DEBUG=1")
	})
	// The set-back, rolled back by swarm; made again at once, rolled back again.
	for i := range 2 {
		st := f.pass("t")
		if st.Phase != spec.PhaseDegraded {
			t.Fatalf("set-back %d: %s %q", i, st.Phase, st.Message)
		}
		swarmRollsBack(f, serviceNamed(f, "t_test_side"))
		f.now = f.now.Add(time.Second)
	}
	if st := f.pass("t"); !strings.Contains(st.Message, "set back again at") || st.SetBacks != 1 {
		t.Fatalf("want the set-back held: %s %q setBacks %d", st.Phase, st.Message, st.SetBacks)
	}
	// Within the backoff, the spec is upgraded: app's image changes, side's spec does not.
	f.engine.rollLists = 3
	f.writeSpec("t", "recipe: two\nversion: 1.1.0+1\ntimeout: 15s\n")
	var phases []string
	st := f.pass("t")
	phases = append(phases, string(st.Phase)+": "+st.Message)
	st = f.pass("t") // app's roll is still updating
	phases = append(phases, string(st.Phase)+": "+st.Message)
	// swarm's monitor rolls the upgrade of app back.
	swarmRollsBack(f, serviceNamed(f, "t_test_app"))
	for range 3 {
		st = f.pass("t")
		phases = append(phases, string(st.Phase)+": "+st.Message)
	}
	if st.Phase != spec.PhaseFailed {
		t.Fatalf("upgrade rolled back by swarm: %s; want Failed\nphases:\n%s\nwrites %v", st.Phase, strings.Join(phases, "\n"), f.engine.writes())
	}
}

// passEvery reconciles app n times, step apart on the fixture's clock, and returns the last status.
func (f *fixture) passEvery(app string, n int, step time.Duration) *spec.Status {
	f.t.Helper()
	var st *spec.Status
	for range n {
		st = f.pass(app)
		f.now = f.now.Add(step)
	}
	return st
}
