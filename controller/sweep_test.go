package controller

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/swarm"
	"github.com/docker/docker/api/types/volume"
	"github.com/go-logr/logr"

	"github.com/swarm-reconciler/reconciler/locks"
	"github.com/swarm-reconciler/reconciler/spec"
	"github.com/swarm-reconciler/reconciler/swarmstate"
)

func TestNeedsWork(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	one := uint64(1)
	own := func(app string) *swarmstate.Snapshot {
		return &swarmstate.Snapshot{
			Services: []swarm.Service{{ID: app, Spec: swarm.ServiceSpec{
				Annotations: swarm.Annotations{Name: app + "_app", Labels: map[string]string{swarmstate.LabelApp: app}},
				Mode:        swarm.ServiceMode{Replicated: &swarm.ReplicatedService{Replicas: &one}},
			}}},
			Tasks: []swarm.Task{{ServiceID: app, DesiredState: swarm.TaskStateRunning, Status: swarm.TaskStatus{State: swarm.TaskStateRunning}}},
		}
	}
	restarted := func(app string) *swarmstate.Snapshot {
		s := own(app)
		s.Tasks[0].Status.Timestamp = now.Add(-time.Second) // younger than the 5s window
		return s
	}
	stopped := func(app string) *swarmstate.Snapshot {
		s := own(app)
		s.Tasks = nil
		return s
	}
	desired := func(app, gen string) *spec.Desired {
		return &spec.Desired{App: app, Generation: gen, Spec: &spec.Spec{}}
	}
	status := func(app, gen string, phase spec.Phase, services int) *spec.Status {
		return &spec.Status{App: app, ObservedGeneration: gen, Phase: phase, UpdatedAt: now.Add(-time.Minute),
			Services: make([]spec.ServiceStatus, services)}
	}
	withTTL := func(d *spec.Desired) *spec.Desired {
		d.Spec.TTL.Duration = time.Hour
		return d
	}
	deployedAt := func(st *spec.Status, at time.Time) *spec.Status {
		st.FirstDeployedAt = &at
		return st
	}
	tests := []struct {
		name     string
		desired  []*spec.Desired
		live     map[string]*swarmstate.Snapshot
		statuses []*spec.Status
		want     string
	}{
		{name: "new spec", desired: []*spec.Desired{desired("a", "g1")}, want: "a"},
		{name: "ready and converged is settled", desired: []*spec.Desired{desired("a", "g1")},
			live: map[string]*swarmstate.Snapshot{"a": own("a")}, statuses: []*spec.Status{status("a", "g1", spec.PhaseReady, 1)}},
		{name: "ready but a task stopped", desired: []*spec.Desired{desired("a", "g1")},
			live: map[string]*swarmstate.Snapshot{"a": stopped("a")}, statuses: []*spec.Status{status("a", "g1", spec.PhaseReady, 1)}, want: "a"},
		{name: "ready but a task restarted a second ago", desired: []*spec.Desired{desired("a", "g1")},
			live: map[string]*swarmstate.Snapshot{"a": restarted("a")}, statuses: []*spec.Status{status("a", "g1", spec.PhaseReady, 1)}, want: "a"},
		{name: "ready but a service was removed by hand", desired: []*spec.Desired{desired("a", "g1")},
			statuses: []*spec.Status{status("a", "g1", spec.PhaseReady, 1)}, want: "a"},
		{name: "edited spec", desired: []*spec.Desired{desired("a", "g2")},
			live: map[string]*swarmstate.Snapshot{"a": own("a")}, statuses: []*spec.Status{status("a", "g1", spec.PhaseReady, 1)}, want: "a"},
		{name: "failed is final for its generation", desired: []*spec.Desired{desired("a", "g1")},
			statuses: []*spec.Status{status("a", "g1", spec.PhaseFailed, 0)}},
		{name: "failed past its ttl is due to be reaped", desired: []*spec.Desired{withTTL(desired("a", "g1"))},
			statuses: []*spec.Status{deployedAt(status("a", "g1", spec.PhaseFailed, 0), now.Add(-2*time.Hour))}, want: "a"},
		{name: "failed within its ttl is final", desired: []*spec.Desired{withTTL(desired("a", "g1"))},
			statuses: []*spec.Status{deployedAt(status("a", "g1", spec.PhaseFailed, 0), now.Add(-time.Minute))}},
		{name: "expired stays settled", desired: []*spec.Desired{withTTL(desired("a", "g1"))},
			statuses: []*spec.Status{deployedAt(status("a", "g1", spec.PhaseExpired, 0), now.Add(-2*time.Hour))}},
		{name: "invalid is final for its generation", desired: []*spec.Desired{{App: "a", Generation: "g1", Err: errors.New("bad")}},
			statuses: []*spec.Status{status("a", "g1", spec.PhaseInvalid, 0)}},
		{name: "deploying is not settled", desired: []*spec.Desired{desired("a", "g1")},
			statuses: []*spec.Status{status("a", "g1", spec.PhaseDeploying, 0)}, want: "a"},
		{name: "spec put back after delete", desired: []*spec.Desired{desired("a", "g1")},
			statuses: []*spec.Status{status("a", "g1", spec.PhaseDeleted, 0)}, want: "a"},
		{name: "orphan: owned objects, no spec", live: map[string]*swarmstate.Snapshot{"o": own("o")}, want: "o"},
		{name: "deleted and gone is settled", statuses: []*spec.Status{status("a", "g1", spec.PhaseDeleted, 0)}},
		{name: "status with no spec and nothing live", statuses: []*spec.Status{status("a", "g1", spec.PhaseReady, 1)}, want: "a"},
		{name: "deleted status past retention", statuses: []*spec.Status{{App: "a", Phase: spec.PhaseDeleted, UpdatedAt: now.Add(-2 * time.Hour)}}, want: "a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := map[string]*spec.Desired{}
			for _, x := range tt.desired {
				d[x.App] = x
			}
			got := strings.Join(needsWork(d, tt.live, tt.statuses, now, time.Hour), ",")
			if got != tt.want {
				t.Errorf("needsWork = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestJanitorLeavesAStackHeldByAnother: reconcilers A (owner a) and B (owner b) each deploy an
// app "x", in stacks x_a_test and x_b_test. A's spec is deleted while A is down; B runs and
// holds the lock of x.b.test. The janitor (no owner: it sweeps every owner's orphans) tears
// down A's x whole, and leaves B's stack alone: each stack goes only under its own lock. Also
// without A's status, where the snapshot's first object may be B's.
func TestJanitorLeavesAStackHeldByAnother(t *testing.T) {
	for _, withStatus := range []bool{true, false} {
		t.Run(fmt.Sprintf("with A's status %v", withStatus), func(t *testing.T) {
			f := newFixture(t)
			lockDir := t.TempDir()
			reconciler := func(owner string) *Reconciler {
				root := t.TempDir()
				l, err := locks.Open(lockDir)
				if err != nil {
					t.Fatal(err)
				}
				r := &Reconciler{Engine: f.engine, SpecsDir: filepath.Join(root, "specs"), StatusDir: filepath.Join(root, "status"),
					RecipesDir: f.r.RecipesDir, Defaults: f.r.Defaults, Now: f.r.Now, Log: logr.Discard(), Owner: owner, Locks: l}
				for _, d := range []string{r.SpecsDir, r.StatusDir} {
					if err := os.MkdirAll(d, 0o755); err != nil {
						t.Fatal(err)
					}
				}
				return r
			}
			a, b := reconciler("a"), reconciler("b")
			t.Cleanup(b.ReleaseAll) // B runs on: its locks stay held (and its files open) to the end
			for _, r := range []*Reconciler{a, b} {
				f.r = r
				f.writeSpec("x", "recipe: echo\nversion: 1.0.0+1\ndomain: x."+r.Owner+".test\n")
				if st := f.settle("x"); st.Phase != spec.PhasePending && st.Phase != spec.PhaseReady {
					t.Fatalf("%s: %s %s", r.Owner, st.Phase, st.Message)
				}
			}
			a.ReleaseAll() // A stops; its spec is deleted meanwhile
			if err := spec.Unplace(a.SpecsDir, "x"); err != nil {
				t.Fatal(err)
			}

			f.r = reconciler("")
			if withStatus {
				f.r.StatusDir = a.StatusDir
			}
			if st := f.settle("x"); st.Phase != spec.PhaseDeleted {
				t.Fatalf("janitor: %s %s", st.Phase, st.Message)
			}
			for _, tc := range []struct {
				owner string
				left  bool
			}{{"a", false}, {"b", true}} {
				snap, err := swarmstate.Take(t.Context(), f.engine, swarmstate.Owner{App: "x", Dir: tc.owner})
				if err != nil {
					t.Fatal(err)
				}
				if snap.Empty() == tc.left {
					t.Errorf("owner %s's x: left %v, want %v (residual %v); writes: %v", tc.owner, !snap.Empty(), tc.left, snap.Residual(), f.engine.writes())
				}
			}
		})
	}
}

// TestTeardownWaitsOnAHeldLockWhateverItsStatusSays: an app whose spec went, whose status says
// Deleting without naming a domain (written by a process that found it without a status), and
// whose lock a CI harness holds: the reconciler leaves every object of it alone.
func TestTeardownWaitsOnAHeldLockWhateverItsStatusSays(t *testing.T) {
	f := newFixture(t)
	lockDir := t.TempDir()
	open := func() *locks.Dir {
		l, err := locks.Open(lockDir)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	f.r.Locks = open()
	f.writeSpec("x", "recipe: echo\nversion: 1.0.0+1\n")
	if st := f.settle("x"); st.Phase != spec.PhasePending && st.Phase != spec.PhaseReady {
		t.Fatalf("%s %s", st.Phase, st.Message)
	}
	f.r.ReleaseAll()
	harness, err := open().TryApp("x.test")
	if err != nil {
		t.Fatal(err)
	}
	defer harness.Release()
	if err := spec.Unplace(f.r.SpecsDir, "x"); err != nil {
		t.Fatal(err)
	}
	st, _ := spec.ReadStatus(f.r.StatusDir, "x")
	st.Phase, st.Message, st.Domain, st.Stack = spec.PhaseDeleting, "removing: service x_test_app", "", ""
	if err := spec.WriteStatus(f.r.StatusDir, st); err != nil {
		t.Fatal(err)
	}
	f.r = &Reconciler{Engine: f.engine, SpecsDir: f.r.SpecsDir, StatusDir: f.r.StatusDir, RecipesDir: f.r.RecipesDir,
		Defaults: f.r.Defaults, Now: f.r.Now, Log: logr.Discard(), Owner: f.r.Owner, Locks: open()}
	after := f.settle("x")
	snap, err := swarmstate.Take(t.Context(), f.engine, swarmstate.Owner{App: "x", Dir: f.r.Owner})
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Services) == 0 || after.Phase == spec.PhaseDeleted {
		t.Fatalf("the app's teardown went on while a harness holds its lock: %s %s; writes %v", after.Phase, after.Message, f.engine.writes())
	}
}

// TestJanitorLeavesWhatNoReconcilerMade: objects labelled with an app but with no owner label
// (or an empty one) were made by hand or by a compose file copying our labels: every object a
// reconciler makes names its owner. The janitor, which sweeps any owner's orphans, leaves
// them alone, and sweeps an owner's orphan beside them.
func TestJanitorLeavesWhatNoReconcilerMade(t *testing.T) {
	f := newFixture(t)
	f.writeSpec("o", "recipe: echo\nversion: 1.0.0+1\n")
	if st := f.settle("o"); st.Phase != spec.PhaseReady {
		t.Fatalf("install: %s %s", st.Phase, st.Message)
	}
	if err := spec.Unplace(f.r.SpecsDir, "o"); err != nil {
		t.Fatal(err)
	}
	hand := map[string]string{swarmstate.LabelApp: "x", swarmstate.LabelNamespace: "x_test"}
	blank := map[string]string{swarmstate.LabelApp: "y", swarmstate.LabelNamespace: "y_test", swarmstate.LabelOwner: ""}
	f.engine.services["s1"] = &swarm.Service{ID: "s1", Spec: swarm.ServiceSpec{Annotations: swarm.Annotations{Name: "x_test_app", Labels: hand}}}
	f.engine.volumes["x_test_data"] = &volume.Volume{Name: "x_test_data", Labels: hand}
	f.engine.volumes["y_test_data"] = &volume.Volume{Name: "y_test_data", Labels: blank}

	f.r.Owner = "" // the janitor
	apps, err := f.r.Pending(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(apps, "x") || slices.Contains(apps, "y") || !slices.Contains(apps, "o") {
		t.Errorf("pending %v, want o and neither x nor y", apps)
	}
	f.settle("o")
	for _, app := range []string{"x", "y"} {
		if _, err := f.r.Reconcile(t.Context(), app); err != nil {
			t.Fatal(err)
		}
	}
	if f.engine.services["s1"] == nil || f.engine.volumes["x_test_data"] == nil || f.engine.volumes["y_test_data"] == nil {
		t.Errorf("the janitor removed objects no reconciler made; writes: %v", f.engine.writes())
	}
	if snap, err := swarmstate.Take(t.Context(), f.engine, swarmstate.Owner{App: "o"}); err != nil || !snap.Empty() {
		t.Errorf("the orphan o is left: %v (%v)", snap.Residual(), err)
	}
}
