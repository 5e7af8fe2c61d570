package controller

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/swarm-reconciler/reconciler/spec"
)

// onceWorld is a spec and a status directory, and a scripted reconcile per app: each pass
// writes the app's next phase (the last one for ever after) and asks to come back when told.
type onceWorld struct {
	t             *testing.T
	specs, status string
	mu            sync.Mutex
	passes        map[string]int
	phases        map[string][]spec.Phase
	requeue       map[string]time.Duration
	fail          map[string]bool
	tasksFor      map[string]time.Duration
	staleGenOf    map[string]bool // the status keeps describing an older spec
	controller    *Controller
}

func newOnceWorld(t *testing.T) *onceWorld {
	w := &onceWorld{t: t, specs: t.TempDir(), status: t.TempDir(), passes: map[string]int{},
		phases: map[string][]spec.Phase{}, requeue: map[string]time.Duration{}, fail: map[string]bool{}, staleGenOf: map[string]bool{}, tasksFor: map[string]time.Duration{}}
	w.controller = &Controller{R: &Reconciler{SpecsDir: w.specs, StatusDir: w.status}, Workers: 2}
	w.controller.reconcileFunc = w.reconcile
	w.controller.pendingFunc = func(context.Context) ([]string, error) {
		var apps []string
		for app := range w.phases {
			apps = append(apps, app)
		}
		slices.Sort(apps)
		return apps, nil
	}
	return w
}

// app adds an app: with a spec file unless withSpec is false, reconciled through phases.
func (w *onceWorld) app(name string, withSpec bool, requeue time.Duration, phases ...spec.Phase) {
	if withSpec {
		if err := os.WriteFile(filepath.Join(w.specs, name+".yml"), []byte("recipe: r\nversion: v1\n"), 0o644); err != nil {
			w.t.Fatal(err)
		}
	}
	w.phases[name] = phases
	w.requeue[name] = requeue
}

func (w *onceWorld) reconcile(ctx context.Context, app string) (Result, error) {
	w.mu.Lock()
	n := w.passes[app]
	w.passes[app]++
	phases, requeue, fail, tasksFor := w.phases[app], w.requeue[app], w.fail[app], w.tasksFor[app]
	w.mu.Unlock()
	if fail {
		return Result{}, errors.New("engine did not answer")
	}
	if len(phases) == 0 {
		return Result{RequeueAfter: requeue}, nil
	}
	gen := spec.Generation([]byte("recipe: r\nversion: v1\n"))
	if w.staleGenOf[app] {
		gen = spec.Generation([]byte("recipe: r\nversion: v0\n"))
	}
	st := &spec.Status{App: app, ObservedGeneration: gen, Phase: phases[min(n, len(phases)-1)], Message: fmt.Sprint("pass ", n)}
	if err := spec.WriteStatus(w.status, st); err != nil {
		return Result{}, err
	}
	return Result{RequeueAfter: requeue, TasksFor: tasksFor}, nil
}

func (w *onceWorld) passesOf(app string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.passes[app]
}

// TestRunOnceSettles: once waits for converging apps and returns when each is in a phase
// that waiting would not change, whatever the app asks of the queue: a watched Ready app and
// a Degraded one ask to be looked at again for ever, and are settled at their first pass.
func TestRunOnceSettles(t *testing.T) {
	w := newOnceWorld(t)
	w.app("ready", true, 2*time.Second, spec.PhaseReady)
	w.app("degraded", true, 2*time.Second, spec.PhaseDegraded)
	w.app("failed", true, 0, spec.PhaseFailed)
	w.app("suspended", true, time.Hour, spec.PhaseSuspended)
	w.app("converging", true, 5*time.Millisecond, spec.PhasePending, spec.PhaseDeploying, spec.PhaseDeploying, spec.PhaseReady)
	w.app("torn-down", false, 5*time.Millisecond, spec.PhaseDeleting, spec.PhaseDeleting, spec.PhaseDeleted)
	w.app("nothing", false, 0) // no spec, no status, nothing asked: done

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	start := time.Now()
	apps, unsettled, err := w.controller.RunOnce(ctx)
	if err != nil || len(unsettled) != 0 || len(apps) != 7 {
		t.Fatalf("RunOnce: apps %v, unsettled %v, err %v", apps, unsettled, err)
	}
	if took := time.Since(start); took > 30*time.Second {
		t.Errorf("RunOnce took %s", took)
	}
	for app, want := range map[string]int{"ready": 1, "degraded": 1, "failed": 1, "suspended": 1, "converging": 4, "torn-down": 3, "nothing": 1} {
		if got := w.passesOf(app); got != want {
			t.Errorf("%s: %d passes, want %d", app, got, want)
		}
	}
}

// TestRunOnceWaitsOnTasks: an app that waits on its tasks alone is looked at with a task list
// call, and passed again only when the list moved, as the loop does.
func TestRunOnceWaitsOnTasks(t *testing.T) {
	w := newOnceWorld(t)
	w.app("waiting", true, 5*time.Millisecond, spec.PhaseDeploying, spec.PhaseDeploying, spec.PhaseReady)
	w.tasksFor["waiting"] = time.Minute
	var looks int
	w.controller.movedFunc = func(string) bool {
		w.mu.Lock()
		defer w.mu.Unlock()
		looks++
		return looks%5 == 0
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, unsettled, err := w.controller.RunOnce(ctx); err != nil || len(unsettled) != 0 {
		t.Fatalf("RunOnce: unsettled %v, err %v", unsettled, err)
	}
	if passes := w.passesOf("waiting"); passes != 3 || looks != 10 {
		t.Fatalf("%d passes and %d looks at the task list, want 3 passes, each after the list moved (10 looks)", passes, looks)
	}
}

// TestRunOnceEndsOnItsTimeout: apps that do not settle before ctx's deadline are returned by
// name: one that keeps converging, one whose reconcile keeps failing, one whose status
// describes an older spec (its lock held elsewhere, say), one that hangs in its reconcile.
func TestRunOnceEndsOnItsTimeout(t *testing.T) {
	w := newOnceWorld(t)
	w.app("ready", true, 2*time.Second, spec.PhaseReady)
	w.app("deploying", true, 5*time.Millisecond, spec.PhaseDeploying)
	w.app("failing", true, 0, spec.PhaseReady)
	w.fail["failing"] = true
	w.app("stale", true, 5*time.Millisecond, spec.PhaseReady)
	w.staleGenOf["stale"] = true
	w.app("hung", true, 0)
	w.controller.Workers = 8
	inner := w.controller.reconcileFunc
	w.controller.reconcileFunc = func(ctx context.Context, app string) (Result, error) {
		if app == "hung" {
			<-ctx.Done()
			return Result{}, ctx.Err()
		}
		return inner(ctx, app)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, unsettled, err := w.controller.RunOnce(ctx)
	took := time.Since(start)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want the deadline", err)
	}
	if want := []string{"deploying", "failing", "hung", "stale"}; !slices.Equal(unsettled, want) {
		t.Errorf("unsettled %v, want %v", unsettled, want)
	}
	if took > 10*time.Second {
		t.Errorf("RunOnce with a 300ms timeout took %s", took)
	}
	if n := w.passesOf("deploying"); n < 2 {
		t.Errorf("a converging app was reconciled %d times in 300ms, want it looked at again", n)
	}
}

// TestRunOnceAppsLeftWaiting: with fewer workers than apps, apps never started when the
// deadline passes are named too.
func TestRunOnceAppsLeftWaiting(t *testing.T) {
	w := newOnceWorld(t)
	for _, app := range []string{"a", "b", "c"} {
		w.app(app, true, 5*time.Millisecond, spec.PhaseDeploying)
	}
	w.controller.Workers = 1
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, unsettled, _ := w.controller.RunOnce(ctx)
	if want := []string{"a", "b", "c"}; !slices.Equal(unsettled, want) {
		t.Errorf("unsettled %v, want %v", unsettled, want)
	}
	if n := w.passesOf("b") + w.passesOf("c"); n != 0 {
		t.Errorf("b and c were reconciled %d times behind a that never settled, with one worker", n)
	}
}
