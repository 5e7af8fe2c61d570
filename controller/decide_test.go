package controller

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/swarm"
	"github.com/docker/docker/api/types/volume"
	"github.com/docker/docker/errdefs"

	"github.com/swarm-reconciler/reconciler/locks"
	"github.com/swarm-reconciler/reconciler/spec"
	"github.com/swarm-reconciler/reconciler/swarmstate"
)

// passes reconciles app n times, a second apart, and returns every status it wrote in order
// and the errors it met.
func (f *fixture) passes(app string, n int) (seen []*spec.Status, errs []error) {
	f.t.Helper()
	for range n {
		res, err := f.r.Reconcile(f.t.Context(), app)
		if err != nil {
			errs = append(errs, err)
		}
		if st, rerr := spec.ReadStatus(f.r.StatusDir, app); rerr == nil {
			seen = append(seen, st)
		}
		f.now = f.now.Add(time.Second)
		if err == nil && res.RequeueAfter == 0 {
			break
		}
	}
	return seen, errs
}

// TestLongLivedAppIsRepairedNeverFailed: an app Ready for far longer than its timeout, then
// changed by hand or met by engine trouble, is Degraded while it is repaired and Ready after;
// never Failed (DESIGN.md, attempts and deadlines).
func TestLongLivedAppIsRepairedNeverFailed(t *testing.T) {
	for _, tc := range []struct {
		name    string
		change  func(f *fixture)
		writes  string // the engine writes of the repair
		errors  bool   // the passes meet transient errors
		noWrite bool
	}{
		{name: "service removed by hand", change: func(f *fixture) { f.engine.removeByHand("a_test_app") }, writes: "create service a_test_app"},
		{name: "scaled to 0 by hand", change: func(f *fixture) {
			f.engine.byHand("a_test_app", func(s *swarm.ServiceSpec) {
				zero := uint64(0)
				s.Mode = swarm.ServiceMode{Replicated: &swarm.ReplicatedService{Replicas: &zero}}
			})
		}, writes: "update service a_test_app"},
		{name: "image changed by hand", change: func(f *fixture) {
			f.engine.byHand("a_test_app", func(s *swarm.ServiceSpec) { s.TaskTemplate.ContainerSpec.Image = "echo:1.1.0" })
		}, writes: "update service a_test_app"},
		{name: "image changed by hand, roll takes time", change: func(f *fixture) {
			f.engine.rollLists = 3
			f.engine.byHand("a_test_app", func(s *swarm.ServiceSpec) { s.TaskTemplate.ContainerSpec.Image = "echo:1.1.0" })
		}, writes: "update service a_test_app"},
		{name: "engine does not answer for a while", change: func(f *fixture) {
			f.engine.fail = map[string]int{"list services": 4}
		}, errors: true, noWrite: true},
		{name: "update out of sequence during repair", change: func(f *fixture) {
			f.engine.byHand("a_test_app", func(s *swarm.ServiceSpec) { s.TaskTemplate.ContainerSpec.Image = "echo:1.1.0" })
			f.engine.fail = map[string]int{"update service": 2}
		}, writes: "update service a_test_app", errors: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			f.writeSpec("a", "recipe: echo\nversion: 1.0.0+1\ntimeout: 15s\n")
			if st := f.settle("a"); st.Phase != spec.PhaseReady {
				t.Fatalf("install: %s %s", st.Phase, st.Message)
			}
			f.now = f.now.Add(time.Hour) // Ready for far longer than its timeout
			tc.change(f)
			f.engine.resetCalls()
			seen, errs := f.passes("a", 20)
			for _, st := range seen {
				if st.Phase == spec.PhaseFailed || hasPhase(st, spec.PhaseFailed) {
					t.Fatalf("Failed: %s\nhistory %+v", st.Message, st.History)
				}
			}
			if (len(errs) > 0) != tc.errors {
				t.Errorf("errors %v, want some: %v", errs, tc.errors)
			}
			last := seen[len(seen)-1]
			if last.Phase != spec.PhaseReady {
				t.Fatalf("ended %s: %s", last.Phase, last.Message)
			}
			if !tc.noWrite {
				if n := len(last.History); n < 2 || last.History[n-2].Phase != spec.PhaseDegraded {
					t.Errorf("history does not show Degraded before Ready: %+v", last.History)
				}
			}
			var writes []string
			for _, w := range f.engine.writes() {
				if !strings.HasPrefix(w, "pull") {
					writes = append(writes, w)
				}
			}
			if got := strings.Join(slices.Compact(writes), ","); got != tc.writes {
				t.Errorf("writes %q, want %q", got, tc.writes)
			}
			if last.Deploys != 1 {
				t.Errorf("deploys %d: a repair is no deploy", last.Deploys)
			}
		})
	}
}

// TestAttemptFailsAtItsDeadline: the same faults during a fresh attempt are bounded by its
// timeout, and a transient error only there turns into Failed.
func TestAttemptFailsAtItsDeadline(t *testing.T) {
	f := newFixture(t)
	f.engine.fail = map[string]int{"create service": 100}
	f.writeSpec("a", "recipe: echo\nversion: 1.0.0+1\ntimeout: 5s\n")
	seen, errs := f.passes("a", 20)
	last := seen[len(seen)-1]
	if last.Phase != spec.PhaseFailed || !strings.Contains(last.Message, "not deployed within 5s") || !strings.Contains(last.Message, "injected failure") {
		t.Fatalf("ended %s: %s", last.Phase, last.Message)
	}
	if len(errs) == 0 {
		t.Error("the error was not retried before the deadline")
	}
}

// TestNameHeldByAnObjectWeDoNotOwn: a name our app needs, held by an object made by hand, by
// another app or by another spec directory's reconciler, is Failed at once naming it; the
// object is never used, changed or removed, also through the teardown after the spec goes.
func TestNameHeldByAnObjectWeDoNotOwn(t *testing.T) {
	kinds := []struct {
		kind, name string
		make       func(e *fakeEngine, labels map[string]string) string
	}{
		{"service", "a_test_app", func(e *fakeEngine, l map[string]string) string {
			id := e.id()
			e.services[id] = &swarm.Service{ID: id, Spec: swarm.ServiceSpec{Annotations: swarm.Annotations{Name: "a_test_app", Labels: l}}}
			return id
		}},
		{"network", "a_test_internal", func(e *fakeEngine, l map[string]string) string {
			id := e.id()
			e.networks[id] = network.Summary{ID: id, Name: "a_test_internal", Labels: l}
			return id
		}},
		{"config", "a_test_conf_v1", func(e *fakeEngine, l map[string]string) string {
			id := e.id()
			e.configs[id] = swarm.Config{ID: id, Spec: swarm.ConfigSpec{Annotations: swarm.Annotations{Name: "a_test_conf_v1", Labels: l}}}
			return id
		}},
		{"volume", "a_test_data", func(e *fakeEngine, l map[string]string) string {
			e.volumes["a_test_data"] = &volume.Volume{Name: "a_test_data", Labels: l}
			return "a_test_data"
		}},
	}
	owners := map[string]map[string]string{
		"made by hand": {swarmstate.LabelNamespace: "a_test"},
		// b's spec asks for this stack too (b is Invalid once a holds it, and touches nothing):
		// its objects stay. One of an app leaving the stack: TestNewAppOnADomainBeingFreed.
		"another app":            {swarmstate.LabelApp: "b", swarmstate.LabelOwner: "d1", swarmstate.LabelNamespace: "a_test"},
		"another spec directory": {swarmstate.LabelApp: "a", swarmstate.LabelOwner: "d2", swarmstate.LabelNamespace: "a_test"},
	}
	for _, k := range kinds {
		for who, labels := range owners {
			t.Run(k.kind+" "+who, func(t *testing.T) {
				f := newFixture(t)
				id := k.make(f.engine, labels)
				var before swarm.Service // the fake records service updates by name: the service itself says whether it changed
				if k.kind == "service" {
					before = *f.engine.services[id]
				}
				if who == "another app" {
					f.writeSpec("b", "recipe: echo\nversion: 1.0.0+1\ndomain: a.test\n")
				}
				f.writeSpec("a", "recipe: echo\nversion: 1.0.0+1\n")
				st := f.settle("a")
				if st.Phase != spec.PhaseFailed || !strings.Contains(st.Message, k.kind+" "+k.name) || !strings.Contains(st.Message, "exists but is not owned") {
					t.Fatalf("%s: %s", st.Phase, st.Message)
				}
				if len(st.History) > 2 {
					t.Errorf("not Failed at once: %+v", st.History)
				}
				if err := spec.Unplace(f.r.SpecsDir, "a"); err != nil {
					t.Fatal(err)
				}
				f.settle("a")
				for _, c := range f.engine.calls {
					if strings.HasSuffix(c, " "+id) || (strings.HasPrefix(c, "create") && strings.HasSuffix(c, " "+k.name)) {
						t.Errorf("the foreign %s was touched: %s", k.kind, c)
					}
				}
				if k.kind == "service" && f.engine.services[id] == nil || k.kind == "volume" && f.engine.volumes[id] == nil {
					t.Errorf("the foreign %s is gone", k.kind)
				} else if k.kind == "service" && !reflect.DeepEqual(*f.engine.services[id], before) {
					t.Errorf("the foreign service was changed: %+v, was %+v", *f.engine.services[id], before)
				}
			})
		}
	}
}

// TestNothingUnownedIsEverUsed is the property over snapshots Take can really return: look-
// alikes of every object of the app, with random labels (none, another app's, another
// owner's), are injected by name; whatever the mix, no pass ever writes to one of them, and
// the app is Failed naming one exactly when one exists.
func TestNothingUnownedIsEverUsed(t *testing.T) {
	labelSets := []map[string]string{
		nil,
		{swarmstate.LabelApp: "b", swarmstate.LabelOwner: "d1"},
		{swarmstate.LabelApp: "a", swarmstate.LabelOwner: "d2"},
		{swarmstate.LabelApp: "a"},
	}
	for mask := range 1 << 4 {
		for li, labels := range labelSets {
			if mask != 1<<4-1 && li != mask%len(labelSets) {
				continue // every mix once, and every label set with every look-alike
			}
			t.Run(fmt.Sprintf("mask%02b-labels%d", mask, li), func(t *testing.T) {
				f := newFixture(t)
				var foreign []string
				var lookalike *swarm.Service
				if mask&1 != 0 {
					id := f.engine.id()
					lookalike = &swarm.Service{ID: id, Spec: swarm.ServiceSpec{Annotations: swarm.Annotations{Name: "a_test_app", Labels: labels}}}
					f.engine.services[id] = lookalike
					foreign = append(foreign, id)
				}
				var before swarm.Service
				if lookalike != nil {
					before = *lookalike
				}
				if mask&2 != 0 {
					id := f.engine.id()
					f.engine.networks[id] = network.Summary{ID: id, Name: "a_test_internal", Labels: labels}
					foreign = append(foreign, id)
				}
				if mask&4 != 0 {
					id := f.engine.id()
					f.engine.configs[id] = swarm.Config{ID: id, Spec: swarm.ConfigSpec{Annotations: swarm.Annotations{Name: "a_test_conf_v1", Labels: labels}}}
					foreign = append(foreign, id)
				}
				if mask&8 != 0 {
					f.engine.volumes["a_test_data"] = &volume.Volume{Name: "a_test_data", Labels: labels}
					foreign = append(foreign, "a_test_data")
				}
				if li == 1 {
					// b asks for this stack too: its objects stay (one of an app leaving the
					// stack is waited for: TestNewAppOnADomainBeingFreed).
					f.writeSpec("b", "recipe: echo\nversion: 1.0.0+1\ndomain: a.test\n")
				}
				f.writeSpec("a", "recipe: echo\nversion: 1.0.0+1\n")
				st := f.settle("a")
				if want := len(foreign) > 0; (st.Phase == spec.PhaseFailed) != want || want != strings.Contains(st.Message, "not owned") {
					t.Fatalf("%d look-alikes: %s %s", len(foreign), st.Phase, st.Message)
				}
				_ = spec.Unplace(f.r.SpecsDir, "a")
				f.settle("a")
				for _, c := range f.engine.writes() {
					for _, id := range foreign {
						if strings.HasSuffix(c, " "+id) {
							t.Fatalf("a look-alike was written to: %s", c)
						}
					}
				}
				// Service updates are recorded by name: the look-alike itself says.
				if lookalike != nil && (f.engine.services[lookalike.ID] != lookalike || !reflect.DeepEqual(*lookalike, before)) {
					t.Fatalf("the look-alike service was changed or replaced: %+v, was %+v", f.engine.services[lookalike.ID], before)
				}
			})
		}
	}
}

// TestAwaitedSecret: a generate=false secret is waited for, naming the command that inserts
// it; inserted (with the app's labels, as `reconciler secret insert` does), the app deploys;
// never inserted, the attempt fails at its deadline saying the same.
func TestAwaitedSecret(t *testing.T) {
	for _, insert := range []bool{true, false} {
		t.Run(fmt.Sprintf("inserted=%v", insert), func(t *testing.T) {
			f := newFixture(t)
			dir := filepath.Join(f.r.RecipesDir, "sec")
			makeRecipe(t, f.r.RecipesDir, "sec", "1.0.0+1")
			compose := `version: "3.8"
services:
  app:
    image: echo:1.0.0
    secrets:
      - api_key
secrets:
  api_key:
    external: true
    name: ${STACK_NAME}_api_key_${SECRET_API_KEY_VERSION}
`
			commitFiles(t, dir, "1.1.0+1", map[string]string{
				"compose.yml": compose, ".env.sample": "TYPE=sec\nSECRET_API_KEY_VERSION=v1 # generate=false\n"})
			f.writeSpec("k", "recipe: sec\nversion: 1.1.0+1\ntimeout: 10s\n")
			seen, _ := f.passes("k", 3)
			st := seen[len(seen)-1]
			if st.Phase != spec.PhaseDeploying || !strings.Contains(st.Message, "reconciler secret insert k api_key") {
				t.Fatalf("%s: %s", st.Phase, st.Message)
			}
			if insert {
				labels := map[string]string{swarmstate.LabelApp: "k", swarmstate.LabelOwner: "d1", swarmstate.LabelNamespace: "k_test"}
				if _, err := f.engine.SecretCreate(t.Context(), swarm.SecretSpec{Annotations: swarm.Annotations{Name: "k_test_api_key_v1", Labels: labels}}); err != nil {
					t.Fatal(err)
				}
			}
			seen, _ = f.passes("k", 20)
			st = seen[len(seen)-1]
			switch {
			case insert && st.Phase != spec.PhaseReady:
				t.Fatalf("after the insert: %s %s", st.Phase, st.Message)
			case !insert && (st.Phase != spec.PhaseFailed || !strings.Contains(st.Message, "reconciler secret insert")):
				t.Fatalf("never inserted: %s %s", st.Phase, st.Message)
			}
		})
	}
}

// commitFiles commits files to the recipe repository in dir and tags the commit.
func commitFiles(t *testing.T, dir, tag string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, args := range [][]string{{"add", "-A"}, {"commit", "-q", "-m", tag}, {"tag", "-a", tag, "-m", tag}} {
		gitIn(t, dir, args...)
	}
}

// TestDomainChangeIsAMove: the new stack converges first, then the old stack is removed and
// its lock released; Ready only when nothing of the old stack is left.
func TestDomainChangeIsAMove(t *testing.T) {
	f := newFixture(t)
	dir, err := locks.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	f.r.Locks = dir
	f.writeSpec("m", "recipe: echo\nversion: 1.0.0+1\ndomain: old.test\n")
	if st := f.settle("m"); st.Phase != spec.PhaseReady {
		t.Fatalf("install: %s %s", st.Phase, st.Message)
	}
	f.writeSpec("m", "recipe: echo\nversion: 1.0.0+1\ndomain: new.test\n")
	f.engine.resetCalls()
	seen, errs := f.passes("m", 20)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	st := seen[len(seen)-1]
	if st.Phase != spec.PhaseReady || st.Stack != "new_test" {
		t.Fatalf("after the move: %s %s %s", st.Phase, st.Stack, st.Message)
	}
	for _, s := range seen {
		if s.Phase == spec.PhaseReady && s != st {
			t.Errorf("Ready before the old stack was gone: %s", s.Message)
		}
	}
	creates, removes := -1, -1
	for i, c := range f.engine.writes() {
		if c == "create service new_test_app" && creates < 0 {
			creates = i
		}
		if strings.HasPrefix(c, "remove service") && removes < 0 {
			removes = i
		}
	}
	if creates < 0 || removes < creates {
		t.Errorf("the old stack was removed before the new one was created: %v", f.engine.writes())
	}
	for _, o := range f.engine.networks {
		if strings.HasPrefix(o.Name, "old_test") {
			t.Errorf("left: network %s", o.Name)
		}
	}
	for name := range f.engine.volumes {
		if strings.HasPrefix(name, "old_test") {
			t.Errorf("left: volume %s", name)
		}
	}
	if len(f.engine.services) != 1 || len(f.engine.configs) != 1 {
		t.Errorf("left: %d services, %d configs", len(f.engine.services), len(f.engine.configs))
	}
	files, _ := dir.AppLockfiles()
	if _, ok := files["old.test"]; ok {
		t.Error("the old domain's lock is still there")
	}
	if _, ok := files["new.test"]; !ok {
		t.Error("the new domain's lock is not held")
	}
}

// TestOutcome: how what acting met folds into the decision.
func TestOutcome(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	base := func(phase spec.Phase, deadline time.Time) decision {
		return decision{Status: &spec.Status{AttemptStartedAt: &start}, Phase: phase, Message: "m", Deadline: deadline, After: time.Second}
	}
	inUseErr := stillInUse{object: "volume a_data", err: errors.New("Error response from daemon: remove a_data: volume is in use - [c1]")}
	for _, tc := range []struct {
		name      string
		d         decision
		err       error
		now       time.Time
		phase     spec.Phase
		message   string
		retry     bool
		lookAfter time.Duration
	}{
		{"no error", base(spec.PhaseDeploying, start.Add(time.Minute)), nil, start, spec.PhaseDeploying, "m", false, time.Second},
		{"terminal", base(spec.PhaseDeploying, start.Add(time.Minute)), terminal{errors.New("no such image")}, start, spec.PhaseFailed, "no such image", false, 0},
		{"transient before the deadline", base(spec.PhaseDeploying, start.Add(time.Minute)), errors.New("500"), start, spec.PhaseDeploying, "retrying: 500", true, 0},
		{"transient past the deadline", base(spec.PhaseDeploying, start.Add(time.Minute)), errors.New("500"), start.Add(2 * time.Minute), spec.PhaseFailed, "not deployed within 1m0s: 500", false, 0},
		{"transient on a converged app, long after", base(spec.PhaseDegraded, time.Time{}), errors.New("500"), start.Add(time.Hour), spec.PhaseDegraded, "retrying: 500", true, 0},
		{"volume in use in a teardown", base(spec.PhaseDeleting, time.Time{}), inUseErr, start, spec.PhaseDeleting, "m; waiting: volume a_data is still used by a container that is stopping", false, time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := outcome(tc.d, nil, tc.err, tc.now)
			if strings.Contains(d.Message, "is in use - [") {
				t.Errorf("message %q carries the engine's raw error", d.Message)
			}
			if d.Phase != tc.phase || !strings.Contains(d.Message, tc.message) || (err != nil) != tc.retry || d.After != tc.lookAfter {
				t.Errorf("outcome = %s %q after %s, err %v; want %s %q after %s, retry %v", d.Phase, d.Message, d.After, err, tc.phase, tc.message, tc.lookAfter, tc.retry)
			}
		})
	}
}

// TestDecideUnseen: a pass that could not see the swarm keeps the app's phase and says it is
// retrying; an app whose spec is gone is Deleting, whatever it was (its removed list starting
// with the teardown); nothing is written without a status, nor over a final one of an app still
// specified or already torn down.
func TestDecideUnseen(t *testing.T) {
	fail := errors.New("list services: Cannot connect to the Docker daemon")
	status := func(p spec.Phase) *spec.Status {
		return &spec.Status{App: "a", Phase: p, Message: "was", Removed: []string{"service old_app"}}
	}
	for _, tc := range []struct {
		name     string
		last     *spec.Status
		specGone bool
		write    bool
		phase    spec.Phase
		removed  int
	}{
		{"no status yet", nil, false, false, "", 0},
		{"no status yet, spec gone", nil, true, false, "", 0},
		{"Ready", status(spec.PhaseReady), false, true, spec.PhaseReady, 1},
		{"Ready, spec gone", status(spec.PhaseReady), true, true, spec.PhaseDeleting, 0},
		{"Deploying, spec gone", status(spec.PhaseDeploying), true, true, spec.PhaseDeleting, 0},
		{"Deleting, spec gone: its removals kept", status(spec.PhaseDeleting), true, true, spec.PhaseDeleting, 1},
		{"Failed", status(spec.PhaseFailed), false, false, "", 0},
		{"Failed, spec gone", status(spec.PhaseFailed), true, true, spec.PhaseDeleting, 0},
		{"Invalid, spec gone", status(spec.PhaseInvalid), true, true, spec.PhaseDeleting, 0},
		{"Deleted, spec gone", status(spec.PhaseDeleted), true, false, "", 0},
		{"Expired, spec gone", status(spec.PhaseExpired), true, false, "", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, write := decideUnseen(tc.last, tc.specGone, fail)
			if write != tc.write {
				t.Fatalf("write %v, want %v", write, tc.write)
			}
			if !write {
				return
			}
			if d.Phase != tc.phase || d.Message != "retrying: "+fail.Error() || len(d.Status.Removed) != tc.removed {
				t.Errorf("got %s %q, removed %v; want %s, retrying, %d removed", d.Phase, d.Message, d.Status.Removed, tc.phase, tc.removed)
			}
			if len(tc.last.Removed) != 1 {
				t.Error("the previous status was changed")
			}
		})
	}
}

// TestMissingImageIsNoDeploy: an upgrade whose image cannot be had fails before anything
// changes, and counts no deploy.
func TestMissingImageIsNoDeploy(t *testing.T) {
	f := newFixture(t)
	f.writeSpec("a", "recipe: echo\nversion: 1.0.0+1\n")
	if st := f.settle("a"); st.Phase != spec.PhaseReady || st.Deploys != 1 {
		t.Fatalf("install: %s %d", st.Phase, st.Deploys)
	}
	f.writeSpec("a", "recipe: echo\nversion: 2.0.0+1\n")
	f.engine.resetCalls()
	st := f.settle("a")
	if st.Phase != spec.PhaseFailed || !strings.Contains(st.Message, "echo:2.0.0") || st.Deploys != 1 {
		t.Fatalf("%s deploys %d: %s", st.Phase, st.Deploys, st.Message)
	}
	for _, w := range f.engine.writes() {
		if !strings.HasPrefix(w, "pull") {
			t.Errorf("changed the swarm: %s", w)
		}
	}
}

// TestPullErrorsThatMayPass: a pull the registry failed (overloaded, rate-limiting, the
// connection cut) is tried again until the attempt's timeout, the app Upgrading and saying why;
// one that says the image is not there fails at once.
func TestPullErrorsThatMayPass(t *testing.T) {
	const image = "registry.test/echo:2.0.0"
	for _, tc := range []struct {
		name  string
		pulls []error
		phase spec.Phase
		says  string
	}{
		{"503 in the stream, then pulled", []error{pullStreamError("received unexpected HTTP status: 503 Service Unavailable"), nil}, spec.PhaseReady, ""},
		{"rate limited, then pulled", []error{errdefs.System(errors.New("toomanyrequests: You have reached your pull rate limit")), nil}, spec.PhaseReady, ""},
		{"timed out twice, then pulled", []error{errdefs.Unknown(errors.New("net/http: TLS handshake timeout")), pullStreamError("read tcp 10.0.0.2:4711->10.0.0.9:443: read: connection reset by peer"), nil}, spec.PhaseReady, ""},
		{"503 until the timeout", slices.Repeat([]error{pullStreamError("received unexpected HTTP status: 503 Service Unavailable")}, 40), spec.PhaseFailed, "not deployed within 30s: pull image"},
		{"manifest unknown", []error{pullStreamError("manifest for " + image + " not found: manifest unknown: manifest unknown")}, spec.PhaseFailed, "cannot be pulled"},
		{"no such host", []error{errdefs.Unknown(errors.New(`Get "https://registry.test/v2/": dial tcp: lookup registry.test: no such host`))}, spec.PhaseFailed, "cannot be pulled"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			f.writeSpec("a", "recipe: echo\nversion: 1.0.0+1\ntimeout: 30s\n")
			if st := f.settle("a"); st.Phase != spec.PhaseReady {
				t.Fatalf("install: %s %s", st.Phase, st.Message)
			}
			f.writeSpec("a", "recipe: echo\nversion: 2.0.0+1\ntimeout: 30s\n")
			f.engine.pulls = tc.pulls
			var seen []spec.Phase
			var st *spec.Status
			for i := 0; i < 40; i++ {
				res, err := f.r.Reconcile(f.t.Context(), "a")
				var rerr error
				st, rerr = spec.ReadStatus(f.r.StatusDir, "a")
				if rerr != nil {
					t.Fatal(rerr)
				}
				if len(seen) == 0 || seen[len(seen)-1] != st.Phase {
					seen = append(seen, st.Phase)
				}
				if err != nil && !strings.Contains(st.Message, "retrying: pull image") {
					t.Fatalf("pass %d: %v, status %s %q", i, err, st.Phase, st.Message)
				}
				f.now = f.now.Add(5 * time.Second)
				if err == nil && res.RequeueAfter == 0 {
					break
				}
			}
			if st.Phase != tc.phase || !strings.Contains(st.Message, tc.says) {
				t.Fatalf("%s %q, want %s saying %q (phases %v)", st.Phase, st.Message, tc.phase, tc.says, seen)
			}
			if tc.phase == spec.PhaseReady && (st.Deploys != 2 || seen[0] != spec.PhaseUpgrading) {
				t.Errorf("deploys %d, phases %v: want 2, Upgrading while the pull is tried again", st.Deploys, seen)
			}
		})
	}
}

// TestProbeLocks: a replica under a lease (ProbeLocks) keeps no app lock once an app is Ready,
// so a new leader never waits for it, and an app whose lock another process holds (a CI
// harness) waits as in single-host mode.
func TestProbeLocks(t *testing.T) {
	f := newFixture(t)
	dir, err := locks.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	f.r.Locks, f.r.ProbeLocks = dir, true
	f.writeSpec("p", "recipe: echo\nversion: 1.0.0+1\ndomain: p.test\n")
	if st := f.settle("p"); st.Phase != spec.PhaseReady {
		t.Fatalf("install: %s %s", st.Phase, st.Message)
	}
	other, err := dir.TryApp("p.test")
	if err != nil {
		t.Fatalf("the app lock is kept by the replica: %v", err)
	}
	f.writeSpec("p", "recipe: echo\nversion: 1.1.0+1\ndomain: p.test\n")
	f.engine.resetCalls()
	if _, err := f.r.Reconcile(context.Background(), "p"); err != nil {
		t.Fatal(err)
	}
	st, err := spec.ReadStatus(f.r.StatusDir, "p")
	if err != nil {
		t.Fatal(err)
	}
	if w := f.engine.writes(); !strings.Contains(st.Message, "lock held by another process") || len(w) > 0 {
		t.Errorf("an app whose lock another process holds did not wait for it: %s; writes %v", st.Message, w)
	}
	_ = other.Release()
}
