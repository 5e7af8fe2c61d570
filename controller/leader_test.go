package controller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/swarm"
	"github.com/go-logr/logr"
	"github.com/go-logr/logr/testr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	rl "k8s.io/client-go/tools/leaderelection/resourcelock"

	"github.com/swarm-reconciler/reconciler/manifests"
)

// raftConfigs is swarm's store as far as configs go: a global version index, and updates that
// must name the version they read.
type raftConfigs struct {
	mu      sync.Mutex
	index   uint64
	configs map[string]swarm.Config
}

func (s *raftConfigs) get(name string) (swarm.Config, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.configs[name]
	return c, ok
}

// leaseEngine is one manager's view of raftConfigs; down makes it a manager cut off from the
// others (every call fails).
type leaseEngine struct {
	store *raftConfigs
	down  atomic.Bool
}

var errNoQuorum = errors.New("rpc error: the swarm does not have a leader")

func (e *leaseEngine) ConfigInspectWithRaw(_ context.Context, id string) (swarm.Config, []byte, error) {
	if e.down.Load() {
		return swarm.Config{}, nil, errNoQuorum
	}
	e.store.mu.Lock()
	defer e.store.mu.Unlock()
	for _, c := range e.store.configs {
		if c.ID == id || c.Spec.Name == id {
			c.Spec.Labels = copyLabels(c.Spec.Labels)
			return c, nil, nil
		}
	}
	return swarm.Config{}, nil, cerrdefs.ErrNotFound.WithMessage("config " + id + " not found")
}

func (e *leaseEngine) ConfigCreate(_ context.Context, s swarm.ConfigSpec) (swarm.ConfigCreateResponse, error) {
	if e.down.Load() {
		return swarm.ConfigCreateResponse{}, errNoQuorum
	}
	e.store.mu.Lock()
	defer e.store.mu.Unlock()
	if _, ok := e.store.configs[s.Name]; ok {
		return swarm.ConfigCreateResponse{}, cerrdefs.ErrConflict.WithMessage("config " + s.Name + " already exists")
	}
	e.store.index++
	id := fmt.Sprintf("cfg%d", e.store.index)
	s.Labels = copyLabels(s.Labels)
	e.store.configs[s.Name] = swarm.Config{ID: id, Meta: swarm.Meta{Version: swarm.Version{Index: e.store.index}}, Spec: s}
	return swarm.ConfigCreateResponse{ID: id}, nil
}

func (e *leaseEngine) ConfigUpdate(_ context.Context, id string, v swarm.Version, s swarm.ConfigSpec) error {
	if e.down.Load() {
		return errNoQuorum
	}
	e.store.mu.Lock()
	defer e.store.mu.Unlock()
	for name, c := range e.store.configs {
		if c.ID != id {
			continue
		}
		if c.Version.Index != v.Index {
			return errors.New("rpc error: update out of sequence")
		}
		if string(c.Spec.Data) != string(s.Data) || c.Spec.Name != s.Name {
			return errors.New("only updates to Labels are allowed")
		}
		e.store.index++
		c.Version.Index = e.store.index
		c.Spec.Labels = copyLabels(s.Labels)
		e.store.configs[name] = c
		return nil
	}
	return cerrdefs.ErrNotFound.WithMessage("config " + id + " not found")
}

func copyLabels(l map[string]string) map[string]string {
	out := make(map[string]string, len(l))
	for k, v := range l {
		out[k] = v
	}
	return out
}

// replica runs one Election against its own manager and records when it leads.
type replica struct {
	id      string
	engine  *leaseEngine
	cancel  context.CancelFunc
	done    chan struct{}
	leading atomic.Bool
	terms   atomic.Int32
	// stopped is when its controller last returned after losing the lease.
	stoppedAt atomic.Value
}

const (
	testLease = 2 * time.Second // the record keeps whole seconds
	testRenew = 1200 * time.Millisecond
	testRetry = 200 * time.Millisecond
)

func startReplica(t *testing.T, store *raftConfigs, id string, log logr.Logger, overlap *atomic.Int32) *replica {
	r := &replica{id: id, engine: &leaseEngine{store: store}, done: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	e := &Election{Engine: r.engine, Owner: "t", Identity: id, LeaseDuration: testLease, RenewDeadline: testRenew, RetryPeriod: testRetry,
		Stuck: func() { t.Errorf("%s: controller did not stop after the lease was lost", id) }, Log: log}
	go func() {
		defer close(r.done)
		_ = e.Run(ctx, func(lctx context.Context) {
			if n := overlap.Add(1); n > 1 {
				t.Errorf("%s started leading while %d other replicas lead", id, n-1)
			}
			r.terms.Add(1)
			r.leading.Store(true)
			<-lctx.Done()
			r.leading.Store(false)
			overlap.Add(-1)
			r.stoppedAt.Store(time.Now())
		})
	}()
	t.Cleanup(func() { cancel(); <-r.done })
	return r
}

func leaderOf(rs ...*replica) []string {
	var ids []string
	for _, r := range rs {
		if r.leading.Load() {
			ids = append(ids, r.id)
		}
	}
	return ids
}

func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for time.Since(start) < within {
		if cond() {
			return time.Since(start)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%s: not within %s", what, within)
	return 0
}

func TestElectionOneLeaderAndFailover(t *testing.T) {
	store := &raftConfigs{configs: map[string]swarm.Config{}}
	var overlap atomic.Int32
	log := testr.New(t)
	a := startReplica(t, store, "a", log, &overlap)
	b := startReplica(t, store, "b", log, &overlap)
	c := startReplica(t, store, "c", log, &overlap)
	waitFor(t, 5*time.Second, "one leader", func() bool { return len(leaderOf(a, b, c)) == 1 })

	cfg, ok := store.get(LeaseName("t"))
	if !ok || cfg.Spec.Labels[manifests.LabelOwner] != "t" || !strings.Contains(cfg.Spec.Labels[LeaseLabel], `"holderIdentity":"`+leaderOf(a, b, c)[0]+`"`) {
		t.Fatalf("lease object = %+v", cfg.Spec)
	}

	// A clean stop releases the lease: the next leader within a few retry periods, not a
	// whole lease duration.
	first := map[string]*replica{"a": a, "b": b, "c": c}[leaderOf(a, b, c)[0]]
	first.cancel()
	<-first.done
	rest := []*replica{}
	for _, r := range []*replica{a, b, c} {
		if r != first {
			rest = append(rest, r)
		}
	}
	took := waitFor(t, 3*time.Second, "a new leader after a clean stop", func() bool { return len(leaderOf(rest...)) == 1 })
	if took > testLease {
		t.Errorf("new leader after a clean stop took %s, want less than the lease duration %s (the lease is released)", took, testLease)
	}
}

func TestElectionLeaderCutOff(t *testing.T) {
	store := &raftConfigs{configs: map[string]swarm.Config{}}
	var overlap atomic.Int32
	log := testr.New(t)
	a := startReplica(t, store, "a", log, &overlap)
	waitFor(t, 5*time.Second, "a leads", func() bool { return a.leading.Load() })
	b := startReplica(t, store, "b", log, &overlap)
	time.Sleep(3 * testRetry) // b has seen a's record
	if b.leading.Load() {
		t.Fatal("b leads while a holds the lease")
	}

	// a's manager loses quorum: a must stop acting before b may start.
	cut := time.Now()
	a.engine.down.Store(true)
	waitFor(t, 2*testLease, "a stops leading", func() bool { return !a.leading.Load() })
	stopped := a.stoppedAt.Load().(time.Time).Sub(cut)
	waitFor(t, 3*testLease, "b leads", func() bool { return b.leading.Load() })
	took := time.Since(cut)
	if stopped > testRenew+2*testRetry {
		t.Errorf("a stopped %s after losing its manager, want within the renew deadline %s", stopped, testRenew)
	}
	if took < testLease-testRetry {
		t.Errorf("b took over %s after a was cut off, before a's lease (%s) could have expired", took, testLease)
	}

	// a's manager is back: a follows, b keeps leading.
	a.engine.down.Store(false)
	time.Sleep(3 * testRetry)
	if got := leaderOf(a, b); len(got) != 1 || got[0] != "b" {
		t.Fatalf("leaders after a is back = %v, want [b]", got)
	}
}

func TestConfigLockRefusesStaleVersion(t *testing.T) {
	store := &raftConfigs{configs: map[string]swarm.Config{}}
	ctx := context.Background()
	one := &configLock{engine: &leaseEngine{store: store}, name: LeaseName("t"), owner: "t", identity: "one", log: logr.Discard()}
	two := &configLock{engine: &leaseEngine{store: store}, name: LeaseName("t"), owner: "t", identity: "two", log: logr.Discard()}
	if _, _, err := one.Get(ctx); !isNotFound(err) {
		t.Fatalf("Get of a missing lease = %v, want NotFound", err)
	}
	if err := one.Create(ctx, recordOf("one")); err != nil {
		t.Fatal(err)
	}
	if err := two.Create(ctx, recordOf("two")); err == nil {
		t.Fatal("a second Create succeeded")
	}
	if _, _, err := two.Get(ctx); err != nil {
		t.Fatal(err)
	}
	if err := one.Update(ctx, recordOf("one")); err != nil { // renew
		t.Fatal(err)
	}
	if err := two.Update(ctx, recordOf("two")); err == nil {
		t.Fatal("an update from a stale read succeeded")
	}
	if err := two.Update(ctx, recordOf("two")); err == nil {
		t.Fatal("an update without a fresh read succeeded")
	}
	rec, _, err := two.Get(ctx)
	if err != nil || rec.HolderIdentity != "one" {
		t.Fatalf("holder = %v, %v; want one", rec, err)
	}

	// Somebody else's config of that name is not taken over.
	store.configs[LeaseName("u")] = swarm.Config{ID: "x", Spec: swarm.ConfigSpec{Annotations: swarm.Annotations{Name: LeaseName("u")}}}
	other := &configLock{engine: &leaseEngine{store: store}, name: LeaseName("u"), owner: "u", identity: "one", log: logr.Discard()}
	if _, _, err := other.Get(ctx); err == nil || !strings.Contains(err.Error(), "docker config rm") {
		t.Fatalf("Get of an unowned config = %v, want an error saying what to do", err)
	}
}

func recordOf(holder string) rl.LeaderElectionRecord {
	now := metav1.NewTime(time.Now())
	return rl.LeaderElectionRecord{HolderIdentity: holder, LeaseDurationSeconds: 15, AcquireTime: now, RenewTime: now}
}

func isNotFound(err error) bool { return apierrors.IsNotFound(err) }

// TestElectionLeaderWhoseControllerStops: a controller that stops on its own (it could not
// start) gives the lease up at once instead of holding it without reconciling.
func TestElectionLeaderWhoseControllerStops(t *testing.T) {
	store := &raftConfigs{configs: map[string]swarm.Config{}}
	log := testr.New(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var broken atomic.Int32
	e := &Election{Engine: &leaseEngine{store: store}, Owner: "t", Identity: "broken", LeaseDuration: testLease, RenewDeadline: testRenew, RetryPeriod: testRetry, Log: log}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = e.Run(ctx, func(context.Context) { broken.Add(1) })
	}()
	waitFor(t, 5*time.Second, "the broken replica leads once", func() bool { return broken.Load() > 0 })
	var overlap atomic.Int32
	start := time.Now()
	good := startReplica(t, store, "good", log, &overlap)
	waitFor(t, 5*time.Second, "the other replica leads", func() bool { return good.leading.Load() })
	if took := time.Since(start); took > testLease {
		t.Errorf("the other replica waited %s, the lease (%s) was not released", took, testLease)
	}
	cancel()
	<-done
}

type leaseList []swarm.Config

func (l leaseList) ConfigList(context.Context, swarm.ConfigListOptions) ([]swarm.Config, error) {
	return l, nil
}

// TestLiveLeases: what the janitor takes for replicas still running: a holder renewed within
// its lease duration (plus the clock skew allowed), not a released or long expired lease.
func TestLiveLeases(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	lease := func(owner, holder string, renewed time.Duration) swarm.Config {
		raw, err := json.Marshal(leaseRecord{Holder: holder, LeaseSeconds: 15, RenewTime: now.Add(-renewed)})
		if err != nil {
			t.Fatal(err)
		}
		return swarm.Config{Spec: swarm.ConfigSpec{Annotations: swarm.Annotations{Name: LeaseName(owner), Labels: map[string]string{LeaseLabel: string(raw)}}}}
	}
	other := swarm.Config{Spec: swarm.ConfigSpec{Annotations: swarm.Annotations{Name: "app_conf", Labels: map[string]string{LeaseLabel: "{}"}}}}
	live, err := LiveLeases(t.Context(), leaseList{
		lease("renewed", "r1", time.Second),
		lease("skewed", "r2", 70*time.Second), // within 15 s + LeaseSkew
		lease("released", "", time.Second),
		lease("expired", "r3", 10*time.Minute),
		other,
	}, now)
	if err != nil {
		t.Fatal(err)
	}
	if len(live) != 2 || !strings.HasPrefix(live[0], LeaseName("renewed")+" (held by r1") || !strings.HasPrefix(live[1], LeaseName("skewed")) {
		t.Fatalf("live leases %q, want renewed and skewed", live)
	}
}

// cancelOnAcquire stops the process right as its lease is taken: before client-go has started
// OnStartedLeading.
type cancelOnAcquire struct {
	*leaseEngine
	cancel context.CancelFunc
}

func (e cancelOnAcquire) ConfigCreate(ctx context.Context, s swarm.ConfigSpec) (swarm.ConfigCreateResponse, error) {
	r, err := e.leaseEngine.ConfigCreate(ctx, s)
	if err == nil {
		e.cancel()
	}
	return r, err
}

// TestElectionStoppedAsItAcquires: a replica stopped in the moment it took the lease never
// leads, and gives the lease up as it goes, or the next replica waits the whole lease.
func TestElectionStoppedAsItAcquires(t *testing.T) {
	store := &raftConfigs{configs: map[string]swarm.Config{}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	e := &Election{Engine: cancelOnAcquire{&leaseEngine{store: store}, cancel}, Owner: "t", Identity: "quick", LeaseDuration: testLease,
		RenewDeadline: testRenew, RetryPeriod: testRetry, Log: testr.New(t)}
	var led atomic.Bool
	if err := e.Run(ctx, func(context.Context) { led.Store(true) }); err != nil {
		t.Fatal(err)
	}
	if _, ok := store.get(LeaseName("t")); !ok {
		t.Fatal("the lease was never taken: the test stops nothing")
	}
	lock := &configLock{engine: &leaseEngine{store: store}, name: LeaseName("t"), owner: "t", identity: "next", log: logr.Discard()}
	rec, _, err := lock.Get(context.Background())
	if err != nil || rec.HolderIdentity != "" {
		t.Errorf("after Run returned (led: %v): holder %q, %v; want the lease released", led.Load(), rec.HolderIdentity, err)
	}
}
