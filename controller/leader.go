package controller

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/swarm"
	"github.com/go-logr/logr"
	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/tools/leaderelection"
	rl "k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/klog/v2"

	"github.com/swarm-reconciler/reconciler/manifests"
)

// LeaseLabel holds the lease record (client-go's LeaderElectionRecord as JSON) on the lease's
// config object.
const LeaseLabel = "swarm-reconciler.lease"

// LeaseName is the name of the config object that holds the lease of owner's replicas.
func LeaseName(owner string) string { return "swarm-reconciler-lease-" + owner }

// LeaseSkew is how far apart the clocks of the host that renewed a lease and the host that
// reads it may be for LiveLeases.
const LeaseSkew = time.Minute

// LiveLeases names the leases a replica may still hold: a holder whose last renew is not more
// than its lease duration plus LeaseSkew before now, by the reader's clock. A released lease
// (no holder) or one long expired is not live. `reconciler janitor` uses it: replicas run with
// --leader-elect hold no app lock, so a lock cannot tell it that they run.
func LiveLeases(ctx context.Context, e interface {
	ConfigList(ctx context.Context, o swarm.ConfigListOptions) ([]swarm.Config, error)
}, now time.Time) ([]string, error) {
	cfgs, err := e.ConfigList(ctx, swarm.ConfigListOptions{Filters: filters.NewArgs(filters.Arg("name", LeaseName("")))})
	if err != nil {
		return nil, fmt.Errorf("list leases: %w", err)
	}
	var live []string
	for _, c := range cfgs {
		var rec leaseRecord
		raw, ok := c.Spec.Labels[LeaseLabel]
		if !ok || !strings.HasPrefix(c.Spec.Name, LeaseName("")) || json.Unmarshal([]byte(raw), &rec) != nil || rec.Holder == "" {
			continue
		}
		if until := rec.RenewTime.Add(time.Duration(rec.LeaseSeconds)*time.Second + LeaseSkew); now.Before(until) {
			live = append(live, fmt.Sprintf("%s (held by %s, renewed %s)", c.Spec.Name, rec.Holder, rec.RenewTime.UTC().Format(time.RFC3339)))
		}
	}
	sort.Strings(live)
	return live, nil
}

// LeaseEngine is the part of the Engine API the lease needs: one config object, whose labels
// are the one part of it swarm lets a client update, each update compare-and-swap on the
// version read (Raft's store index), and which nothing but our updates ever changes.
type LeaseEngine interface {
	ConfigInspectWithRaw(ctx context.Context, id string) (swarm.Config, []byte, error)
	ConfigCreate(ctx context.Context, c swarm.ConfigSpec) (swarm.ConfigCreateResponse, error)
	ConfigUpdate(ctx context.Context, id string, v swarm.Version, c swarm.ConfigSpec) error
}

// configLock is client-go's resourcelock.Interface over the labels of one swarm config. An
// update names the version this process last read or wrote; anybody's write in between makes
// swarm refuse it ("update out of sequence"), which is what makes two candidates unable to both
// take the lease.
type configLock struct {
	engine   LeaseEngine
	name     string
	owner    string
	identity string
	log      logr.Logger
	// callTimeout bounds each call: a manager whose Raft leader just went away can hold a
	// request for tens of seconds, and the next try should go out in the meantime.
	callTimeout time.Duration
	// maxTrip, when set, is the longest a write may take, from sending it to reading it back,
	// and count: the others time the lease from when they saw the write, the leader from when
	// its answer came back, and leaseTiming's slack covers only so much of the difference.
	maxTrip time.Duration
	// holdFor is how long this replica, not leading, writes no record naming it after such a
	// write came back too late to count: each write renews the lease in the others' eyes, so
	// a replica whose every write is too slow would keep them waiting for ever, leading never.
	holdFor time.Duration

	mu      sync.Mutex
	id      string
	spec    swarm.ConfigSpec
	version swarm.Version
	known   bool // version is the object's current one as far as this process wrote or read
	// counted says a write naming this replica counted in this term (it leads, as client-go
	// sees it); holdUntil is when it may write a record naming it again (see holdFor).
	counted   bool
	holdUntil time.Time

	// wrote says this process's last write of the record named it the holder.
	wrote atomic.Bool
}

var _ rl.Interface = (*configLock)(nil)

// leaseRecord is the label's JSON. Its times keep nanoseconds: client-go's record marshals
// them to whole seconds, and a candidate sees a renew only when the bytes change, so two renews
// within one second would look like one and the lease would expire up to a second early.
type leaseRecord struct {
	Holder          string    `json:"holderIdentity"`
	LeaseSeconds    int       `json:"leaseDurationSeconds"`
	AcquireTime     time.Time `json:"acquireTime"`
	RenewTime       time.Time `json:"renewTime"`
	Transitions     int       `json:"leaderTransitions"`
	Strategy        string    `json:"strategy,omitempty"`
	PreferredHolder string    `json:"preferredHolder,omitempty"`
}

func marshalLease(r rl.LeaderElectionRecord) ([]byte, error) {
	return json.Marshal(leaseRecord{r.HolderIdentity, r.LeaseDurationSeconds, r.AcquireTime.Time, r.RenewTime.Time,
		r.LeaderTransitions, string(r.Strategy), r.PreferredHolder})
}

func (l *configLock) Get(ctx context.Context) (*rl.LeaderElectionRecord, []byte, error) {
	cfg, err := l.inspect(ctx)
	if err != nil {
		return nil, nil, err
	}
	raw := []byte(cfg.Spec.Labels[LeaseLabel])
	var rec leaseRecord
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &rec); err != nil {
			return nil, nil, fmt.Errorf("lease %s: label %s is not a lease record (%v): remove the config with `docker config rm %s`", l.name, LeaseLabel, err, l.name)
		}
	}
	return &rl.LeaderElectionRecord{
		HolderIdentity: rec.Holder, LeaseDurationSeconds: rec.LeaseSeconds,
		AcquireTime: metav1.NewTime(rec.AcquireTime), RenewTime: metav1.NewTime(rec.RenewTime),
		LeaderTransitions: rec.Transitions, Strategy: coordinationv1.CoordinatedLeaseStrategy(rec.Strategy), PreferredHolder: rec.PreferredHolder,
	}, raw, nil
}

// bounded is ctx limited to one call's time.
func (l *configLock) bounded(ctx context.Context) (context.Context, context.CancelFunc) {
	if l.callTimeout <= 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, l.callTimeout)
}

// inspect reads the lease object and remembers its version.
func (l *configLock) inspect(ctx context.Context) (swarm.Config, error) {
	ctx, cancel := l.bounded(ctx)
	defer cancel()
	cfg, _, err := l.engine.ConfigInspectWithRaw(ctx, l.name)
	if cerrdefs.IsNotFound(err) {
		return cfg, apierrors.NewNotFound(schema.GroupResource{Resource: "configs"}, l.name)
	}
	if err != nil {
		return cfg, fmt.Errorf("read lease %s: %w", l.name, err)
	}
	if cfg.Spec.Name != l.name || cfg.Spec.Labels[manifests.LabelOwner] != l.owner {
		return cfg, fmt.Errorf("config %s exists but is not the lease of owner %q: remove it with `docker config rm %s` or choose another --owner", l.name, l.owner, l.name)
	}
	l.mu.Lock()
	l.id, l.spec, l.version, l.known = cfg.ID, cfg.Spec, cfg.Version, true
	l.mu.Unlock()
	return cfg, nil
}

func (l *configLock) Create(ctx context.Context, ler rl.LeaderElectionRecord) error {
	raw, err := marshalLease(ler)
	if err != nil {
		return err
	}
	s := swarm.ConfigSpec{
		Annotations: swarm.Annotations{Name: l.name, Labels: map[string]string{manifests.LabelOwner: l.owner, LeaseLabel: string(raw)}},
		Data:        []byte("leader lease of the swarm-reconciler replicas of owner " + l.owner + "\n"),
	}
	if err := l.holding(ler); err != nil {
		return err
	}
	cctx, cancel := l.bounded(ctx)
	defer cancel()
	start := time.Now()
	if _, err := l.engine.ConfigCreate(cctx, s); err != nil {
		return fmt.Errorf("create lease %s: %w", l.name, err)
	}
	l.wrote.Store(ler.HolderIdentity == l.identity)
	return l.timely(ler, start, l.confirm(ctx, raw))
}

// timely is err, or an error when the write that began at start took longer than maxTrip to
// be confirmed: client-go counts a renew from when it returns, and the others may have seen it
// up to that long before; a write that took longer is not counted (the next try reads the
// record and renews again).
//
// Only a record naming this replica is timed: a release gives nobody the right to act. A
// record naming it that does not count, written while it does not lead, makes it write none
// for holdFor, so that the others, who saw it written, may take the lease.
func (l *configLock) timely(ler rl.LeaderElectionRecord, start time.Time, err error) error {
	if ler.HolderIdentity != l.identity || err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if took := time.Since(start); l.maxTrip > 0 && took > l.maxTrip {
		msg := ""
		if !l.counted && l.holdFor > 0 {
			l.holdUntil = time.Now().Add(l.holdFor)
			msg = fmt.Sprintf("; leaving the lease to the other replicas for %s", l.holdFor)
		}
		return fmt.Errorf("lease %s: the write took %s to confirm, more than the %s the lease's timing leaves: not counted%s (is this manager overloaded, or far from swarm's Raft leader?)",
			l.name, took.Round(time.Millisecond), l.maxTrip, msg)
	}
	l.counted = true
	return nil
}

// holding refuses a record naming this replica while it leaves the lease to the others.
func (l *configLock) holding(ler rl.LeaderElectionRecord) error {
	if ler.HolderIdentity != l.identity {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if until := l.holdUntil; time.Now().Before(until) {
		return fmt.Errorf("lease %s: not taken until %s: this replica's last write came back too late to count", l.name, until.Format(time.RFC3339))
	}
	return nil
}

// newTerm starts an election afresh: nothing this replica wrote counts for it any more.
func (l *configLock) newTerm() {
	l.mu.Lock()
	l.counted = false
	l.mu.Unlock()
}

func (l *configLock) Update(ctx context.Context, ler rl.LeaderElectionRecord) error {
	raw, err := marshalLease(ler)
	if err != nil {
		return err
	}
	if err := l.holding(ler); err != nil {
		return err
	}
	l.mu.Lock()
	if !l.known {
		l.mu.Unlock()
		return fmt.Errorf("update lease %s: its version is not known: read it first", l.name)
	}
	id, version, s := l.id, l.version, l.spec
	s.Labels = make(map[string]string, len(l.spec.Labels))
	for k, v := range l.spec.Labels {
		s.Labels[k] = v
	}
	l.known = false // whatever happens next, the version read is spent
	l.mu.Unlock()
	s.Labels[LeaseLabel] = string(raw)
	uctx, cancel := l.bounded(ctx)
	defer cancel()
	start := time.Now()
	if err := l.engine.ConfigUpdate(uctx, id, version, s); err != nil {
		return fmt.Errorf("update lease %s: %w", l.name, err)
	}
	l.wrote.Store(ler.HolderIdentity == l.identity)
	return l.timely(ler, start, l.confirm(ctx, raw))
}

// confirm reads the version our write made. Swarm's update returns none, and the store's index
// is global, not a per-object counter, so it has to be read; if anybody wrote after us, the
// version is not ours to renew from, and the write counts as lost.
func (l *configLock) confirm(ctx context.Context, raw []byte) error {
	cfg, err := l.inspect(ctx)
	if err != nil {
		l.mu.Lock()
		l.known = false
		l.mu.Unlock()
		return nil // the write went through; the next renew reads the version first
	}
	if !bytes.Equal([]byte(cfg.Spec.Labels[LeaseLabel]), raw) {
		l.mu.Lock()
		l.known = false
		l.mu.Unlock()
		return fmt.Errorf("lease %s changed right after our write", l.name)
	}
	return nil
}

func (l *configLock) RecordEvent(s string) { l.log.V(1).Info("lease event", "event", s) }
func (l *configLock) Identity() string     { return l.identity }
func (l *configLock) Describe() string     { return "config/" + l.name }

// DefaultStopWithin is the StopWithin of an Election that sets none.
const DefaultStopWithin = 3 * time.Second

// Election runs a controller only while this replica holds the lease: client-go's
// leaderelection (its timing proven by every Kubernetes controller) over configLock.
type Election struct {
	Engine   LeaseEngine
	Owner    string
	Identity string
	// LeaseDuration is how long a candidate waits, on its own monotonic clock, after it last
	// saw the record change before it takes the lease; RenewDeadline how long the leader keeps
	// acting without a successful renew; RetryPeriod how often both try.
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
	// StopWithin bounds the wait for the controller to stop after the lease is lost; past it
	// Stuck is called (the process should exit: the lease expires for the others soon).
	StopWithin time.Duration
	Stuck      func()
	// Role is called with true when this replica starts leading and false when it stops.
	Role func(leading bool)
	Log  logr.Logger

	leader atomic.Value // string: the holder last seen
}

// Leader is the identity of the lease holder this replica last saw ("" if none yet).
func (e *Election) Leader() string {
	s, _ := e.leader.Load().(string)
	return s
}

// Run campaigns for the lease until ctx ends. While this replica leads, lead runs with a
// context that ends when the lease is lost or ctx ends; lead must return soon after. Each
// term calls lead afresh, so a new leader starts from nothing (a full resync). When ctx ends,
// a held lease is released once lead has returned, so the next replica takes over within one
// retry period.
func (e *Election) Run(ctx context.Context, lead func(ctx context.Context)) error {
	lock := &configLock{engine: e.Engine, name: LeaseName(e.Owner), owner: e.Owner, identity: e.Identity, log: e.Log,
		callTimeout: 2 * e.RetryPeriod}
	stopWithin := e.StopWithin
	if stopWithin <= 0 {
		stopWithin = DefaultStopWithin
	}
	// The slack leaseTiming leaves between a leader cut off having stopped and the others
	// taking the lease: a renew's answer may come back no later than that after its write.
	if slack := e.LeaseDuration - e.RetryPeriod - e.RenewDeadline - stopWithin; slack > 0 {
		lock.maxTrip = slack
		// Long enough for a candidate that saw the write, trying every retry period stretched
		// by client-go's jitter (up to 2.2 times), to find the lease expired and take it.
		lock.holdFor = e.LeaseDuration + 5*e.RetryPeriod
	}
	for ctx.Err() == nil {
		lock.newTerm()
		var (
			mu      sync.Mutex
			stopped bool
			running chan struct{}
			gaveUp  bool // lead returned while the lease was still held
		)
		term, endTerm := context.WithCancel(ctx)
		le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
			Lock:          lock,
			Name:          lock.name,
			LeaseDuration: e.LeaseDuration,
			RenewDeadline: e.RenewDeadline,
			RetryPeriod:   e.RetryPeriod,
			Callbacks: leaderelection.LeaderCallbacks{
				OnStartedLeading: func(lctx context.Context) {
					mu.Lock()
					if stopped || lctx.Err() != nil {
						mu.Unlock()
						return
					}
					running = make(chan struct{})
					mu.Unlock()
					defer close(running)
					e.Log.Info("became leader: reconciling", "identity", e.Identity, "lease", lock.Describe())
					e.role(true)
					lead(lctx)
					if lctx.Err() == nil {
						// The controller stopped on its own (it could not start): a leader
						// that does not reconcile must not keep the lease.
						mu.Lock()
						gaveUp = true
						mu.Unlock()
						endTerm()
					}
				},
				OnStoppedLeading: func() {
					mu.Lock()
					stopped = true
					r := running
					mu.Unlock()
					if r == nil {
						// Never led in this term. Stopped in the moment it took the lease
						// (client-go starts OnStartedLeading after the acquire, and it saw
						// the end): no worker ever ran, so the lease is given up at once, or
						// the next replica waits the whole lease. A replica that never took
						// it asks the engine nothing.
						if ctx.Err() != nil && lock.wrote.Load() {
							e.release(lock)
						}
						return
					}
					select {
					case <-r:
					case <-time.After(stopWithin):
						e.Log.Error(errors.New("workers still running"), "lease lost and the controller did not stop in time", "within", stopWithin.String())
						if e.Stuck != nil {
							e.Stuck()
						}
						<-r
					}
					e.role(false)
					switch {
					case ctx.Err() != nil:
						e.release(lock)
						e.Log.Info("stopped leading: shutting down; lease released", "identity", e.Identity)
						return
					case gaveUp:
						e.release(lock)
						e.Log.Info("stopped leading: the controller stopped; lease released, campaigning again after a retry period", "identity", e.Identity)
						return
					}
					// The next term's elector reports a leader only once it reads the record:
					// until then (its manager cut off) this replica is sure not to lead.
					e.leader.CompareAndSwap(e.Identity, "")
					e.Log.Info("stopped leading: lease lost; every worker stopped, campaigning again", "identity", e.Identity)
				},
				OnNewLeader: func(id string) {
					e.leader.Store(id)
					if id != e.Identity {
						e.Log.Info("leader", "identity", id)
					}
				},
			},
		})
		if err != nil {
			return fmt.Errorf("leader election: %w", err)
		}
		le.Run(klog.NewContext(term, e.Log.WithName("lease")))
		endTerm()
		if gaveUp {
			select {
			case <-ctx.Done():
			case <-time.After(e.RetryPeriod):
			}
		}
	}
	return nil
}

func (e *Election) role(leading bool) {
	if e.Role != nil {
		e.Role(leading)
	}
}

// release gives the lease up (an empty holder, as client-go's own release writes) if this
// replica still holds it. It runs only after every worker has stopped: client-go's
// ReleaseOnCancel would release while they may still be running.
func (e *Election) release(lock *configLock) {
	ctx, cancel := context.WithTimeout(context.Background(), e.RenewDeadline)
	defer cancel()
	rec, _, err := lock.Get(ctx)
	if err != nil || rec.HolderIdentity != e.Identity {
		return
	}
	now := metav1.NewTime(time.Now())
	if err := lock.Update(ctx, rl.LeaderElectionRecord{LeaderTransitions: rec.LeaderTransitions, LeaseDurationSeconds: 1, RenewTime: now, AcquireTime: now}); err != nil {
		e.Log.Info("lease not released; it expires on its own", "error", err.Error())
	}
}
