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

// The long-lived app of issue 10: an app Ready for longer than its spec's timeout is changed
// by hand and by an engine restart. Repairing drift is not a new generation: the app is
// Degraded while it lasts and Ready after, and never Failed (DESIGN.md, "Attempts and
// deadlines").

// longTimeout is the spec's timeout: the app outlives it before every step.
const longTimeout = 15 * time.Second

// longApp is the long-lived app of one test: its spec generation, which a step that left the
// app in a final phase (a failed step) replaces so that the next step is still tried.
type longApp struct {
	h      *harness
	a      *testApp
	recipe string
	gen    string
	w      *statusWatcher
}

// spec is the app's spec, with "timeout: 15s" and extra lines.
func (l *longApp) spec(extra ...string) []byte {
	return l.a.specOf(l.recipe, miniRelease, append([]string{"timeout: " + longTimeout.String()}, extra...)...)
}

// waitReady waits until the app is Ready for its generation, failing t (not the harness's
// test: this runs in subtests) when it is not.
func (l *longApp) waitReady(t *testing.T) appStatus {
	t.Helper()
	s, err := l.h.awaitStatus(l.a.name, "Ready", func(s appStatus) (bool, string) {
		if s.ObservedGeneration != l.gen {
			return false, ""
		}
		if slices.Contains(finalPhases, s.Phase) {
			return false, "reached final phase " + s.Phase
		}
		return s.Phase == "Ready", ""
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// longRecipe is the long-lived app's recipe: the suite's recipe without the published port.
// Swarm frees a removed service's host-mode port only seconds later (6 to 12 s measured on
// the test machines), and a recreated service waits for it: with the port, step a would time
// swarm's port release, not the reconciler's repair.
const longRecipe = "e2e-longlived"

// longRecipeAny is longRecipe with restart_policy condition any instead of on-failure: swarm
// restarts its task after an engine restart whatever the exit code.
const longRecipeAny = "e2e-longlived-any"

// longPorts is the published port of the suite's compose file, which longRecipe drops.
const longPorts = "    ports:\n      - target: 8080\n        published: ${PORT}\n        mode: host\n"

// outliveTimeout makes sure the app is Ready for its generation and then waits until it has
// been Ready for longer than its timeout, and its attempt started longer ago than that: from
// then on, a deadline of the attempt that installed it is in the past. When an earlier step
// left the app in a final phase, it writes a new generation first (and says so).
func (l *longApp) outliveTimeout(t *testing.T, step string) {
	t.Helper()
	s, _, err := l.h.readStatus(l.a.name)
	if err != nil {
		t.Fatal(err)
	}
	if s.ObservedGeneration != l.gen || s.Phase != "Ready" {
		if !slices.Contains(finalPhases, s.Phase) {
			s, err = l.h.awaitStatus(l.a.name, "Ready or a final phase", func(s appStatus) (bool, string) {
				return s.ObservedGeneration == l.gen && (s.Phase == "Ready" || slices.Contains(finalPhases, s.Phase)), ""
			})
			if err != nil {
				t.Fatal(err)
			}
		}
		if s.Phase != "Ready" {
			t.Logf("before %s: the app is %s after an earlier step (%s): writing a new generation so that this step is still tried", step, s.Phase, s.Message)
			l.gen = l.h.writeSpec(l.a.name, l.spec("# a new generation before step "+step))
			s = l.waitReady(t)
		}
	}
	full := rolloutFull(t, s)
	readySince, ok := full.historyTime("Ready")
	if !ok {
		t.Fatalf("the app is Ready but its history has no Ready entry; status:\n%s", s)
	}
	until := readySince.Add(longTimeout)
	if full.AttemptStartedAt == nil {
		t.Logf("the status has no attemptStartedAt; waiting from the last Ready in its history")
	} else if at := full.AttemptStartedAt.Add(longTimeout); at.After(until) {
		until = at
	}
	until = until.Add(time.Second)
	t.Logf("before %s: Ready since %s (attempt started %v); waiting %s, until %s", step,
		readySince.Format(time.RFC3339Nano), full.AttemptStartedAt, time.Until(until).Round(time.Millisecond), until.Format(time.RFC3339Nano))
	time.Sleep(time.Until(until))
	if s, _, err := l.h.readStatus(l.a.name); err != nil || s.Phase != "Ready" || s.ObservedGeneration != l.gen {
		t.Fatalf("before %s: the app did not stay Ready while it outlived its timeout (err %v); status:\n%s", step, err, s)
	}
}

// service returns the app's one service as ServiceInspect gives it.
func (l *longApp) service(t *testing.T) swarm.Service {
	t.Helper()
	return rolloutService(t, l.a)
}

// awaitRepair waits, for at most within of the change made at changed, until the app is Ready
// again after the watcher saw it not Ready (both for its generation, after changed), and the
// status history shows a Degraded entry and then a Ready one after changed. Failed at any
// time fails the test at once. It returns how long the repair took (change to Ready as the
// watcher first saw it).
func (l *longApp) awaitRepair(t *testing.T, changed time.Time, within time.Duration) time.Duration {
	t.Helper()
	deadline := changed.Add(within)
	var s appStatus
	for {
		var err error
		var found bool
		s, found, err = l.h.readStatus(l.a.name)
		if err != nil {
			t.Fatal(err)
		}
		if found && s.Phase == "Failed" {
			t.Fatalf("the app is Failed %s after the change: %s\nstatus:\n%s\nwatcher: %s", time.Since(changed).Round(time.Millisecond), s.Message, s, l.w.trace())
		}
		if readyAt, ok := l.repairedAt(changed); ok && found && s.ObservedGeneration == l.gen && s.Phase == "Ready" && l.historyRepair(t, s, changed) {
			return readyAt.Sub(changed)
		}
		if !l.h.running() {
			t.Fatalf("the reconciler exited: %v", l.h.exit)
		}
		if time.Now().After(deadline) {
			t.Fatalf("not Degraded and then Ready within %s of the change; status:\n%s\nwatcher: %s", within, s, l.w.trace())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// repairedAt is when the watcher first saw the app's generation Ready after having seen it
// in another phase (Degraded, which the history must show), both at or after changed.
func (l *longApp) repairedAt(changed time.Time) (time.Time, bool) {
	_, seen, _ := l.w.states()
	left := false
	for _, s := range seen {
		if s.At.Before(changed) || s.Gen != l.gen {
			continue
		}
		if s.Phase != "Ready" {
			left = true
		} else if left {
			return s.At, true
		}
	}
	return time.Time{}, false
}

// historyRepair reports whether s's history has a Degraded entry at or after changed (a
// second of slack for the history's clock) followed by a Ready entry.
func (l *longApp) historyRepair(t *testing.T, s appStatus, changed time.Time) bool {
	degraded := false
	for _, e := range rolloutFull(t, s).History {
		if e.Time.Before(changed.Add(-time.Second)) {
			continue
		}
		switch {
		case e.Phase == "Degraded":
			degraded = true
		case e.Phase == "Ready" && degraded:
			return true
		}
	}
	return false
}

// assertNeverFailed fails the test if the watcher saw the app Failed or Invalid, in any
// generation, since since.
func (l *longApp) assertNeverFailed(t *testing.T, since time.Time) {
	t.Helper()
	_, seen, corrupt := l.w.states()
	for _, s := range seen {
		if !s.At.Before(since) && (s.Phase == "Failed" || s.Phase == "Invalid") {
			t.Errorf("the status said %s at %s: %s\nwatcher: %s", s.Phase, s.At.Format(time.RFC3339Nano), s.Message, l.w.trace())
			break
		}
	}
	if len(corrupt) > 0 {
		t.Errorf("the status file was read half-written: %v", corrupt)
	}
}

// TestLongLivedDriftRepair: an app with `timeout: 15s`, Ready for longer than that, then, in
// turn and each time after it has outlived its timeout again:
//
//	a. its service removed by hand,
//	b. its service scaled to 0 by hand,
//	c. its service's image changed by hand (a second tag of the echo image),
//	c2. its service restarted by hand (`docker service update --force`: swarm rolls the tasks,
//	    the reconciler's set-back keeps the raised counter and starts no roll to wait for),
//
// each time back to Ready within 15 s, its service as the spec says, never Failed, with
// Degraded and then Ready in the status (the watcher's reads and the history); and
//
//	d. dockerd stopped for 20 s and started again, with a second long-lived app beside it,
//	   Ready since the start, whose restart_policy is condition any: that app ends Ready with
//	   its task running; so does the first (on-failure, as the suite's and many abra recipes
//	   are), unless swarm left its task complete (its container exited 0 on dockerd's SIGTERM:
//	   swarm does not restart it, in some runs), when it may end Degraded but not Ready. Neither
//	   is ever Failed, and the reconciler keeps running;
//	e. dockerd stopped again and the second app's spec deleted meanwhile: Deleting at once,
//	   never the phase it had, and Deleted with nothing left once dockerd is back.
//
// SERIAL: steps d and e stop the engine under everything on this host. This test never calls
// t.Parallel (nor do its subtests), so no other test of the suite runs beside it; it restores
// dockerd in a cleanup even when it fails, and returns only once the swarm is healthy.
func TestLongLivedDriftRepair(t *testing.T) {
	ctx := context.Background()
	h := startHarness(t)
	otherTag := testImage(t, "drift")
	makeVariantRecipe(t, h, longRecipe, []edit{{longPorts, ""}}, nil)
	makeVariantRecipe(t, h, longRecipeAny, []edit{{longPorts, ""}, {"condition: on-failure", "condition: any"}}, nil)
	l := &longApp{h: h, a: h.newApp("e2e-longlived"), recipe: longRecipe}
	anyApp := &longApp{h: h, a: h.newApp("e2e-longlived-any"), recipe: longRecipeAny}
	for _, app := range []*longApp{l, anyApp} {
		app.gen = h.writeSpec(app.a.name, app.spec())
		app.waitReady(t)
		app.w = watchStatus(t, h.statusPath(app.a.name), 2*time.Millisecond)
	}
	want := l.service(t)
	wantImage := want.Spec.TaskTemplate.ContainerSpec.Image

	// checkServed: the app's service is as the spec says again, with a running task.
	checkServed := func(t *testing.T) {
		t.Helper()
		svc := l.service(t)
		if img := svc.Spec.TaskTemplate.ContainerSpec.Image; img != wantImage {
			t.Errorf("service %s runs image %q, want %q", svc.Spec.Name, img, wantImage)
		}
		if m := svc.Spec.Mode.Replicated; m == nil || m.Replicas == nil || *m.Replicas != 1 {
			t.Errorf("service %s: mode %+v, want 1 replica", svc.Spec.Name, svc.Spec.Mode)
		}
		if ok, why, err := runningTask(ctx, suite.docker, svc.Spec.Name); err != nil || !ok {
			t.Errorf("service %s has no running task: %s (err %v)", svc.Spec.Name, why, err)
		}
	}

	byHand := []struct {
		name   string
		change func(t *testing.T, svc swarm.Service)
	}{
		{"a-service-removed", func(t *testing.T, svc swarm.Service) {
			if err := suite.docker.ServiceRemove(ctx, svc.ID); err != nil {
				t.Fatal(err)
			}
		}},
		{"b-scaled-to-0", func(t *testing.T, svc swarm.Service) {
			zero := uint64(0)
			svc.Spec.Mode.Replicated.Replicas = &zero
			if _, err := suite.docker.ServiceUpdate(ctx, svc.ID, svc.Version, svc.Spec, swarm.ServiceUpdateOptions{}); err != nil {
				t.Fatal(err)
			}
		}},
		{"c-image-changed", func(t *testing.T, svc swarm.Service) {
			svc.Spec.TaskTemplate.ContainerSpec.Image = otherTag
			if _, err := suite.docker.ServiceUpdate(ctx, svc.ID, svc.Version, svc.Spec, swarm.ServiceUpdateOptions{}); err != nil {
				t.Fatal(err)
			}
		}},
		{"c2-forced-restart", func(t *testing.T, svc swarm.Service) {
			svc.Spec.TaskTemplate.ForceUpdate++
			if _, err := suite.docker.ServiceUpdate(ctx, svc.ID, svc.Version, svc.Spec, swarm.ServiceUpdateOptions{}); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, step := range byHand {
		t.Run(step.name, func(t *testing.T) {
			l.outliveTimeout(t, step.name)
			svc := l.service(t)
			changed := time.Now()
			step.change(t, svc)
			took := l.awaitRepair(t, changed, longTimeout)
			s, _, _ := h.readStatus(l.a.name)
			t.Logf("%s: Degraded, then Ready %s after the change: %s", step.name, took.Round(time.Millisecond), s.Message)
			checkServed(t)
			l.assertNeverFailed(t, changed)
		})
	}

	t.Run("d-dockerd-restarted", func(t *testing.T) {
		for _, app := range []*longApp{l, anyApp} {
			app.outliveTimeout(t, "d-dockerd-restarted")
		}
		stopping := time.Now()
		d := stopDockerd(t)
		stopped := time.Now()
		t.Logf("dockerd stopped; starting it again in 20 s")
		for time.Since(stopped) < 20*time.Second {
			if !h.running() {
				t.Errorf("the reconciler exited while dockerd was down: %v", h.exit)
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		if err := startDockerd(d); err != nil {
			t.Fatalf("start dockerd again: %v", err)
		}
		back := time.Now()
		t.Logf("dockerd answers and the swarm is healthy %s after the stop", back.Sub(stopped).Round(time.Millisecond))

		// The condition-any app must end Ready with its task running. The on-failure app too,
		// unless swarm left its task complete (see endsReadyRunning), when an honest Degraded is
		// the other acceptable end.
		for _, c := range []struct {
			app           *longApp
			within        time.Duration
			allowComplete bool
		}{{anyApp, 3 * time.Minute, false}, {l, time.Minute, true}} {
			if !c.app.endsReadyRunning(t, back, back.Add(c.within), c.allowComplete) {
				c.app.assertNeverFailed(t, stopping)
				continue
			}
			// And it stays so over a few resyncs (a late verdict on the outage would come now).
			time.Sleep(3 * resync)
			if s, _, err := h.readStatus(c.app.a.name); err != nil || s.Phase != "Ready" || s.ObservedGeneration != c.app.gen {
				t.Errorf("app %s did not stay Ready after the engine restart (err %v); status:\n%s", c.app.a.name, err, s)
			}
			c.app.assertNeverFailed(t, stopping)
			if c.app == l {
				checkServed(t)
			}
		}
		if !h.running() {
			t.Errorf("the reconciler exited: %v", h.exit)
		}
	})

	// The spec of a long-lived app deleted while dockerd is down: Deleting at once (the pass
	// cannot see the swarm, but knows the app is to go), never the phase it had; Deleted with
	// nothing left once the engine is back.
	t.Run("e-deleted-while-dockerd-down", func(t *testing.T) {
		app := anyApp.a.name
		d := stopDockerd(t)
		deleted := time.Now()
		h.deleteSpec(app)
		gone := time.Now()
		var s appStatus
		for {
			var err error
			if s, _, err = h.readStatus(app); err == nil && s.Phase == "Deleting" {
				break
			}
			if time.Since(deleted) > 20*time.Second {
				t.Errorf("status %s %q 20 s after the spec was deleted with dockerd down, want Deleting (err %v)", s.Phase, s.Message, err)
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Logf("with dockerd down: %s %q, %s after the spec was deleted", s.Phase, s.Message, time.Since(deleted).Round(time.Millisecond))
		if err := startDockerd(d); err != nil {
			t.Fatalf("start dockerd again: %v", err)
		}
		back := time.Now()
		if s, err := h.waitDeleted(app); err != nil {
			t.Fatalf("after dockerd came back: %v (status %s %q)", err, s.Phase, s.Message)
		}
		t.Logf("Deleted %s after dockerd answered again", time.Since(back).Round(time.Millisecond))
		if left, err := h.leftOf(ctx, app); err != nil || len(left) > 0 {
			t.Errorf("left after Deleted: %v (err %v)", left, err)
		}
		// Every write, not only phase changes: the phase it had written again ("Ready,
		// retrying") is what this is about. A pass that read the spec just before it went may
		// still write once, within a moment.
		for _, st := range anyApp.w.writesSince(gone.Add(500 * time.Millisecond)) {
			if st.Phase != "Deleting" && st.Phase != "Deleted" {
				t.Errorf("status %s (%q) written after the spec was deleted; phases: %s", st.Phase, st.Message, anyApp.w.trace())
				break
			}
		}
	})
}

// endsReadyRunning waits until the app is Ready for its generation with a running task, until
// deadline, after the engine came back at back, and reports whether it is. It fails the test
// when the app is Failed at any moment, when the reconciler exits, or at the deadline; except,
// with allowComplete, when swarm holds the app's task as complete and starts no other: a task
// that exited 0 when dockerd stopped its container (the echo server exits 0 on SIGTERM) is not
// restarted under restart_policy on-failure (moby/moby#32416; it happens in some runs, not
// all). Then the app is down and an honest Degraded is acceptable, Ready is not (it says so).
func (l *longApp) endsReadyRunning(t *testing.T, back, deadline time.Time, allowComplete bool) bool {
	t.Helper()
	ctx := context.Background()
	service := l.a.stack() + "_app"
	var why string
	var s appStatus
	for ; ; time.Sleep(50 * time.Millisecond) {
		var err error
		s, _, err = l.h.readStatus(l.a.name)
		if err != nil {
			t.Error(err)
			return false
		}
		if s.Phase == "Failed" {
			t.Errorf("app %s is Failed %s after dockerd came back: %s\nstatus:\n%s\nwatcher: %s", l.a.name, time.Since(back).Round(time.Millisecond), s.Message, s, l.w.trace())
			return false
		}
		if !l.h.running() {
			t.Errorf("the reconciler exited: %v", l.h.exit)
			return false
		}
		why = "phase " + s.Phase
		// A Ready that says it is retrying was written while the engine was down: no pass has
		// seen the swarm since it came back.
		if s.ObservedGeneration == l.gen && s.Phase == "Ready" && !strings.HasPrefix(s.Message, "retrying") {
			ok, task, err := runningTask(ctx, suite.docker, service)
			if ok {
				t.Logf("app %s: Ready, its task running, %s after dockerd came back: %s\nwatcher: %s", l.a.name, time.Since(back).Round(time.Millisecond), s.Message, l.w.trace())
				return true
			}
			why = fmt.Sprintf("Ready, but no running task (%s; err %v)", task, err)
		}
		if time.Now().After(deadline) {
			break
		}
	}
	if allowComplete {
		tasks, err := suite.docker.TaskList(ctx, swarm.TaskListOptions{Filters: filters.NewArgs(filters.Arg("service", service))})
		if err != nil {
			t.Error(err)
			return false
		}
		var states []string
		complete, live := false, false
		for _, task := range tasks {
			states = append(states, fmt.Sprintf("%s (desired %s)", task.Status.State, task.DesiredState))
			complete = complete || task.Status.State == swarm.TaskStateComplete
			live = live || task.DesiredState == swarm.TaskStateRunning
		}
		if complete && !live {
			switch {
			case s.Phase == "Ready":
				t.Errorf("app %s is Ready with nothing running: swarm left its task complete after the engine restart (tasks %v); status:\n%s", l.a.name, states, s)
			case s.Phase != "Degraded" || s.ObservedGeneration != l.gen || strings.HasPrefix(s.Message, "retrying"):
				// Degraded, from a pass that saw the swarm since it came back, is the honest end:
				// anything else is a reconciler that did not look again, or says what is not.
				t.Errorf("app %s: swarm left its task complete after the engine restart (tasks %v), and the status is not Degraded from a pass since: %s %s: %s\nwatcher: %s",
					l.a.name, states, s.Phase, s.ObservedGeneration, s.Message, l.w.trace())
			default:
				t.Logf("app %s: swarm left its task complete after the engine restart and starts no other (restart_policy on-failure; tasks %v): the app is down and the status says %s: %s\nwatcher: %s",
					l.a.name, states, s.Phase, s.Message, l.w.trace())
			}
			return false
		}
	}
	t.Errorf("app %s did not end Ready with a running task within %s of the engine restart: %s\nstatus:\n%s\nwatcher: %s",
		l.a.name, deadline.Sub(back).Round(time.Second), why, s, l.w.trace())
	return false
}
