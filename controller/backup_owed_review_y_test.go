package controller

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/swarm"
	"github.com/docker/docker/errdefs"

	"github.com/swarm-reconciler/reconciler/spec"
	"github.com/swarm-reconciler/reconciler/swarmstate"
)

// maintCompose is backupCompose with restore pre- and post-hooks ("maint on", "maint off").
var maintCompose = strings.Replace(backupCompose, `        backupbot.restore.post-hook: "load"`,
	"        backupbot.restore.pre-hook: \"maint on\"\n        backupbot.restore.post-hook: \"maint off\"", 1)

// unhealthyNow ends the app's running task as its failed health check does and makes the
// next, in state.
func unhealthyNow(t *testing.T, f *fixture, state swarm.TaskState) string {
	t.Helper()
	f.engine.mu.Lock()
	defer f.engine.mu.Unlock()
	for i, tk := range f.engine.tasks {
		if tk.DesiredState != swarm.TaskStateRunning || tk.Status.State != swarm.TaskStateRunning {
			continue
		}
		f.engine.tasks[i].DesiredState = swarm.TaskStateShutdown
		f.engine.tasks[i].Status = swarm.TaskStatus{State: swarm.TaskStateFailed, Err: "task: non-zero exit (137): dockerexec: unhealthy container", Timestamp: f.now,
			ContainerStatus: &swarm.ContainerStatus{ContainerID: tk.Status.ContainerStatus.ContainerID, ExitCode: 137}}
		next := tk
		next.ID = tk.ID + "-next"
		next.Status = swarm.TaskStatus{State: state, Timestamp: f.now}
		if state == swarm.TaskStateStarting {
			next.Status.ContainerStatus = &swarm.ContainerStatus{ContainerID: "c-" + next.ID}
		}
		f.engine.tasks = append(f.engine.tasks, next)
		return next.ID
	}
	t.Fatal("no running task to end")
	return ""
}

// TestTierRestoreKilledInMaintenance: the backup tier's restore (what CI runs) is the same
// restore, with the same pre-hook, in an attempt not yet Ready (its status says Deploying).
// Killed after "maint on", the app unhealthy: the post-hook must run, and the restore be said
// interrupted, though the attempt never converged (review Y1).
func TestTierRestoreKilledInMaintenance(t *testing.T) {
	f, fb := newBackupFixture(t, nil)
	makeRecipeOf(t, f.r.RecipesDir, "bkm", maintCompose, "1.0.0+1")
	f.writeSpec("a", "recipe: bkm\nversion: 1.0.0+1\ntier: backup\n")
	seed(f, fb)
	killedAt(f, "restore pre-hook app")
	if !slices.Contains(fb.ran, "a_test_app: maint on") {
		t.Fatalf("killed after %q, want after the pre-hook", fb.ran)
	}
	if st, _ := spec.ReadStatus(f.r.StatusDir, "a"); st == nil || st.LastRestore == nil || st.LastRestore.State != spec.RunRunning {
		t.Fatalf("status at the kill: %+v", st)
	} else {
		t.Logf("status at the kill: %s %q", st.Phase, st.Message)
	}
	unhealthyNow(t, f, swarm.TaskStateStarting)
	st := f.settleAs("a", spec.PhaseFailed, time.Minute, 15)
	t.Logf("after the restart: %s %q; last restore %s", st.Phase, st.Message, st.LastRestore.State)
	if !slices.Contains(fb.ran, "a_test_app: maint off") {
		t.Errorf("the owed post-hook never ran (ran %q): the app stays in maintenance", fb.ran)
	}
	if st.LastRestore.State == spec.RunRunning {
		t.Errorf("the restore still says Running in a %s app: %q", st.Phase, st.Message)
	}
}

// TestRestoreAgainWhileAPostHookIsOwed: the Failed message says "restore it again with
// `reconciler restore`". Done while the owed post-hook waits for a container (the retry),
// the app leaves Failed (restoreRetried: Degraded), kept in maintenance by the pre-hook whose
// post-hook has not run: the retry must go on, or the app never converges and neither the
// new restore nor the post-hook ever runs (review Y2).
func TestRestoreAgainWhileAPostHookIsOwed(t *testing.T) {
	f, fb, between := killedInMaintenance(t, swarm.TaskStateReady)
	st := f.settle("a")
	if st.Phase != spec.PhaseFailed || !strings.Contains(st.Message, "tried again every") {
		t.Fatalf("setup: %s %s", st.Phase, st.Message)
	}
	// The person does what the message says.
	f.writeSpec("a", "recipe: bkm\nversion: 1.0.0+1\nbackup: {requestedAt: r1, restore: {requestedAt: r3}}\n")
	st = f.settle("a")
	t.Logf("after `reconciler restore`: %s %q", st.Phase, st.Message)
	// A container of the service runs now, its health check failing (maintenance).
	f.engine.mu.Lock()
	for i, tk := range f.engine.tasks {
		if tk.ID == between {
			f.engine.tasks[i].Status = swarm.TaskStatus{State: swarm.TaskStateStarting, Timestamp: f.now, ContainerStatus: &swarm.ContainerStatus{ContainerID: "c-" + tk.ID}}
		}
	}
	f.engine.mu.Unlock()
	st = f.settleAs("a", spec.PhaseReady, time.Minute, 10)
	t.Logf("a container runs: %s %q", st.Phase, st.Message)
	if !slices.Contains(fb.ran, "a_test_app: maint off") {
		t.Errorf("the owed post-hook never ran after `reconciler restore` (ran %q): the app stays %s in maintenance", fb.ran, st.Phase)
	}
}

// TestOwedPostHookRetriedAfterARestart: the retry lives in the process's timer. A restarted
// reconciler's resync must enqueue a Failed app that still owes a post-hook (not settled), or
// nothing tries it again though the status says "tried again every 10s" (review Y3).
func TestOwedPostHookRetriedAfterARestart(t *testing.T) {
	f, _, _ := killedInMaintenance(t, swarm.TaskStateReady)
	st := f.settle("a")
	if st.Phase != spec.PhaseFailed || len(stillOwedPostHooks(st)) == 0 {
		t.Fatalf("setup: %s %s", st.Phase, st.Message)
	}
	d, err := f.r.loadSpec("a")
	if err != nil {
		t.Fatal(err)
	}
	if settled(d, nil, st, f.now, 0) {
		t.Errorf("an app whose post-hook is still owed (%q) is settled: a restarted reconciler never tries it again", st.Message)
	}
}

// TestRunningPreferredOverStarting: with starting, a running (healthy) task and a younger
// starting one of the same service on this node: the owed post-hook goes to the running one,
// not the one its health check may end any moment (an exec refused there is recorded as run:
// never tried again) (review Y4).
func TestRunningPreferredOverStarting(t *testing.T) {
	now := time.Now()
	task := func(id, cid string, state swarm.TaskState, at time.Time) swarm.Task {
		return swarm.Task{ID: id, ServiceID: "s1", NodeID: "n1", DesiredState: swarm.TaskStateRunning,
			Status: swarm.TaskStatus{State: state, Timestamp: at, ContainerStatus: &swarm.ContainerStatus{ContainerID: cid}}}
	}
	svc := swarm.Service{ID: "s1"}
	svc.Spec.Name = "a_test_app"
	snap := &swarmstate.Snapshot{Services: []swarm.Service{svc},
		Tasks: []swarm.Task{task("t1", "c-run", swarm.TaskStateRunning, now.Add(-time.Hour)), task("t2", "c-start", swarm.TaskStateStarting, now)}}
	got, _ := localContainers(snap, "a_test", "n1", true)
	if got["app"] != "c-run" {
		t.Errorf("owed post-hook goes to container %q, want the running c-run over the starting c-start", got["app"])
	}
}

// TestEarlierPostHookFailureKept: the owed post-hooks of app and db ran in the first try:
// app's exited 1 (still in maintenance), db found no container. The retry runs db's alone;
// the messages must still say app's post-hook failed (review Y5).
func TestEarlierPostHookFailureKept(t *testing.T) {
	first := "interrupted: the reconciler stopped during the restore of backup X; the volumes may hold part of it: restore it again with `reconciler restore a X`"
	note := postHooksNote + "app, db, owed since, failed: restore post-hook in service app (maint off) exited 1; no running task of db; db tried again every 10s"
	run := &spec.BackupRun{ID: "X", Trigger: triggerRequest, State: spec.RunFailed, Interrupted: true, Message: first + note,
		Hooks: []spec.HookRun{
			{Service: "app", Hook: hookRestorePre}, {Service: "db", Hook: hookRestorePre},
			{Service: "app", Hook: hookRestorePost, ExitCode: 1},
			{Service: "db", Hook: hookRestorePost}, // the retry's
		}}
	st := &spec.Status{App: "a", Phase: spec.PhaseFailed, Message: "restore " + first + note, LastRestore: run}
	d := decision{Status: st, Phase: st.Phase, Message: st.Message}
	d = owedPostHooksRun(d, &backupJob{Restore: true, PostHooks: []string{"db"}}, nil)
	if !strings.Contains(d.Message, "exited 1") {
		t.Errorf("message %q no longer says app's post-hook failed", d.Message)
	}
}

// TestOwedPostHookWhenTheSpecChangedWhileDown: the restore killed in maintenance, and the
// spec changed while no reconciler ran (a new attempt: here only its timeout). The attempt
// never converges (maintenance) unless the owed post-hook runs (review Y1).
func TestOwedPostHookWhenTheSpecChangedWhileDown(t *testing.T) {
	f, fb, _ := killedInMaintenance(t, swarm.TaskStateStarting)
	f.writeSpec("a", "recipe: bkm\nversion: 1.0.0+1\ntimeout: 11m\nbackup: {requestedAt: r1, restore: {requestedAt: r2}}\n")
	st := f.settleAs("a", spec.PhaseFailed, time.Minute, 15)
	t.Logf("after the restart: %s %q; last restore %s", st.Phase, st.Message, st.LastRestore.State)
	if !slices.Contains(fb.ran, "a_test_app: maint off") {
		t.Errorf("the owed post-hook never ran (ran %q)", fb.ran)
	}
}

// TestOwedPostHookRetryWritesNoStatus: a retry that finds no container again writes nothing.
func TestOwedPostHookRetryWritesNoStatus(t *testing.T) {
	f, fb, _ := killedInMaintenance(t, swarm.TaskStateReady)
	st := f.settle("a")
	before := st.UpdatedAt
	n := len(fb.ran)
	for i := 0; i < 5; i++ {
		f.now = f.now.Add(10 * time.Second)
		res, err := f.r.Reconcile(t.Context(), "a")
		if err != nil || res.RequeueAfter != owedRetry {
			t.Fatalf("retry %d: %v, after %s", i, err, res.RequeueAfter)
		}
	}
	st, _ = spec.ReadStatus(f.r.StatusDir, "a")
	if !st.UpdatedAt.Equal(before) || len(fb.ran) != n {
		t.Errorf("status rewritten by the retries (%s -> %s) or hooks ran %q", before, st.UpdatedAt, fb.ran[n:])
	}
}

// TestOwedPostHookMessagesStayBounded: retries that find no container, again and again, say
// the first run's outcome and the last one's, never a note a try.
func TestOwedPostHookMessagesStayBounded(t *testing.T) {
	first := "interrupted: the reconciler stopped during the restore of backup X; the volumes may hold part of it: restore it again with `reconciler restore a X`"
	run := &spec.BackupRun{ID: "X", Trigger: triggerRequest, State: spec.RunFailed, Interrupted: true, Message: first,
		Hooks: []spec.HookRun{{Service: "app", Hook: hookRestorePre}, {Service: "db", Hook: hookRestorePre}}}
	st := &spec.Status{App: "a", Phase: spec.PhaseFailed, Message: "restore " + first, LastRestore: run}
	d := decision{Status: st, Phase: st.Phase, Message: st.Message}
	run.Hooks = append(run.Hooks, spec.HookRun{Service: "app", Hook: hookRestorePost, ExitCode: 1})
	d = owedPostHooksRun(d, &backupJob{Restore: true, PostHooks: []string{"app", "db"}}, errors.New("app exited 1; no running task of db"))
	if !slices.Equal(run.PostHooksOwed, []string{"db"}) || d.After != owedRetry {
		t.Fatalf("after the first run: owed %q, after %s", run.PostHooksOwed, d.After)
	}
	var msgs []string
	for range 3 {
		d = owedPostHooksRun(d, &backupJob{Restore: true, PostHooks: []string{"db"}}, errors.New("no running task of db"))
		msgs = append(msgs, d.Message)
	}
	if msgs[1] != msgs[0] || msgs[2] != msgs[0] || strings.Count(msgs[0], postHooksNote) != 2 || !strings.Contains(msgs[0], "app exited 1") {
		t.Fatalf("retries that change nothing changed the message:\n%s", strings.Join(msgs, "\n"))
	}
	run.Hooks = append(run.Hooks, spec.HookRun{Service: "db", Hook: hookRestorePost})
	d = owedPostHooksRun(d, &backupJob{Restore: true, PostHooks: []string{"db"}}, nil)
	if len(run.PostHooksOwed) != 0 || !strings.Contains(d.Message, "app exited 1") || !strings.HasSuffix(d.Message, "db, owed since, ran") ||
		run.Message != strings.TrimPrefix(d.Message, "restore ") {
		t.Fatalf("after db's ran: owed %q\n%s\n%s", run.PostHooksOwed, d.Message, run.Message)
	}
}

// TestOwedPostHookRefusedByAStoppingContainerIsTriedAgain: the owed post-hook's exec is
// refused because the starting container it was sent to has just been stopped by its health
// check (the engine's conflict: not running). The post-hook did not run: it stays owed and is
// tried again, not recorded as run (review Y4).
func TestOwedPostHookRefusedByAStoppingContainerIsTriedAgain(t *testing.T) {
	f, fb, starting := killedInMaintenance(t, swarm.TaskStateStarting)
	refused := 0
	fb.execErr = func(cid string) error {
		if cid == "c-"+starting && refused == 0 {
			refused++
			return errdefs.Conflict(fmt.Errorf("container %s is not running", cid))
		}
		return nil
	}
	st := f.settle("a")
	if refused != 1 {
		t.Fatalf("the exec was refused %d times, want once", refused)
	}
	if st.Phase != spec.PhaseFailed || !strings.Contains(st.Message, "the restore post-hooks of app, owed since, ran") || len(stillOwedPostHooks(st)) != 0 {
		t.Fatalf("after a refused exec: %s %s (owed %q)", st.Phase, st.Message, stillOwedPostHooks(st))
	}
	if fb.ran[len(fb.ran)-1] != "a_test_app: maint off" {
		t.Fatalf("ran %q: the owed post-hook did not run", fb.ran)
	}
	var refusedRun bool
	for _, h := range st.LastRestore.Hooks {
		refusedRun = refusedRun || h.Hook == hookRestorePost && h.NotRun
	}
	if !refusedRun {
		t.Errorf("hooks %+v: the refused exec is not recorded as not run", st.LastRestore.Hooks)
	}
}
