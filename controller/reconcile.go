package controller

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/swarm"
	"github.com/go-logr/logr"

	"github.com/swarm-reconciler/reconciler/locks"
	"github.com/swarm-reconciler/reconciler/manifests"
	"github.com/swarm-reconciler/reconciler/spec"
	"github.com/swarm-reconciler/reconciler/swarmstate"
)

// Result tells the queue when to come back to an app that is waiting on swarm.
type Result struct {
	// RequeueAfter, when positive, reconciles the app again after that long.
	RequeueAfter time.Duration
	// TasksFor, when positive, says the app waits on its tasks alone (to start, to turn
	// healthy, to be replaced) for at most that long: until then, a look after RequeueAfter
	// runs a pass only if swarm's task list has moved since this pass, and comes again
	// otherwise. What else a waiting app can be waiting for (a service's update state) comes
	// as an engine event, which runs a pass at once.
	TasksFor time.Duration
	// Job says the pass ran a backup or restore: bounded by the spec's timeout, not by the
	// pass's (a large volume takes minutes).
	Job bool
}

// Reconciler converges one app at a time: Reconcile(app) re-reads the spec file and a fresh
// snapshot of the swarm, never trusting what triggered it.
type Reconciler struct {
	Engine     Engine
	SpecsDir   string
	StatusDir  string
	RecipesDir string
	Defaults   spec.Defaults
	// StatusRetention is how long a Deleted status file stays before it is removed.
	StatusRetention time.Duration
	// Now is the clock; tests pass their own.
	Now func() time.Time
	// Log is the logger when the context of a pass carries none (logr.NewContext).
	Log logr.Logger

	// Owner is this reconciler's identity (locks.SpecDirID of its spec directory), stamped on
	// everything it creates. Only objects carrying it and the app's label are used, changed or
	// removed; the janitor's Owner is empty, and it sweeps orphans of every spec directory.
	Owner string

	// Locks, when set, is where app locks are taken: an app is only acted on by the process
	// holding its lock, and an orphan whose lock is held elsewhere is left alone.
	Locks *locks.Dir
	// ProbeLocks: take an app's lock only to see that nobody else holds it, and release it at
	// once (a replica of --leader-elect, whose lease already makes it the only one acting).
	ProbeLocks bool

	// Remote, when set, clones recipes missing from RecipesDir and fetches versions their
	// repositories lack (--recipe-url).
	Remote *manifests.Remote

	// Backups is where backups are written and read (--backups).
	Backups spec.BackupStore
	// BackupEngine moves backups in and out of containers; nil: Engine, when it can.
	BackupEngine BackupEngine

	// Metrics, when set, records reconcile outcomes, times to Ready and teardown times.
	Metrics *Metrics

	// Policy is what the apps' services may ask of the host (--policy); the zero value allows
	// everything.
	Policy manifests.Policy

	// NodeJobs is what removes the app's volumes on other nodes (--node-image, --node-socket);
	// zero: DefaultNodeJobs.
	NodeJobs NodeJobs

	// MaxDeploying bounds the installs and upgrades in progress at once (--max-deploying;
	// slots.go); 0: no bound. MaxRemoving bounds the teardowns whose services are stopping
	// (--max-removing).
	MaxDeploying, MaxRemoving int

	// Step, when set, is called after every change made to the swarm, with its running
	// count. Fault-injection tests use it to kill the process at each step in turn.
	Step func(n int64, a Action)

	// observed is told which stack an app uses, so engine events can be routed to it, and
	// stack "" once nothing of the app is left.
	observed func(app, stack string)

	mu       sync.Mutex
	renders  map[string]*manifests.Rendered // by app, for the generation it was rendered from
	renderG  map[string]string
	steps    atomic.Int64
	held     map[string]*locks.Lock     // app locks by domain
	heldFor  map[string]map[string]bool // domain -> the apps its lock is held for
	stacks   map[string]string          // stack -> the app holding it (see stacks.go)
	probes   prober
	slots    slotQueue // deploy slots
	removals slotQueue
	seen     map[string]taskMark // app -> what its last pass saw of its tasks (TasksMoved)
	node     string              // this engine's swarm node ID, once known
	nodeList nodeCache
	// overlayDirs are the folders of the specs' overlay files, as of the last scan.
	overlayDirs []string
	// inventoried says the other nodes were asked for the volumes of orphans (sweepNodes);
	// found holds what they answered, by app, until the app's next pass takes it.
	inventoried bool
	found       map[string]nodeFinding
	// asking is true while the inventory runs; answered holds, from then until its findings
	// are taken, the nodes each app's volume jobs answered for (noteAnswered).
	asking   bool
	answered map[string]map[string]bool
	// enqueue, set by the loop (Controller.Run), asks for a pass of an app; the inventory
	// then runs beside the workers and hands the apps it found to it.
	enqueue func(app string)
	// decided, in tests, is called by each pass between its first decision and the take of a
	// slot: passes that all decided before any took one are the race take settles.
	decided func(app string)
	// unwritten holds, by app, the last status a write failed to store: the next pass starts
	// from it, so an attempt's deadline and a ttl hold while the status directory is read-only.
	unwritten map[string]*spec.Status
}

// taskMark is what a pass saw of an app's tasks: its services' IDs and swarmstate.TaskKey of
// their tasks.
type taskMark struct {
	services []string
	key      string
}

// TasksMoved reports whether the tasks of app's services differ from what its last pass saw,
// at the cost of one task list call where a pass costs six: the loop's looks after a task event
// run a pass only when swarm's task list has caught up with the event. An app no pass has
// seen, and an engine that does not answer, count as moved.
func (r *Reconciler) TasksMoved(ctx context.Context, app string) bool {
	r.mu.Lock()
	m, ok := r.seen[app]
	r.mu.Unlock()
	if !ok || len(m.services) == 0 {
		return true
	}
	tasks, err := swarmstate.ServiceTasks(ctx, r.Engine, m.services)
	return err != nil || swarmstate.TaskKey(tasks) != m.key
}

// maxRounds bounds the looks of one pass: support objects, then the services that refer to
// them, then an upgrade's second stage.
const maxRounds = 3

// Reconcile makes the swarm match the spec of app and writes the app's status file. A pass
// is observe -> decide -> act -> write: decide (decide.go) is pure, and this function only
// reads, carries out the decision and writes the status, once, on every exit.
//
// The error contract: a returned error is transient (the engine did not answer, an apply
// failed) and the caller retries with exponential backoff; the status keeps its phase (an app
// whose spec is gone is Deleting, whatever its phase was) and says "retrying". Faults that
// waiting will not fix (a bad spec, an unknown version, a rollback, a name held by an object we
// do not own, a timeout) are not errors: they are written to the status as Invalid or Failed,
// final for that generation, and not retried until the spec file changes. A positive
// RequeueAfter means the app waits on swarm. A pass cut short by ctx writes no error into the
// status.
func (r *Reconciler) Reconcile(ctx context.Context, app string) (Result, error) {
	log := logr.FromContextOrDiscard(ctx)
	if log.GetSink() == nil {
		log = r.Log.WithValues("app", app)
	}
	// A pass that ends before it records what it decided (an error) leaves the queues of
	// deploy and removal slots (slots.go: drop).
	recorded := false
	defer func() {
		if !recorded {
			r.wake(append(r.slots.drop(app, r.MaxDeploying), r.removals.drop(app, r.MaxRemoving)...))
		}
	}()
	prev, err := spec.ReadStatus(r.StatusDir, app)
	onDisk := prev // what the write compares with: the file, whatever the pass starts from
	if kept := r.unwrittenStatus(app); kept != nil {
		// The status directory took no writes when this app's status last changed: that
		// status, not the stale file, is where its attempt and ttl stand.
		prev, err = kept, nil
	}
	switch {
	case errors.Is(err, spec.ErrNotStatus):
		// Edited by hand, or cut short under another tool: this pass writes a status of the
		// live state in its place, as for an app never reported.
		log.Error(err, "the status file is replaced by one of the live state")
		prev = nil
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		return Result{}, fmt.Errorf("read status of %s: %w", app, err)
	}
	if gen, ok := r.slots.idle(app, r.MaxDeploying); ok && r.oneNode() && prev != nil && prev.Phase == spec.PhasePending && prev.ObservedGeneration == gen {
		if d, err := r.loadSpec(app); err == nil && d != nil && d.Err == nil && d.Spec != nil && d.Generation == gen {
			// Queued, its spec and status the same, and no slot for it yet: still queued
			// (slots.go), unless its ttl is due: decide reaps it.
			after := queuedAfter(r.enqueue != nil)
			exp, ttl := expiresAt(d.Spec, prev)
			if left := exp.Sub(r.Now()); !ttl || left > 0 {
				if ttl {
					after = min(after, left)
				}
				recorded = true
				return Result{RequeueAfter: after}, nil
			}
		}
	}
	if gen, ok := r.removals.idle(app, r.MaxRemoving); ok && r.oneNode() && prev != nil && prev.Phase == spec.PhaseDeleting {
		if d, err := r.loadSpec(app); err == nil && (d == nil && gen == "" || d != nil && d.Err == nil && d.Spec != nil && d.Generation == gen) {
			// Its teardown queued, the spec still gone (or still past its ttl), no slot for it
			// yet: still queued.
			recorded = true
			return Result{RequeueAfter: queuedAfter(r.enqueue != nil)}, nil
		}
	}
	last, free := prev, map[string]bool{}
	ranJob, keep := false, 0
	// unseen ends a pass that could not see the swarm: the status says so, unless cut short.
	unseen := func(err error, specGone bool) (Result, error) {
		d, write := decideUnseen(last, specGone, err)
		if errors.Is(ctx.Err(), context.Canceled) || !write {
			return Result{}, err
		}
		return Result{}, errors.Join(err, r.write(onDisk, d, r.Now()))
	}
	for round := 1; ; round++ {
		w, err := r.observe(ctx, app, last, free)
		if err != nil {
			return unseen(err, w != nil && w.Desired == nil)
		}
		w.Slots = r.slots.view(app, r.MaxDeploying, r.enqueue != nil)
		w.Removals = r.removals.view(app, r.MaxRemoving, r.enqueue != nil)
		d := decide(w)
		if r.decided != nil {
			r.decided(app)
		}
		for d.Starts && !r.slots.take(app, r.MaxDeploying) || d.Removes && !r.removals.take(app, r.MaxRemoving) {
			// Another app's pass took the slot this one saw free: decided again, queued.
			w.Slots = r.slots.view(app, r.MaxDeploying, r.enqueue != nil)
			w.Removals = r.removals.view(app, r.MaxRemoving, r.enqueue != nil)
			d = decide(w)
		}
		if d.Phase == spec.PhaseReady {
			// The managers' word that the tasks are up, checked against this node's own before
			// a Ready is written (nodes.go): one call where a Ready is at stake, not one every
			// pass of every waiting app.
			corrected, err := r.localTruth(ctx, w)
			if err != nil {
				return unseen(err, false)
			}
			if corrected {
				d = decide(w)
			}
		}
		done, err := r.act(ctx, log, w, d)
		if err == nil && d.Job != nil {
			d = r.runJob(ctx, log, w, d)
			ranJob = true
		}
		if errors.Is(ctx.Err(), context.Canceled) {
			// Cut short by the process stopping: no "context canceled" in the status. A pass
			// past its own deadline goes on, and says it is retrying.
			return Result{}, errors.Join(err, ctx.Err())
		}
		d, err = outcome(d, done, err, w.Now)
		r.settle(w, d)
		if d.KeepBackups > 0 {
			keep = d.KeepBackups // a round that goes on still owes the pruning
		}
		if d.Again && round < maxRounds {
			last = d.status(w.Now)
			continue
		}
		gen := ""
		if w.Desired != nil {
			gen = w.Desired.Generation
		}
		recorded = true
		// A slot freed: the apps it lets in go on now.
		r.wake(append(r.slots.record(app, r.MaxDeploying, d.holdsSlot(), d.Queued, gen),
			r.removals.record(app, r.MaxRemoving, d.holdsRemoval(), d.RemoveQueued, gen)...))
		if werr := r.write(onDisk, d, w.Now); werr != nil {
			return Result{}, errors.Join(err, werr)
		}
		r.pruneBackups(log, app, keep)
		return Result{RequeueAfter: d.After, TasksFor: d.TasksFor, Job: ranJob}, err
	}
}

// wake enqueues the apps a freed slot lets in (slots.go).
func (r *Reconciler) wake(apps []string) {
	if r.enqueue == nil {
		return
	}
	for _, app := range apps {
		r.enqueue(app)
	}
}

// oneNode says the swarm is known to have one node: only there may a look at a queued app
// read its spec alone. On a swarm of several, every look is a full pass, which records the
// nodes the app's tasks run on (recordNodes) while it waits: a task that ran on another node
// could leave swarm's task history (five a slot) before the app leaves the queue, and a
// teardown would then not know of its volumes there.
func (r *Reconciler) oneNode() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.nodeList.self != "" && r.nodeList.count <= 1
}

// observe reads what one pass decides from: the spec, the status, the app's objects, its lock,
// and for a valid spec the recipe rendered at this pass's version, with the unowned objects
// that hold any name it needs. The clock is read last: a phase is stamped with when the world
// was seen, not with when the pass began (the list calls take tens of ms on a busy engine).
//
// free holds the names ("kind name") found free earlier in the same pass: an object of ours
// created since holds each, so they are not looked up again.
//
// With an error, the world returned holds the spec if it was read (nil if not even that): a
// pass that cannot see the swarm still knows whether the app is to be torn down.
func (r *Reconciler) observe(ctx context.Context, app string, prev *spec.Status, free map[string]bool) (*world, error) {
	w := &world{App: app, Owner: r.owner(app)}
	var err error
	if w.Desired, err = r.loadSpec(app); err != nil {
		return nil, fmt.Errorf("load spec of %s: %w", app, err)
	}
	prev = r.withFinding(app, prev, w.Desired != nil)
	w.Prev = prev
	if w.Snap, err = swarmstate.Take(ctx, r.Engine, w.Owner); err != nil {
		return w, fmt.Errorf("snapshot of %s: %w", app, err)
	}
	w.SnapAt = r.Now()
	var several bool
	if w.Self, several, err = r.selfNode(ctx); err != nil {
		return w, err
	}
	if several || remoteTasks(w.Snap, prev, w.Self) {
		if w.Nodes, err = r.swarmNodes(ctx); err != nil {
			return w, err
		}
	}
	w.Jobs = r.NodeJobs
	if w.Jobs.Image == "" {
		w.Jobs = DefaultNodeJobs
	}
	w.JobStopped = r.jobStopped(ctx, w.Snap)
	st := prev
	if st == nil {
		st = &spec.Status{}
	}
	if w.Desired == nil || w.Desired.Spec == nil {
		if domain := domainOf(st, w.Snap); domain != "" && (!w.Snap.Empty() || len(st.Nodes) > 0) {
			w.Lock, err = r.claimTeardown(w, st, domain)
		}
		w.Now = r.Now()
		return w, err
	}
	s := w.Desired.Spec
	if w.Stack, w.StackErr = spec.StackName(s.Domain); w.StackErr != nil {
		w.Now = r.Now()
		return w, nil
	}
	if w.Lock, err = r.claimed(app, s.Domain); err != nil || w.Lock != nil {
		w.Now = r.Now()
		return w, err
	}
	for ns, g := range w.Snap.ByStack() {
		if ns != w.Stack {
			domain := domainOf(&spec.Status{}, g)
			if w.OldLocks == nil {
				w.OldLocks = map[string]error{}
			}
			if w.OldLocks[domain], err = r.claimed(app, domain); err != nil {
				return nil, err
			}
		}
	}
	cur := w.Snap.ByStack()[w.Stack]
	if cur == nil {
		cur = &swarmstate.Snapshot{}
	}
	if err := r.observeRender(ctx, w, cur, free); err != nil {
		return nil, err
	}
	// A run the status shows Running needs the plan and the store whatever the spec says now
	// (it may have lost its backup section since): the post-hooks a restore owes, a backup
	// found committed. So do the post-hooks an interrupted restore still owes.
	running := st.LastBackup != nil && st.LastBackup.State == spec.RunRunning ||
		st.LastRestore != nil && st.LastRestore.State == spec.RunRunning || len(stillOwedPostHooks(st)) > 0
	if w.Rendered != nil && (s.Tier == spec.TierBackup || s.Backup != nil || running) {
		w.Backup, w.BackupErr = w.Rendered.BackupPlan()
		if b := st.LastBackup; b != nil && b.State == spec.RunRunning {
			if m, err := r.Backups.Manifest(app, b.ID); err == nil {
				w.Committed = m
			}
		}
		restoreNewest := s.Backup != nil && s.Backup.Restore != nil && s.Backup.Restore.ID == "" && (prev == nil || prev.LastHandledRestoreAt != s.Backup.Restore.RequestedAt)
		// A status that names no backup yet (a new app, or one made again after its status
		// went) cannot say which ID the next must follow: the store can (newBackupID).
		if restoreNewest || st.LastBackup == nil || !spec.ValidBackupID(st.LastBackup.ID) {
			w.Backups, w.BackupsErr = r.Backups.ListOf(app, r.Owner)
		}
	}
	if prev == nil || prev.ObservedGeneration != w.Desired.Generation || !prev.Phase.Final() {
		// A final status is not rewritten (decide leaves it as it is): no logs to read for it.
		w.Logs = failedTaskLogs(ctx, r.Engine, cur, prev, s.Env)
	}
	w.Probe = func() probeResult { return r.probes.check(ctx, app, s) }
	w.Now = r.Now()
	return w, nil
}

// observeRender renders the recipe at the version this pass deploys, converts its services
// (secret and config IDs from the snapshot: no engine call), and looks up who holds the names
// of the objects not yet in cur.
func (r *Reconciler) observeRender(ctx context.Context, w *world, cur *swarmstate.Snapshot, free map[string]bool) error {
	s := w.Desired.Spec
	version := s.Version
	if c := w.Desired.DeployedCommit(w.Prev); c != "" {
		version = c // the ref was resolved when this attempt began
	}
	if _, stage := attempt(w.Desired, w.Prev, len(cur.Services)); stage == upgradeFrom {
		var err error
		if version, err = r.upgradeFrom(ctx, s); err != nil {
			if errors.As(err, &w.FetchErr) {
				return nil
			}
			if !errors.Is(err, manifests.ErrInput) {
				return err
			}
			w.RenderErr = err
			return nil
		}
	}
	rendered, err := r.render(ctx, w.Desired, w.Stack, version)
	if errors.As(err, &w.FetchErr) {
		return nil // decide says whether to wait for the remote
	}
	if errors.Is(err, manifests.ErrInput) {
		w.RenderErr = err
		return nil
	} else if err != nil {
		return err
	}
	w.Rendered = rendered
	secrets, configs := map[string]string{}, map[string]string{}
	for _, o := range cur.Secrets {
		secrets[o.Spec.Name] = o.ID
	}
	for _, o := range cur.Configs {
		configs[o.Spec.Name] = o.ID
	}
	if w.Services, err = rendered.Services(ctx, manifests.LookupResolver(secrets, configs)); err != nil {
		return fmt.Errorf("convert services of %s: %w", rendered.Revision, err)
	}
	if denied, _ := rendered.CheckPolicy(r.Policy, w.Services); len(denied) > 0 {
		w.PolicyErr = &manifests.PolicyError{Level: r.Policy.Level, Violations: denied}
		return nil // nothing of it is created: no names to look up
	}
	missing := missingNames(rendered, w.Services, cur, free)
	if missing.Empty() {
		return nil
	}
	holders, err := swarmstate.Holders(ctx, r.Engine, missing)
	if err != nil {
		return fmt.Errorf("look up the names %s needs: %w", rendered.Revision, err)
	}
	for _, o := range holders {
		switch {
		case w.Owner.Owns(o.Labels):
		case r.leaving(o.Labels, w.App, w.Stack):
			w.Leaving = append(w.Leaving, o)
		default:
			w.Foreign = append(w.Foreign, o)
		}
	}
	if len(w.Foreign)+len(w.Leaving) == 0 {
		for kind, names := range missing.All() {
			for _, n := range names {
				free[kind+" "+n] = true
			}
		}
	}
	return nil
}

// leaving reports whether labels mark an object of this reconciler (its owner label) of an
// app other than app that is leaving stack: its spec is gone, or maps to another stack. Its
// teardown or move removes the object; an app whose spec is invalid touches nothing, and one
// whose spec maps to stack would hold the stack itself.
func (r *Reconciler) leaving(labels map[string]string, app, stack string) bool {
	other := labels[swarmstate.LabelApp]
	if r.Owner == "" || labels[swarmstate.LabelOwner] != r.Owner || other == "" || other == app {
		return false
	}
	d, err := spec.LoadApp(r.SpecsDir, other, r.Defaults)
	if err != nil {
		return false
	}
	if d == nil {
		return true
	}
	if d.Spec == nil {
		return false
	}
	s, err := spec.StackName(d.Spec.Domain)
	return err == nil && s != stack
}

// missingNames are the names of the objects a rendered app needs that cur does not hold:
// each may be held by an object we do not own, which a create would collide with or a
// service would silently use.
func missingNames(rendered *manifests.Rendered, services map[string]swarm.ServiceSpec, cur *swarmstate.Snapshot, free map[string]bool) swarmstate.Names {
	have := maps.Clone(free)
	for _, o := range cur.Services {
		have["service "+o.Spec.Name] = true
	}
	for _, o := range cur.Networks {
		have["network "+o.Name] = true
	}
	for _, o := range cur.Secrets {
		have["secret "+o.Spec.Name] = true
	}
	for _, o := range cur.Configs {
		have["config "+o.Spec.Name] = true
	}
	for _, o := range cur.Volumes {
		have["volume "+o.Name] = true
	}
	var n swarmstate.Names
	add := func(list *[]string, kind, name string) {
		if !have[kind+" "+name] {
			have[kind+" "+name] = true
			*list = append(*list, name)
		}
	}
	for _, name := range sortedKeys(services) {
		add(&n.Services, "service", name)
		if cs := services[name].TaskTemplate.ContainerSpec; cs != nil {
			for _, m := range cs.Mounts {
				// The stack's own named volumes carry our labels; external ones are not ours.
				if m.Type == mount.TypeVolume && m.Source != "" && m.VolumeOptions != nil && m.VolumeOptions.Labels != nil {
					add(&n.Volumes, "volume", m.Source)
				}
			}
		}
	}
	for _, name := range sortedKeys(rendered.Networks) {
		add(&n.Networks, "network", name)
	}
	for _, s := range rendered.Secrets {
		add(&n.Secrets, "secret", s.Name)
	}
	for _, g := range rendered.GeneratedSecrets {
		add(&n.Secrets, "secret", g.Name)
	}
	for _, c := range rendered.Configs {
		add(&n.Configs, "config", c.Name)
	}
	return n
}

// claimTeardown takes the app locks the teardown of an app without a spec needs, and returns
// why it must wait (another live process holds them) or nil. Each stack holding objects
// labelled with the app goes only under its own lock: a stack whose lock another process holds
// is dropped from the world (an app of that name deployed by another reconciler: the janitor's
// snapshot has every owner's; or by this one under another domain). domain is the status's,
// else the first found: with the status's held, the whole app waits, its volumes on other
// nodes with it; a guess held waits only when every stack is held, so an orphan is reaped
// whichever stack a snapshot lists first, and the domain taken is recorded (TeardownDomain)
// for the next passes.
func (r *Reconciler) claimTeardown(w *world, st *spec.Status, domain string) (held, err error) {
	primary, err := r.claimed(w.App, domain)
	if err != nil || primary != nil && st.Domain != "" {
		return primary, err
	}
	taken := ""
	if primary == nil {
		taken = domain
	}
	drop := map[string]bool{}
	for ns, g := range w.Snap.ByStack() {
		if ns == "" {
			continue
		}
		d := domainOf(&spec.Status{}, g)
		other := primary
		if d != domain {
			if other, err = r.claimed(w.App, d); err != nil {
				return nil, err
			}
		}
		switch {
		case other != nil:
			drop[ns] = true
		case primary != nil && (taken == "" || d < taken):
			taken = d // the guess is another's: record one of the stacks taken, the same each pass
		}
	}
	if taken == "" {
		return primary, nil // every stack held by another process: not an orphan of ours
	}
	if st.Domain == "" {
		w.TeardownDomain = taken
	}
	w.Snap = w.Snap.Without(drop)
	return nil, nil
}

// claimed takes the app lock of domain for app: nil when this process holds it, the reason
// when another live process does, and an error when the lock cannot be taken at all.
func (r *Reconciler) claimed(app, domain string) (held, err error) {
	if err := r.claim(app, domain); errors.Is(err, errLockHeld) {
		return err, nil
	} else if err != nil {
		return nil, err
	}
	return nil, nil
}

// act carries out a decision: its checks, then the deploy is counted and the status written
// when it asks for it, then its actions in order.
// A deploy stops at the first error; a teardown tries every removal and joins the errors. It
// returns the actions that changed the swarm.
func (r *Reconciler) act(ctx context.Context, log logr.Logger, w *world, d decision) ([]Action, error) {
	for _, a := range d.Checks {
		if _, err := apply(ctx, r.Engine, w.Owner, a); err != nil {
			return nil, err
		}
	}
	d.deployed(w.Now)
	if d.Persist {
		if err := r.persist(d.status(w.Now), w.Now); errors.Is(err, errStatusStore) {
			// The status cannot be written at all (read-only, full): recording the attempt first
			// cannot be done, and holding the deploy back would not make it possible. The
			// swarm is reconciled; the pass's last write reports the error.
			log.Error(err, "deploying without recording the attempt first")
		} else if err != nil {
			return nil, err
		}
	}
	var (
		done      []Action
		errs      []error
		rollbacks []string // what failed of the verdict's rollbacks
		verdict   string
	)
	for _, a := range d.Actions {
		changed, err := apply(ctx, r.Engine, w.Owner, a)
		if err != nil {
			switch {
			case a.Kind == RollbackService:
				// Each owed rollback is tried; the verdict is said once, then what failed.
				rollbacks, verdict = append(rollbacks, err.Error()), a.Reason
				continue
			case !strings.HasPrefix(string(a.Kind), "remove "):
				return done, err
			}
			errs = append(errs, err)
			continue
		}
		if !changed {
			log.V(1).Info("already done", "action", string(a.Kind), "object", a.Name)
			continue
		}
		log.Info("applied", "action", string(a.Kind), "object", a.Name, "reason", a.Reason)
		done = append(done, a)
		if n := r.steps.Add(1); r.Step != nil {
			r.Step(n, a)
		}
	}
	if st := d.Status; st.FirstDeployedAt == nil && slices.ContainsFunc(done, func(a Action) bool {
		return a.Kind == CreateNetwork || a.Kind == CreateSecret || a.Kind == CreateConfig
	}) {
		// The app's first objects: its ttl counts from here, also when its services never
		// come (an image check that fails it), or what was made would outlive the ttl.
		st.FirstDeployedAt = &w.Now
	}
	if len(errs) == 0 {
		for _, a := range d.Prune {
			changed, err := apply(ctx, r.Engine, w.Owner, a)
			switch {
			case err != nil:
				log.Info("not pruned; the next pass tries again", "action", string(a.Kind), "object", a.Name, "error", err.Error())
			case changed:
				log.Info("applied", "action", string(a.Kind), "object", a.Name, "reason", a.Reason)
				if n := r.steps.Add(1); r.Step != nil {
					r.Step(n, a)
				}
			}
		}
	}
	if len(rollbacks) > 0 {
		errs = append(errs, terminal{fmt.Errorf("%s; %s", verdict, strings.Join(rollbacks, "; "))})
	}
	return done, errors.Join(errs...)
}

// settle updates what the process remembers of an app after a pass: its stack for routing
// engine events, its locks, its render and probe history, and the metrics of its phase change.
func (r *Reconciler) settle(w *world, d decision) {
	st := d.Status
	r.mark(w.App, w.Snap, d.Gone)
	r.noteAnswered(w.App, d.Answered)
	switch {
	case d.Gone:
		r.disown(w.App, "")
		r.forget(w.App)
		r.probes.forget(w.App)
		r.releaseStacks(w.App, "")
		if r.observed != nil {
			r.observed(w.App, "")
		}
	case d.Settled:
		r.disown(w.App, st.Domain)
		r.releaseStacks(w.App, st.Stack)
	}
	if !d.Gone && r.observed != nil && st.Stack != "" {
		r.observed(w.App, st.Stack)
	}
	if w.Prev != nil && w.Prev.ObservedGeneration != st.ObservedGeneration {
		r.probes.forget(w.App)
	}
	if r.Metrics == nil || w.Prev != nil && w.Prev.Phase == d.Phase {
		return
	}
	switch d.Phase {
	case spec.PhaseReady:
		// Spec written to Ready: a generation's first Ready, not an app's return from
		// Degraded (a crash, a repair) however old its spec.
		first := w.Prev == nil || w.Prev.ObservedGeneration != st.ObservedGeneration ||
			slices.Contains([]spec.Phase{spec.PhasePending, spec.PhaseDeploying, spec.PhaseUpgrading}, w.Prev.Phase)
		if first && w.Desired != nil && !w.Desired.ModTime.IsZero() {
			r.Metrics.TimeToReady.Observe(w.Now.Sub(w.Desired.ModTime).Seconds())
		}
	case spec.PhaseDeleted, spec.PhaseExpired:
		for i := len(st.History) - 1; i >= 0; i-- {
			if st.History[i].Phase == spec.PhaseDeleting {
				r.Metrics.TeardownSeconds.Observe(w.Now.Sub(st.History[i].Time).Seconds())
				break
			}
		}
	}
}

// mark remembers what this pass saw of app's tasks, for TasksMoved.
func (r *Reconciler) mark(app string, snap *swarmstate.Snapshot, gone bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if gone {
		delete(r.seen, app)
		return
	}
	m := taskMark{key: swarmstate.TaskKey(snap.Tasks)}
	for _, s := range snap.Services {
		m.services = append(m.services, s.ID)
	}
	if r.seen == nil {
		r.seen = map[string]taskMark{}
	}
	r.seen[app] = m
}

// write writes the status a decision leads to, if it differs from prev (the status read at
// the start of the pass), or removes a Deleted status past its retention.
func (r *Reconciler) write(prev *spec.Status, d decision, now time.Time) error {
	st := d.status(now)
	if st.Phase == "" {
		return nil // nothing to report: no spec, no objects, no status
	}
	if st.Phase == spec.PhaseDeleted && r.StatusRetention > 0 && prev != nil &&
		prev.Phase == spec.PhaseDeleted && now.Sub(prev.UpdatedAt) > r.StatusRetention {
		if err := spec.RemoveStatus(r.StatusDir, st.App); err != nil {
			return fmt.Errorf("remove status of %s: %w", st.App, err)
		}
		return nil
	}
	if !changed(prev, st) {
		return nil
	}
	return r.persist(st, now)
}

// persist writes the status now.
// unwrittenStatus is app's last status that could not be written, or nil.
func (r *Reconciler) unwrittenStatus(app string) *spec.Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	if st := r.unwritten[app]; st != nil {
		return cloneStatus(st)
	}
	return nil
}

// errStatusStore marks a status write that failed because the status directory takes no
// writes at all (read-only for this process), not for a moment.
var errStatusStore = errors.New("status store unwritable")

func (r *Reconciler) persist(st *spec.Status, now time.Time) error {
	st.UpdatedAt = now
	err := spec.WriteStatus(r.StatusDir, st)
	r.mu.Lock()
	if r.unwritten == nil {
		r.unwritten = map[string]*spec.Status{}
	}
	if err != nil {
		r.unwritten[st.App] = cloneStatus(st)
	} else {
		delete(r.unwritten, st.App)
	}
	r.mu.Unlock()
	if err != nil {
		switch {
		case errors.Is(err, syscall.EROFS), errors.Is(err, fs.ErrPermission):
			return fmt.Errorf("write status of %s: %w (%w: the status directory %s is read-only for this process: make it writable; the swarm is reconciled meanwhile, only the status is not written)", st.App, err, errStatusStore, r.StatusDir)
		case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
			// Unlike a read-only directory, a full disk holds changes back: what else on it
			// (recipes, backups) the next steps would write would fail half-way.
			return fmt.Errorf("write status of %s: %w (the disk of %s is full: free space; deploys wait until the status can be written)", st.App, err, r.StatusDir)
		}
		return fmt.Errorf("write status of %s: %w", st.App, err)
	}
	return nil
}

func summary(plan []Action) string {
	parts := make([]string, 0, len(plan))
	for _, a := range plan {
		if a.Kind != RequireImage && a.Kind != RequireNetwork {
			parts = append(parts, string(a.Kind)+" "+a.Name)
		}
	}
	return strings.Join(parts, ", ")
}
