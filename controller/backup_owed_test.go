package controller

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/docker/docker/api/types"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/swarm"
	"github.com/docker/docker/api/types/system"
	"github.com/docker/docker/errdefs"
	"github.com/docker/docker/pkg/stdcopy"

	"github.com/swarm-reconciler/reconciler/manifests"
	"github.com/swarm-reconciler/reconciler/spec"
)

// reconcileOrPanic is one settle of app a that reports a panic of the pass as an error of the
// test instead of ending the test binary.
func reconcileOrPanic(f *fixture) (st *spec.Status, err error) {
	f.t.Helper()
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic: %v", p)
		}
	}()
	return f.settle("a"), nil
}

// TestOwedRestorePostHookAfterTheRequestLeftTheSpec: a restore killed after its pre-hook owes
// the post-hook, also when the spec was meanwhile replaced by one without a backup section
// (CI applies its own file again while the reconciler is down). The restarted reconciler must
// run the post-hook and say the restore was interrupted, not panic on a backup plan it did not
// read (a pass that panics is retried for ever: the app's status never moves again).
func TestOwedRestorePostHookAfterTheRequestLeftTheSpec(t *testing.T) {
	f, fb := restoreRequestedWithHooks(t)
	killedAt(f, "restore pre-hook app")
	if !slices.Contains(fb.ran, "a_test_app: maint on") {
		t.Fatalf("killed after %q, want after the pre-hook", fb.ran)
	}
	// While no reconciler runs, the spec is applied again without the request.
	f.writeSpec("a", "recipe: bkm\nversion: 1.0.0+1\n")
	st, err := reconcileOrPanic(f)
	if err != nil {
		t.Fatalf("the pass after the restart: %v", err)
	}
	if st.Phase != spec.PhaseFailed || !strings.Contains(st.Message, "interrupted") || !strings.Contains(st.Message, "owed since, ran") {
		t.Fatalf("after the restart: %s %s", st.Phase, st.Message)
	}
	if fb.ran[len(fb.ran)-1] != "a_test_app: maint off" {
		t.Fatalf("ran %q: the owed post-hook did not run", fb.ran)
	}
}

// TestCommittedBackupFoundAfterTheRequestLeftTheSpec: a backup committed just before the
// process died is listed, whole. When the spec lost its backup section meanwhile, the
// restarted reconciler must still find it committed, not report "nothing of it was kept"
// next to a backup that `reconciler backups` lists.
func TestCommittedBackupFoundAfterTheRequestLeftTheSpec(t *testing.T) {
	f, fb := newBackupFixture(t, nil)
	f.writeSpec("a", "recipe: bk\nversion: 1.0.0+1\n")
	seed(f, fb)
	f.settle("a")
	f.writeSpec("a", "recipe: bk\nversion: 1.0.0+1\nbackup: {requestedAt: r1}\n")
	killedAt(f, "commit")
	if list, _ := f.r.Backups.List("a"); len(list) != 1 {
		t.Fatalf("killed after the commit: %d listed, want 1", len(list))
	}
	f.writeSpec("a", "recipe: bk\nversion: 1.0.0+1\n")
	st := f.settle("a")
	list, _ := f.r.Backups.List("a")
	if len(list) != 1 || st.LastBackup == nil || st.LastBackup.State != spec.RunCompleted || st.LastBackup.ID != list[0].ID {
		t.Fatalf("after the restart: last backup %+v, %d listed: a whole, listed backup reported as not kept", st.LastBackup, len(list))
	}
}

// TestRestoreCompletedAsTheProcessStops: a requested restore whose last step (the restore
// post-hook, which runs on when the process is asked to stop) completed, and was verified
// before it, is a completed restore: the next process must not find it Running and call it
// interrupted, making the app Failed and asking for the restore again.
func TestRestoreCompletedAsTheProcessStops(t *testing.T) {
	f, fb, id := backedUp(t)
	fb.mu.Lock()
	fb.files["a_test_app"]["/files/a/b.txt"] = "changed"
	fb.mu.Unlock()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	shell := fb.shell
	fb.shell = func(service, cmd string, files map[string]string) (int, string) {
		if cmd == "load" { // the restore post-hook: SIGTERM arrives while it runs
			cancel()
		}
		return shell(service, cmd, files)
	}
	f.writeSpec("a", "recipe: bk\nversion: 1.0.0+1\nbackup: {requestedAt: r1, restore: {requestedAt: r2, id: \""+id+"\"}}\n")
	if _, err := f.r.Reconcile(ctx, "a"); err == nil {
		t.Fatal("the pass was not cut short")
	}
	if !contains(fb.ran, "a_test_app: load") || fb.files["a_test_app"]["/files/a/b.txt"] != "file b" {
		t.Fatalf("the restore did not run to its end: ran %q", fb.ran)
	}
	fb.shell = shell
	st := f.settle("a") // the next process
	if st.Phase != spec.PhaseReady || st.LastRestore == nil || st.LastRestore.State != spec.RunCompleted || st.LastHandledRestoreAt != "r2" {
		t.Fatalf("a restore that completed: %s %q, last restore %+v", st.Phase, st.Message, st.LastRestore)
	}
}

// TestPostHookFailureAfterAFailedStepIsReported: the post-hook runs after a failed pre-hook
// (or volume), and when it fails too the service may be left as the pre-hook put it (in
// maintenance, its writes stopped): the run's message, and the app's for the backup tier,
// must name that failure as well, not only the first.
func TestPostHookFailureAfterAFailedStepIsReported(t *testing.T) {
	f, fb := newBackupFixture(t, map[string]int{"dump": 2, "rm /data/dump.sql": 3})
	f.writeSpec("a", backupTierSpec)
	seed(f, fb)
	st := f.settle("a")
	if !contains(fb.ran, "a_test_app: rm /data/dump.sql") {
		t.Fatalf("the post-hook did not run: %q", fb.ran)
	}
	for _, want := range []string{"backup pre-hook in service app (dump) exited 2", "backup post-hook in service app (rm /data/dump.sql) exited 3"} {
		if st.Phase != spec.PhaseFailed || !strings.Contains(st.Message, want) || !strings.Contains(st.LastBackup.Message, want) {
			t.Errorf("%s: message %q, last backup %q: want %q", st.Phase, st.Message, st.LastBackup.Message, want)
		}
	}
}

// slowExec is a BackupEngine whose every exec takes took before it prints "ok" and exits 0;
// closing its attach connection ends the wait, as a closed hijacked connection does.
type slowExec struct{ took time.Duration }

func (e slowExec) Info(context.Context) (system.Info, error) { return system.Info{}, nil }
func (e slowExec) ContainerExecCreate(context.Context, string, container.ExecOptions) (container.ExecCreateResponse, error) {
	return container.ExecCreateResponse{ID: "exec1"}, nil
}

func (e slowExec) ContainerExecAttach(context.Context, string, container.ExecAttachOptions) (types.HijackedResponse, error) {
	var out bytes.Buffer
	_, _ = stdcopy.NewStdWriter(&out, stdcopy.Stdout).Write([]byte("ok\n"))
	c := &slowConn{closed: make(chan struct{})}
	return types.HijackedResponse{Conn: c, Reader: bufio.NewReader(&slowStream{took: e.took, closed: c.closed, out: out.Bytes()})}, nil
}

func (e slowExec) ContainerExecInspect(context.Context, string) (container.ExecInspect, error) {
	return container.ExecInspect{ExitCode: 0}, nil
}

func (e slowExec) CopyFromContainer(context.Context, string, string) (io.ReadCloser, container.PathStat, error) {
	return nil, container.PathStat{}, errors.New("not here")
}

func (e slowExec) CopyToContainer(context.Context, string, string, io.Reader, container.CopyToContainerOptions) error {
	return errors.New("not here")
}

func (e slowExec) ContainerStatPath(context.Context, string, string) (container.PathStat, error) {
	return container.PathStat{}, errors.New("not here")
}

type slowConn struct {
	net.Conn
	once   sync.Once
	closed chan struct{}
}

func (c *slowConn) Close() error { c.once.Do(func() { close(c.closed) }); return nil }

type slowStream struct {
	took   time.Duration
	closed chan struct{}
	out    []byte
	waited bool
}

func (s *slowStream) Read(p []byte) (int, error) {
	if !s.waited {
		s.waited = true
		select {
		case <-time.After(s.took):
		case <-s.closed:
			return 0, net.ErrClosed
		}
	}
	if len(s.out) == 0 {
		return 0, io.EOF
	}
	n := copy(p, s.out)
	s.out = s.out[n:]
	return n, nil
}

// TestSlowRestorePostHookWithinTheJobsTimeout: a restore post-hook that loads a dump takes as
// long as the dump is large; the spec's timeout is what bounds a job ("raise timeout for large
// volumes"). postHookTimeout bounds the post-hooks of a job cut short, not those of a job
// that still has time: a 5-minute load inside a 30-minute timeout must not be cut off at 2
// minutes (reported as failed while the load goes on in the container).
func TestSlowRestorePostHookWithinTheJobsTimeout(t *testing.T) {
	svc := []manifests.BackupService{{Name: "db", RestorePost: "mysql < /var/lib/mysql/dump.sql"}}
	post := func(s manifests.BackupService) string { return s.RestorePost }
	synctest.Test(t, func(t *testing.T) {
		b := &backupRunner{eng: slowExec{took: 5 * time.Minute}, containers: map[string]string{"db": "c1"}, run: &spec.BackupRun{}}
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Minute) // the spec's timeout
		defer cancel()
		if err := b.postHooks(ctx, hookRestorePost, svc, post, nil); err != nil {
			t.Fatalf("a 5-minute post-hook in a job with 30 minutes: %v", err)
		}
	})
	// A job cut short (the process stopping) still gives its post-hooks postHookTimeout, and
	// no more.
	synctest.Test(t, func(t *testing.T) {
		for _, tc := range []struct {
			took time.Duration
			ok   bool
		}{{time.Minute, true}, {5 * time.Minute, false}} {
			b := &backupRunner{eng: slowExec{took: tc.took}, containers: map[string]string{"db": "c1"}, run: &spec.BackupRun{}}
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Minute)
			cancel()
			start := time.Now()
			err := b.postHooks(ctx, hookRestorePost, svc, post, nil)
			if (err == nil) != tc.ok || time.Since(start) > postHookTimeout {
				t.Errorf("a job cut short, a post-hook of %s: %v after %s", tc.took, err, time.Since(start))
			}
		}
	})
}

// TestRestoreCutShortThenTornDownDoesNotFailTheNextLife: a reconciler killed during a restore
// leaves it Running in the status. When the spec is deleted before a reconciler runs again,
// the app is torn down (Deleted, its status kept for --status-retention). A spec of that name
// applied again is a new install: it must end Ready, not Failed by the restore of its earlier
// life, and no restore post-hook of that life runs in its new containers.
func TestRestoreCutShortThenTornDownDoesNotFailTheNextLife(t *testing.T) {
	f, fb := restoreRequestedWithHooks(t)
	killedAt(f, "write volume")
	// While no reconciler runs, CI deletes the spec: the restarted reconciler tears it down.
	if err := spec.Unplace(f.r.SpecsDir, "a"); err != nil {
		t.Fatal(err)
	}
	if st := f.settle("a"); st.Phase != spec.PhaseDeleted {
		t.Fatalf("teardown: %s %s", st.Phase, st.Message)
	}
	// The app is made again: a new install.
	f.writeSpec("a", "recipe: bkm\nversion: 1.0.0+1\n")
	fb.ran = nil
	var st *spec.Status
	func() {
		defer func() {
			if p := recover(); p != nil {
				t.Fatalf("a pass of the new install panicked: %v", p)
			}
		}()
		st = f.settleAs("a", spec.PhaseReady, time.Second, 20)
	}()
	if st.Phase != spec.PhaseReady || contains(fb.ran, "a_test_app: maint off") {
		t.Fatalf("a new install after the teardown: %s %q; ran %q", st.Phase, st.Message, fb.ran)
	}
	if r := st.LastRestore; r != nil && r.State == spec.RunRunning {
		t.Errorf("the earlier life's restore still Running: %+v", r)
	}
}

// stoppedExec is a BackupEngine whose container stopped: an exec is refused as the engine
// refuses it (a conflict), while the container and its paths are still there.
type stoppedExec struct{ slowExec }

func (stoppedExec) ContainerExecCreate(_ context.Context, cid string, _ container.ExecOptions) (container.ExecCreateResponse, error) {
	return container.ExecCreateResponse{}, errdefs.Conflict(fmt.Errorf("Container %s is not running", cid))
}

func (stoppedExec) ContainerStatPath(context.Context, string, string) (container.PathStat, error) {
	return container.PathStat{Name: "/"}, nil
}

// TestHookInAStoppedContainer: a hook or check to run in a container that stopped (its task
// ended, swarm keeps the container) says the container stopped and to ask again.
func TestHookInAStoppedContainer(t *testing.T) {
	b := &backupRunner{eng: stoppedExec{}, containers: map[string]string{"db": "c1"}, run: &spec.BackupRun{}}
	err := b.exec(t.Context(), "db", "backup pre-hook", "dump")
	if err == nil || !strings.Contains(err.Error(), "container c1 has stopped: its task ended meanwhile") || !strings.Contains(err.Error(), "ask again") {
		t.Errorf("%v, want an error saying the container stopped and to ask again", err)
	}
}

// killedInMaintenance is a restore killed right after its pre-hook put the app in maintenance,
// whose health check then failed: swarm ended the app's task and made the next, in state
// (starting: its container runs; ready: none yet, within the restart delay).
func killedInMaintenance(t *testing.T, state swarm.TaskState) (*fixture, *fakeBackup, string) {
	t.Helper()
	f, fb := restoreRequestedWithHooks(t)
	killedAt(f, "restore pre-hook app")
	if !slices.Contains(fb.ran, "a_test_app: maint on") {
		t.Fatalf("killed after %q, want after the pre-hook", fb.ran)
	}
	return f, fb, unhealthyNow(t, f, state)
}

// TestOwedRestorePostHookWhileTheAppIsUnhealthy: a restore pre-hook that puts the app in
// maintenance may keep it from converging: its health check fails, swarm replaces the task,
// and the replacement runs but never passes the check (its task stays starting). The
// restarted reconciler must say at once that the restore was interrupted and run the post-hook
// owed in the container that runs, not wait for the app to converge, which only that
// post-hook would let it do (the status would say Running for good).
func TestOwedRestorePostHookWhileTheAppIsUnhealthy(t *testing.T) {
	f, fb, _ := killedInMaintenance(t, swarm.TaskStateStarting)
	st := f.settle("a")
	if st.Phase != spec.PhaseFailed || !strings.Contains(st.Message, "interrupted") || !strings.Contains(st.Message, "the restore post-hooks of app, owed since, ran") {
		t.Fatalf("after the restart, the app unhealthy: %s %s", st.Phase, st.Message)
	}
	if r := st.LastRestore; r == nil || r.State != spec.RunFailed || !r.Interrupted {
		t.Fatalf("last restore %+v, want failed, interrupted", r)
	}
	if fb.ran[len(fb.ran)-1] != "a_test_app: maint off" {
		t.Fatalf("ran %q: the owed post-hook did not run", fb.ran)
	}
}

// TestOwedRestorePostHookTriedAgainUntilAContainerRuns: a restarted reconciler that finds a
// restore interrupted may find no container of the service whose post-hook is owed (swarm
// is between a task its health check ended and the next). Waiting helps there: the app stays
// Failed, as after any interrupted restore, but the post-hook is tried again until a
// container of the service runs, and then runs once; a post-hook that ran is never run again.
func TestOwedRestorePostHookTriedAgainUntilAContainerRuns(t *testing.T) {
	f, fb, between := killedInMaintenance(t, swarm.TaskStateReady) // the restart delay
	st := f.settle("a")
	if st.Phase != spec.PhaseFailed || !strings.Contains(st.Message, "interrupted") || !strings.Contains(st.Message, "owed since, failed") ||
		!strings.Contains(st.Message, "tried again every") {
		t.Fatalf("no container of the service: %s %s", st.Phase, st.Message)
	}
	if slices.Contains(fb.ran, "a_test_app: maint off") {
		t.Fatalf("ran %q with no container of the service", fb.ran)
	}
	history := len(st.History)

	f.engine.mu.Lock()
	for i, tk := range f.engine.tasks {
		if tk.ID == between {
			f.engine.tasks[i].Status = swarm.TaskStatus{State: swarm.TaskStateStarting, Timestamp: f.now, ContainerStatus: &swarm.ContainerStatus{ContainerID: "c-" + tk.ID}}
		}
	}
	f.engine.mu.Unlock()
	st = f.settle("a")
	if st.Phase != spec.PhaseFailed || !strings.Contains(st.Message, "interrupted") || !strings.Contains(st.Message, "the restore post-hooks of app, owed since, ran") ||
		strings.Contains(st.Message, "failed") {
		t.Fatalf("a container of the service runs: %s %s", st.Phase, st.Message)
	}
	if r := st.LastRestore; r == nil || r.Message != strings.TrimPrefix(st.Message, "restore ") {
		t.Fatalf("last restore %+v, want the app's message", r)
	}
	if offs := slices.DeleteFunc(slices.Clone(fb.ran), func(c string) bool { return c != "a_test_app: maint off" }); len(offs) != 1 {
		t.Fatalf("ran %q, want the post-hook once", fb.ran)
	}
	if n := len(st.History) - history; n != 1 {
		t.Fatalf("%d history entries while the post-hook was owed and then ran, want 1 (its run): %+v", n, st.History[history-1:])
	}
	n := len(fb.ran)
	if st = f.settle("a"); st.Phase != spec.PhaseFailed || len(fb.ran) != n {
		t.Fatalf("after it ran: %s, ran again %q", st.Phase, fb.ran[n:])
	}
}
