package controller

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/docker/docker/api/types/swarm"

	"github.com/swarm-reconciler/reconciler/manifests"
	"github.com/swarm-reconciler/reconciler/spec"
	"github.com/swarm-reconciler/reconciler/swarmstate"
)

// The decision of one pass, as data. This file reads top to bottom: what a pass knows
// (world), what it decides (decision), decide and its three branches (an app to converge, an
// app to tear down, an app whose domain moved), and outcome, which folds what acting achieved
// back into the decision. Nothing here calls the engine or reads the clock: Reconcile
// observes, calls decide, acts, calls outcome and writes the status, in that order.
//
// Attempts and deadlines. A new generation of the spec starts an attempt, bounded by the
// spec's timeout: Pending, Deploying or Upgrading, then Ready, or Failed at the deadline. A
// converged app (Ready or Degraded for its generation) is never in such an attempt again:
// drift repaired, a crash, an engine that does not answer are Degraded while they last and
// Ready after; only a fault that waiting cannot fix (a name held by an object we do not own,
// an image that cannot be pulled) turns it Failed.

// world is everything one pass decides from, read before anything is decided.
type world struct {
	App string
	// Now is when the world was read.
	Now time.Time
	// SnapAt is when Snap was taken: how long a task has run is judged at this time, not at
	// Now, which comes after the reads that follow the snapshot (a render, a task's logs).
	SnapAt time.Time
	// Owner is whose objects this pass may use, change or remove.
	Owner swarmstate.Owner
	// Desired is the spec file as read this pass; nil when there is none.
	Desired *spec.Desired
	// Prev is the status last written; nil when there is none.
	Prev *spec.Status
	// Snap is every object of the app that Owner owns, across all its stacks.
	Snap *swarmstate.Snapshot
	// Self is the swarm node ID of the engine; Nodes are the swarm's nodes by ID, read when a
	// task of the app is on another node or the status records one (nil otherwise).
	Self  string
	Nodes map[string]swarm.Node
	// Jobs is what a teardown's volume jobs on other nodes run.
	Jobs NodeJobs
	// JobStopped are, by completed volume job task, the app's tasks whose stopped containers
	// that job removed (read from its output only where it matters: jobStoppedWanted).
	JobStopped map[string][]string
	// Stack is the stack of the spec's domain; StackErr says why there is none.
	Stack    string
	StackErr error
	// Lock says why the app's lock is not this process's (another live process holds it):
	// the lock of the spec's domain, or for an app without a spec, of its objects' domain.
	Lock error
	// OldLocks says, by domain, why the lock of a stack the app left is not this process's.
	OldLocks map[string]error
	// TeardownDomain, for a teardown of an app whose status names no domain, is the domain
	// whose lock this pass took (claimTeardown): recorded, so that later passes know which
	// stack is the app's and wait when its lock is held.
	TeardownDomain string
	// Rendered is the recipe at the version this pass deploys; nil when nothing was rendered.
	Rendered *manifests.Rendered
	// RenderErr is a fault of the input (an unknown version, a compose file that does not
	// load, no release before version for the upgrade tier): the app is Invalid.
	RenderErr error
	// FetchErr is a clone or fetch of the recipe that failed (--recipe-url, a version the
	// repository lacks): nothing was rendered.
	FetchErr *manifests.RemoteError
	// Services are Rendered's service specs by name.
	Services map[string]swarm.ServiceSpec
	// PolicyErr says what of Services the deploy policy denies: none of it is created.
	PolicyErr *manifests.PolicyError
	// Foreign are objects not owned by Owner that hold a name the rendered app needs.
	Foreign []swarmstate.Object
	// Leaving are objects of this reconciler (its owner label) of another app that is leaving
	// the stack: its spec is gone (a teardown, or the sweep's) or maps to another stack (a
	// move). This reconciler removes them: waiting helps.
	Leaving []swarmstate.Object
	// Logs are the last log lines of the failed tasks the status shows, by task ID, read this
	// pass (redacted); the status keeps those it already has.
	Logs map[string][]string
	// Backup is the recipe's backup plan, for an app whose spec asks for backups; BackupErr
	// says why its labels mean none.
	Backup    *manifests.BackupPlan
	BackupErr error
	// Backups are the app's complete backups, oldest first, read when a restore is asked for.
	Backups []*spec.BackupManifest
	// BackupsErr says why they could not be listed.
	BackupsErr error
	// Committed is the backup the status shows Running, found complete in the store: the
	// process that made it died after the commit, before it could say so.
	Committed *spec.BackupManifest
	// Slots is how many apps hold a deploy slot and how many wait for one (slots.go);
	// Removals the same of removal slots.
	Slots, Removals slotView
	// Probe runs the spec's readiness probes once. decide calls it only when swarm says the
	// app converged and the verdict waits on the probes: a probe with `stable` counts runs.
	Probe func() probeResult
}

// probe runs the readiness probes; a world without them passes.
func (w *world) probe() probeResult {
	if w.Probe == nil {
		return probeResult{OK: true}
	}
	return w.Probe()
}

// decision is what a pass does and what the status will say.
type decision struct {
	// Status is the next status; Phase and Message are applied to it by status().
	Status  *spec.Status
	Phase   spec.Phase
	Message string
	// RestoreRetry says the app is Failed by a restore that began to write and is asked to
	// restore again: it stays Failed unless that restore completes.
	RestoreRetry bool
	// Checks must hold before any action: the images are here or pullable, the external
	// networks exist. They change nothing in the swarm.
	Checks []Action
	// Actions change the swarm, in order, each with its reason.
	Actions []Action
	// Prune are removals of what the app no longer needs, after Actions: housekeeping, whose
	// failure changes neither the phase nor the message (the next pass tries again).
	Prune []Action
	// KeepBackups, once the status is written, prunes the app's complete backups to the newest
	// this many (0: all kept): after a backup completed, also one found committed after the
	// process that made it died. Housekeeping: a failure is logged, and the next backup tries
	// again.
	KeepBackups int
	// Deploy counts this pass as the deploy of its generation, once its checks hold.
	Deploy bool
	// Persist writes the status before acting: an attempt that changes services is recorded
	// first, so a crash right after neither loses the deploy count nor when the attempt began.
	Persist bool
	// Again looks again within this pass once the actions are applied: the services that
	// refer to the support objects just created come next, or an upgrade moves to its target.
	Again bool
	// Milestone records the message in the history even when the phase stays the same: an
	// upgrade-tier attempt whose first version converged.
	Milestone bool
	// After is when to look again; 0 waits for the next event or resync.
	After time.Duration
	// TasksFor, with After, says the app waits on its tasks alone for at most that long: the
	// looks until then are a task list call, and a pass only when it moved (Result.TasksFor).
	TasksFor time.Duration
	// Deadline, when set, is the end of the attempt: an error that acting keeps meeting past
	// it is the app's failure, not a reason to retry for ever.
	Deadline time.Time
	// Job is a backup or restore to carry out after the actions (backupdecide.go); JobReady
	// is the message of the app apart from it.
	Job      *backupJob
	JobReady string
	// Settled says the app's stacks other than its current one are gone: the locks this
	// process holds for it under other domains are unlinked and released.
	Settled bool
	// Gone says nothing of the app is left: its locks are unlinked and released, and what is
	// remembered about it is forgotten.
	Gone bool
	// Answered are the other nodes whose volume job answered in this pass that nothing of the
	// app is left there: an inventory that asked them earlier is older than that answer.
	Answered []string
	// Starts says this pass begins an attempt that needs a deploy slot: it must take one
	// before acting. Queued says it waits for one (slots.go).
	Starts, Queued bool
	// Removes says this teardown pass removes the app's services without a removal slot: it
	// must take one before acting. RemoveQueued says it waits for one. Stopping says the app's
	// services or their tasks are still there: its removal slot is held while they are.
	Removes, RemoveQueued, Stopping bool
}

// The upgrade stages of an upgrade-tier attempt.
const (
	upgradeFrom = "from"
	upgradeTo   = "to"
)

// attempt says whether the spec read this pass starts a new attempt, and which upgrade stage
// the pass is in. observe uses it to choose the version to render; decide to reset the status.
func attempt(d *spec.Desired, prev *spec.Status, services int) (fresh bool, stage string) {
	fresh = prev == nil || prev.ObservedGeneration != d.Generation && !d.SameAttempt(prev) ||
		prev.Phase == spec.PhaseDeleted || prev.Phase == spec.PhaseDeleting
	if !fresh {
		return false, prev.UpgradeStage
	}
	if d.Spec != nil && d.Spec.Tier == spec.TierUpgrade && services == 0 {
		return true, upgradeFrom // nothing runs yet: deploy upgradeFrom first, then upgrade
	}
	return true, ""
}

// decide is the whole decision of one pass.
func decide(w *world) decision {
	st := &spec.Status{App: w.App}
	if w.Prev != nil {
		st = cloneStatus(w.Prev)
	}
	d := decision{Status: st, Phase: st.Phase, Message: st.Message}
	if w.Self != "" {
		// st.Removed is the last teardown's once that teardown has had a pass (Deleting, and
		// after it Deleted or Expired, while swarm still lists the ended tasks): not on its
		// first, when it may still be a move's.
		answered := w.Prev != nil && (w.Prev.Phase == spec.PhaseDeleting || w.Prev.Phase == spec.PhaseDeleted || w.Prev.Phase == spec.PhaseExpired)
		recordNodes(st, w.Snap.Tasks, recipeJobs(w.Owner, w.Snap.Services), liveServices(w.Snap), answered, w.Nodes, w.Self)
	}
	switch {
	case w.Desired == nil:
		return decideTeardown(w, d, spec.PhaseDeleted, "")
	case w.Desired.Err != nil:
		// An invalid edit touches nothing already deployed, but the app is wanted: a teardown's
		// volume job does not go on.
		st.ObservedGeneration = w.Desired.Generation
		if w.Lock == nil {
			d.Actions = staleJobs(w)
		}
		return d.to(spec.PhaseInvalid, w.Desired.Err.Error())
	}
	s := w.Desired.Spec
	st.Recipe, st.Version, st.Tier, st.Domain = s.Recipe, s.Version, s.Tier, s.Domain
	if w.StackErr != nil {
		st.ObservedGeneration = w.Desired.Generation
		return d.to(spec.PhaseInvalid, w.StackErr.Error())
	}
	st.Stack = w.Stack
	if w.Lock != nil {
		if st.ObservedGeneration == w.Desired.Generation && st.Phase.Final() {
			return d // final for this generation, whoever holds the lock now
		}
		d.After = 5 * time.Second
		if st.Phase == "" || st.Phase == spec.PhaseDeleted {
			return d.to(spec.PhasePending, "waiting: "+w.Lock.Error())
		}
		return d.to(st.Phase, "waiting: "+w.Lock.Error())
	}
	if exp, ok := expiresAt(s, st); ok && st.ObservedGeneration == w.Desired.Generation &&
		st.Phase != spec.PhaseDeleted && st.Phase != spec.PhaseExpired && !w.Now.Before(exp) {
		// Past its ttl: reaped, and not deployed again until the spec's content changes.
		why := fmt.Sprintf("ttl %s passed at %s", s.TTL.Duration, exp.Format(time.RFC3339))
		for _, domain := range slices.Sorted(maps.Keys(w.OldLocks)) {
			if err := w.OldLocks[domain]; err != nil {
				// A stack it left goes only under that stack's lock, as in every teardown.
				d.After = 5 * time.Second
				return d.to(st.Phase, fmt.Sprintf("%s; waiting to remove the stack of %s: %v", why, domain, err))
			}
		}
		return decideTeardown(w, d, spec.PhaseExpired, why)
	}
	stacks := w.Snap.ByStack()
	cur := stacks[w.Stack]
	if cur == nil {
		cur = &swarmstate.Snapshot{}
	}
	fresh, stage := attempt(w.Desired, w.Prev, len(cur.Services))
	if fresh {
		// An app that is not running starts a new life: its ttl counts from its next deploy.
		switch st.Phase {
		case "", spec.PhaseDeleted, spec.PhaseDeleting, spec.PhaseExpired:
			st.FirstDeployedAt = nil
			st.BackupStage = "" // a new install: the backup tier backs it up again
			endEarlierRestore(st, w.Now)
		}
		if r := st.LastRestore; r != nil && w.Prev != nil && w.Prev.Stack != w.Stack {
			// A move: the containers the pre-hooks changed go with the old stack, not to the
			// new stack's fresh ones.
			r.PostHooksOwed = nil
		}
		// A new attempt resolves its ref again: the commit pinned for the last one is not this
		// one's, also when this pass cannot fetch (its status keeps the new generation).
		st.SourceCommit = ""
		st.ObservedGeneration = w.Desired.Generation
		st.AttemptKey = w.Desired.AttemptKey()
		st.AttemptStartedAt = &w.Now
		st.Removed, st.JobContainers = nil, nil
		st.NodesNotAsked = nil // of an earlier life's teardown
		st.UpgradeStage = stage
		d.Phase, d.Message = spec.PhasePending, "new generation queued"
	} else {
		st.ObservedGeneration = w.Desired.Generation // a request: the same attempt goes on
		switch {
		case restoreRetried(s, st):
			// The remedy the Failed message named: the app's services still run, so it goes
			// on as converged, and the restore is carried out once they are stable.
			d.Phase, d.RestoreRetry = spec.PhaseDegraded, true
		case st.Phase.Final():
			// Final for this attempt: only a new spec moves it. A request is answered now,
			// not carried out when a later attempt converges, long after it was made.
			d = refuseRequests(d, s, w.Now)
			d.Actions = append(staleJobs(w), d.Actions...)
			return ttlTimer(owedAgain(d), s, w.Now)
		}
	}
	if st.AttemptStartedAt == nil {
		st.AttemptStartedAt = &w.Now
	}
	pending := d.Phase == spec.PhasePending
	d = decideConverge(w, d, s, cur, stage)
	// The post-hooks a restore still owes are no part of the attempt (owedAgain): they run
	// whether it has a slot or waits for one.
	owedOnly := d.Job != nil && len(d.Job.PostHooks) > 0
	if pending && !d.Starts && !d.Queued && !w.Slots.Held && len(d.Actions) == 0 && (d.Job == nil || owedOnly) &&
		(d.Phase == spec.PhaseDeploying || d.Phase == spec.PhaseUpgrading) {
		// The attempt leaves Pending without a plan to apply (waiting for a secret, a fetch,
		// names to be freed, its tasks): it needs a slot as one that applies does (slots.go).
		if !w.Slots.open() {
			d.TasksFor = 0
			d = d.queued(w)
		} else {
			d.Starts = true
		}
	}
	d.Actions = append(staleJobs(w), d.Actions...)
	return ttlTimer(d, s, w.Now)
}

// ttlTimer makes d come back when the app is due to be reaped, with a pass: a look that
// watched the task list alone would find it still and run none. A Failed app is reaped too:
// what it made before it failed goes with its ttl.
func ttlTimer(d decision, s *spec.Spec, now time.Time) decision {
	if exp, ok := expiresAt(s, d.Status); ok && d.Phase != spec.PhaseExpired && d.Phase != spec.PhaseDeleted {
		if left := exp.Sub(now); d.After <= 0 || left < d.After {
			d.After = max(left, time.Millisecond)
			d.TasksFor = min(d.TasksFor, d.After)
		}
	}
	return d
}

// decideConverge decides for an app with a valid spec, its lock held: create what is missing,
// update what changed, then judge the rollout from a fresh snapshot on a later pass.
func decideConverge(w *world, d decision, s *spec.Spec, cur *swarmstate.Snapshot, stage string) decision {
	st := d.Status
	// converged: the app reached Ready in this generation; what happens to it now is its life,
	// not an attempt with a deadline.
	converged := d.Phase == spec.PhaseReady || d.Phase == spec.PhaseDegraded
	nodes := swarmstate.Nodes{ByID: w.Nodes, Self: w.Self}
	v := swarmstate.ConvergedOn(cur.Services, cur.Tasks, *st.AttemptStartedAt, nodes)
	observeServices(st, v, w.Logs, nodes)
	if s.Suspend {
		return d.to(spec.PhaseSuspended, "suspended: observing only; "+v.Message)
	}
	if w.RenderErr != nil {
		if converged {
			// Rendered when it was deployed (the spec is the same): the recipe changed under it
			// (a tag gone, a reconciler whose loader is stricter). It runs as deployed; said,
			// and rendered again.
			d.After = fetchRetry
			return d.to(spec.PhaseDegraded, fmt.Sprintf("running as deployed, but its recipe no longer renders (tried again every %s): %s", fetchRetry, w.RenderErr))
		}
		return d.to(spec.PhaseInvalid, w.RenderErr.Error())
	}
	if w.PolicyErr != nil {
		if converged {
			// Deployed under a laxer policy: left running as it is, never torn down by a
			// policy change, and said.
			return d.to(spec.PhaseDegraded, "left running as deployed, not changed: "+w.PolicyErr.Error())
		}
		return d.to(spec.PhaseInvalid, w.PolicyErr.Error()+"; nothing was created")
	}
	if e := w.FetchErr; e != nil {
		if converged {
			// The app runs as deployed (a restart found its recipe's clone gone): no reason to
			// give up on it, whether the remote did not answer or refused. Said, and asked again.
			d.After = fetchRetry
			return d.to(spec.PhaseDegraded, fmt.Sprintf("running as deployed, but recipe %s could not be fetched (asked again every %s): %s", s.Recipe, fetchRetry, e))
		}
		// The remote refused, or has no such repository: final. It did not answer: retried
		// until the attempt's deadline.
		deadline := st.AttemptStartedAt.Add(s.Timeout.Duration)
		if e.Final || w.Now.After(deadline) {
			return d.to(spec.PhaseFailed, fmt.Sprintf("recipe %s could not be fetched: %s", s.Recipe, e))
		}
		d.After = waitAfter(*st.AttemptStartedAt, deadline, w.Now)
		phase := d.Phase
		if phase == spec.PhasePending {
			phase = spec.PhaseDeploying
		}
		return d.to(phase, fmt.Sprintf("recipe %s not fetched yet, retrying: %s", s.Recipe, e))
	}
	rev := w.Rendered.Revision
	st.LastAttemptedRevision = rev
	st.Overlays = nil
	for _, o := range w.Desired.Overlays {
		st.Overlays = append(st.Overlays, spec.OverlayRef{Name: o.Name, SHA256: o.SHA256})
	}
	st.Source, st.SourceCommit = manifests.RedactURL(s.Source), "" // statuses hold no token
	if s.Ref != "" {
		st.SourceCommit = w.Rendered.Commit
	}
	// The tasks' windows are judged at the snapshot's time.
	seen := w.SnapAt
	if seen.IsZero() || seen.After(w.Now) {
		seen = w.Now
	}
	window := func(ss swarmstate.ServiceState) time.Duration { return minReady(s, ss) }
	if r := st.LastRestore; r != nil && r.State == spec.RunRunning {
		// The process that ran this restore died (a teardown since ended it: endEarlierRestore).
		// Said at once, whatever the tasks do now, in this attempt or a new one: a restore
		// pre-hook's maintenance mode may keep the app from converging, and the post-hooks it
		// owes (run now, in the containers that run) may be what lets it.
		keep := 0
		if s.Backup != nil {
			keep = s.Backup.Keep
		}
		return interrupted(d, w.Committed, keep, w.Now, v.Message)
	}
	d = owedAgain(d)
	if v.RolledBack && !converged {
		// Swarm restored the old spec and labels; updating again would only roll back again.
		return d.failed(cur, v, seen, window, fmt.Sprintf("%s did not roll out: %s", rev, v.RolloutFailure()))
	}
	if len(v.RollingBack) > 0 {
		// Swarm is putting the old spec back: the spec differs from ours, yet applying ours
		// would start the roll over and it would roll back again, until the deadline (seen
		// under load, where a rollback outlasts a pass). Its end decides (RolledBack above).
		msg := fmt.Sprintf("%s: swarm is rolling back %s to the previous spec; waiting for the rollback to end", rev, strings.Join(v.RollingBack, ", "))
		return d.waitOutside(w.Now, converged, s.Timeout.Duration, waitInterval, msg)
	}
	if len(w.Foreign) > 0 {
		return d.to(spec.PhaseFailed, notOwned(w.Foreign, w.Owner))
	}
	if len(w.Leaving) > 0 {
		var parts []string
		for _, o := range w.Leaving {
			parts = append(parts, fmt.Sprintf("%s %s (app %s)", o.Kind, o.Name, o.Labels[swarmstate.LabelApp]))
		}
		msg := fmt.Sprintf("waiting for the names it needs to be freed: %s, of an app leaving stack %s, which this reconciler removes", strings.Join(parts, ", "), w.Stack)
		return d.waitOutside(w.Now, converged, s.Timeout.Duration, maxWaitInterval, msg)
	}
	support, awaited, err := PlanSupport(w.Rendered, cur)
	if err != nil {
		return d.to(spec.PhaseFailed, err.Error())
	}
	services, err := PlanServices(w.Owner, w.Services, cur.Services, w.Now.UTC().Format(time.RFC3339Nano))
	if err != nil {
		return d.to(spec.PhaseFailed, err.Error())
	}
	services = jobsLeaving(w.Owner, services, cur, w.Self, w.Nodes)
	services = withJobContainers(st, w.Owner, cur, w.Self, services)
	deadline := st.AttemptStartedAt.Add(s.Timeout.Duration)
	if !converged {
		d.Deadline = deadline
	}
	if len(awaited) > 0 {
		// Waiting helps: the value is inserted after the spec is written (its name needs it).
		g := awaited[0]
		msg := fmt.Sprintf("waiting for secret %s (generate=false in .env.sample): insert its value with `printf '%%s' \"$VALUE\" | reconciler secret insert %s %s` (the reconciler's --specs and --recipes)",
			g.Name, w.App, g.ID)
		return d.waitOutside(w.Now, converged, s.Timeout.Duration, maxWaitInterval, msg)
	}
	var heldUntil time.Time
	if converged {
		// An attempt has its deadline; an app that runs, none: there a set-back swarm keeps
		// rolling back is made again with a backoff.
		services, heldUntil = holdSetBacks(services, st, w.Now)
	}
	if len(support)+len(services) == 0 && !heldUntil.IsZero() {
		d.After = heldUntil.Sub(w.Now)
		return d.to(spec.PhaseDegraded, fmt.Sprintf("%s; the hand-made spec runs: set back again at %s (swarm rolled back %d set-backs)",
			v.Message, heldUntil.UTC().Format(time.RFC3339), st.SetBacks))
	}
	if plan := append(support, services...); len(plan) > 0 {
		if !converged && d.Phase == spec.PhasePending {
			if !w.Slots.open() {
				return d.queued(w)
			}
			d.Starts = true
		}
		if len(support) > 0 {
			// Services refer to support objects by ID: plan them on a fresh look.
			plan, d.Again = support, true
		} else {
			d.Checks = requirements(w.Rendered)
			d.Persist, d.After = true, waitInterval
			d.Deploy = st.DeployedGeneration != w.Desired.Generation
		}
		d.Actions = plan
		what := summary(plan)
		if where := placement(plan, w.Nodes); where != "" {
			what += "; " + where
			d.Milestone = true // kept in the history: where the tasks can go, and what they need there
		}
		switch {
		case converged:
			// A repair is its own attempt: its rolls are judged from now on.
			st.AttemptStartedAt = &w.Now
			return d.to(spec.PhaseDegraded, "repairing: "+what)
		case len(cur.Services) > 0 && len(services) > 0:
			return d.to(spec.PhaseUpgrading, fmt.Sprintf("applying %s: %s", rev, what))
		case d.Phase == spec.PhaseUpgrading:
			return d.to(d.Phase, fmt.Sprintf("applying %s: %s", rev, what))
		default:
			return d.to(spec.PhaseDeploying, fmt.Sprintf("applying %s: %s", rev, what))
		}
	}

	stableAt, unstable := v.Unstable(seen, window)
	switch {
	case v.GaveUp && !converged:
		// No task will run again until the service changes: waiting cannot help.
		return d.failed(cur, v, seen, window, fmt.Sprintf("%s cannot converge: %s", rev, v.Message))
	case v.ImageErr != "" && !v.Converged && !converged && imageNowhere(v, cur, w.Nodes):
		// A node refused a task for want of its image: without a registry that has it, no
		// retry there finds it (DESIGN.md: a pull that fails is Failed at once).
		return d.failed(cur, v, seen, window, fmt.Sprintf("%s cannot run: %s", rev, v.ImageErr))
	case !v.Converged && converged:
		d.After, d.TasksFor = maxWaitInterval, tasksOnlyFor
		if v.RolledBack {
			return d.to(spec.PhaseDegraded, v.RolloutFailure())
		}
		return d.to(spec.PhaseDegraded, v.Message)
	case !v.Converged && w.Now.After(deadline):
		return d.failed(cur, v, seen, window, fmt.Sprintf("%s not converged within %s: %s", rev, s.Timeout.Duration, v.Message))
	case !v.Converged:
		d.After = waitAfter(*st.AttemptStartedAt, deadline, w.Now)
		if len(w.Nodes) > 1 {
			// Container events come from this node only: tasks elsewhere are seen by looking.
			d.After = min(d.After, remoteLook)
		}
		d.TasksFor = min(tasksOnlyFor, deadline.Sub(w.Now)+time.Millisecond)
		msg := v.Message + owedNote(owedSoon(v, seen, window), deadline, "converged")
		if d.Phase == spec.PhasePending {
			return d.to(spec.PhaseDeploying, msg)
		}
		return d.to(d.Phase, msg)
	case stage == upgradeFrom:
		st.UpgradeStage = upgradeTo
		st.LastAppliedRevision = rev
		d.Again, d.Milestone = true, true
		return d.to(d.Phase, fmt.Sprintf("%s converged; upgrading in place to %s", rev, s.Version))
	case len(unstable) > 0:
		// Swarm says converged; Ready waits until every task has run its window without a
		// restart. The pass at the window's end decides: a task that ended meanwhile was
		// replaced by a younger one, whose window starts again.
		msg := fmt.Sprintf("%s; waiting for them to stay up: %s", v.Message, strings.Join(unstable, "; "))
		// The window was judged at the snapshot's time: its end may be past by now.
		if converged {
			d.After = max(stableAt.Sub(w.Now), 0) + time.Millisecond
			d.TasksFor = d.After
			return d.to(spec.PhaseDegraded, msg)
		}
		if w.Now.After(deadline) {
			return d.failed(cur, v, seen, window, fmt.Sprintf("%s not stable within %s: %s", rev, s.Timeout.Duration, msg))
		}
		msg += owedNote(owedSoon(v, seen, window), deadline, "stable")
		d.After = max(min(stableAt.Sub(w.Now), deadline.Sub(w.Now)), 0) + time.Millisecond
		d.TasksFor = d.After
		if d.Phase == spec.PhasePending {
			return d.to(spec.PhaseDeploying, msg)
		}
		return d.to(d.Phase, msg)
	case len(s.Health) > 0 && !converged:
		// Swarm says converged; the spec's probes say whether the app answers.
		if p := w.probe(); !p.OK {
			if w.Now.After(deadline) {
				return d.to(spec.PhaseFailed, fmt.Sprintf("%s: %s never passed within %s; last result: %s", rev, p.Name, s.Timeout.Duration, p.Last))
			}
			d.After = waitInterval
			return d.to(d.Phase, fmt.Sprintf("%s; waiting for %s: %s", v.Message, p.Name, p.Last))
		}
	}
	st.LastAppliedRevision = rev
	if old := leftStacks(w.Snap, w.Stack); !old.Empty() {
		return decideMove(w, d, old, converged)
	}
	d.Settled = true
	// What an upgrade left behind goes once the app converged on the new release.
	d.Prune = PlanPrune(w.Owner, w.Rendered, cur)
	return decideJobs(w, d, s, v.Message)
}

// decideMove removes the stacks an app left when its domain changed, once the new stack has
// converged; the app is Ready only when nothing of them is left.
func decideMove(w *world, d decision, old *swarmstate.Snapshot, converged bool) decision {
	phase := d.Phase
	if converged {
		phase = spec.PhaseDegraded
	} else if phase == spec.PhasePending {
		phase = spec.PhaseUpgrading
	}
	for domain, err := range w.OldLocks {
		if err != nil {
			d.After = 5 * time.Second
			return d.to(phase, fmt.Sprintf("%s converged; waiting to remove the stack of %s: %v", w.Stack, domain, err))
		}
	}
	d.Actions = PlanTeardown(w.Owner, old, d.Status.Removed, w.Self, w.Nodes)
	d.Actions = withJobContainers(d.Status, w.Owner, old, w.Self, d.Actions)
	// The new stack is deployed, converged and stable: what removing the old one meets (a
	// volume its stopping container still holds, an engine error) is waited out or retried,
	// not the attempt's failure "not deployed within" its timeout.
	d.Deadline = time.Time{}
	d.After = teardownInterval
	for i := range d.Actions {
		d.Actions[i].Reason = "domain changed to " + d.Status.Domain
	}
	parts := old.Residual()
	byStack := old.ByStack()
	for _, stack := range slices.Sorted(maps.Keys(byStack)) {
		if stack == "" {
			continue
		}
		nc := moveNodeCleanup(w, d.Status, byStack[stack], stack)
		d.Actions = append(d.Actions, nc.Actions...)
		parts = append(parts, nc.Waiting...)
	}
	return d.to(phase, fmt.Sprintf("moved to %s; removing what is left of the previous stack: %s", w.Stack, strings.Join(parts, ", ")))
}

// moveNodeCleanup removes, on the other nodes that ran a task of stack (one the app left),
// that stack's volumes, by a job a node (planNodeJobs) that leaves the new stack's alone. A
// node that answered loses those volumes from st.Nodes; the job is in stack, so the move goes
// on until it is removed.
func moveNodeCleanup(w *world, st *spec.Status, snap *swarmstate.Snapshot, stack string) nodeCleanup {
	left := &spec.Status{}
	for _, n := range st.Nodes {
		var vols []string
		for _, v := range n.Volumes {
			if strings.HasPrefix(v, stack+"_") {
				vols = append(vols, v)
			}
		}
		if len(vols) > 0 {
			left.Nodes = append(left.Nodes, spec.NodeVolumes{ID: n.ID, Hostname: n.Hostname, Volumes: vols})
		}
	}
	asked := slices.Clone(left.Nodes)
	nc := planNodeJobs(w, snap, stack, true, left, w.Jobs)
	for _, r := range left.Removed {
		if slices.ContainsFunc(asked, func(n spec.NodeVolumes) bool { return r == leftEntry(n) && nodeLeft(st, n.ID) }) {
			continue // this attempt said so already: swarm lists the node's tasks until it reaps them
		}
		st.Removed = append(st.Removed, r)
	}
	for _, n := range asked {
		if slices.ContainsFunc(left.Nodes, func(p spec.NodeVolumes) bool { return p.ID == n.ID }) {
			continue
		}
		i := slices.IndexFunc(st.Nodes, func(o spec.NodeVolumes) bool { return o.ID == n.ID })
		st.Nodes[i].Volumes = slices.DeleteFunc(st.Nodes[i].Volumes, func(v string) bool { return slices.Contains(n.Volumes, v) })
		if len(st.Nodes[i].Volumes) == 0 && len(st.Nodes[i].Jobs) == 0 { // jobs: the teardown's
			st.Nodes = slices.Delete(st.Nodes, i, i+1)
		}
	}
	return nc
}

// decideTeardown removes one layer of what the app owns per pass (services, then the rest)
// and reports final (Deleted, or Expired for a ttl) only when a fresh snapshot finds nothing
// of the app. why, when set, leads the messages.
func decideTeardown(w *world, d decision, final spec.Phase, why string) decision {
	st := d.Status
	if r := st.LastRestore; r != nil {
		r.PostHooksOwed = nil // the containers the pre-hooks changed go with the teardown
	}
	lead := ""
	if why != "" {
		lead = why + "; "
	}
	snap := withoutSettledTasks(w.Snap, w.Nodes)
	if snap.Empty() && len(st.Nodes) == 0 {
		d.Gone = true
		if st.Phase == "" || st.Phase == final {
			return d // nothing was ever reported, or it already says so
		}
		st.Services = nil
		msg := "nothing left"
		if len(st.Removed) > 0 {
			msg = fmt.Sprintf("removed %d objects; nothing labelled %s=%s left", len(st.Removed), swarmstate.LabelApp, w.App)
		}
		if len(st.NodesNotAsked) > 0 {
			msg += fmt.Sprintf(" on the nodes asked; not asked, their inventory unread: %s (volumes of the app may be there; the next start or `reconciler janitor` asks again)",
				strings.Join(st.NodesNotAsked, ", "))
		}
		return d.to(final, lead+msg)
	}
	if w.Lock != nil {
		// Another live process operates this app: not an orphan. Nothing changes.
		return d
	}
	if st.Phase != spec.PhaseDeleting {
		st.Removed, st.JobContainers = nil, nil
	}
	if st.Domain == "" && w.TeardownDomain != "" {
		st.Domain = w.TeardownDomain
		if st.Stack == "" {
			st.Stack, _ = spec.StackName(st.Domain)
		}
	}
	d.Actions = PlanTeardown(w.Owner, w.Snap, st.Removed, w.Self, w.Nodes)
	d.Actions = withJobContainers(st, w.Owner, w.Snap, w.Self, d.Actions)
	if !w.Removals.Held && stopsServices(d.Actions) {
		switch {
		case w.Removals.open():
			d.Removes = true
		case !w.Slots.Held:
			return d.removalQueued(w, lead)
		}
		// An attempt still under way (its deploy slot held until this pass) is not left to go
		// on, queued, its tasks starting outside every bound: it stops now, over the limit
		// (record holds its removal slot).
	}
	d.Stopping = stopping(snap, w.Nodes)
	d.After = teardownInterval
	parts := snap.Residual()
	// The app's volumes on other nodes go by a job on each, started with the removal of the
	// services: a job waits until the app's containers on its node have stopped, so its start
	// overlaps their stop instead of following it. (Started first, the services kept until the
	// jobs ran, a teardown was no faster on the 4-node swarm: docs/benchmarks.md.)
	nc := planNodeCleanup(w, st, w.Jobs)
	d.Actions = append(d.Actions, nc.Actions...)
	d.Answered = nc.Answered
	parts = append(parts, nc.Waiting...)
	switch {
	case len(d.Actions) == 0 && onlyJobs(w.Snap) && nc.Away:
		// Every node still to answer is down or drained: its node event brings the app back;
		// until then a pass now and then, not a look ten times a second.
		d.After = awayInterval
	case len(d.Actions) == 0 && onlyJobs(w.Snap):
		// Waiting on the jobs' tasks alone: looked at often, at one task list call a look.
		d.After, d.TasksFor = remoteLook, tasksOnlyFor
	case len(st.Nodes) == 0 && onlyJobs(w.Snap):
		// Every node answered; what is left is their finished jobs, removed now: a fresh look
		// within this pass confirms that nothing is left.
		d.Again = true
	case len(d.Actions) == 0 && w.Snap.Empty() && len(st.Nodes) > 0 && nc.Left == len(st.Nodes):
		// All that is left is volumes the janitor leaves, and says so: looking again changes
		// nothing, and a janitor's pass ends here rather than at its timeout.
		d.After = 0
	}
	if len(parts) == 0 {
		parts = []string{"nothing left to ask for; confirming"}
	}
	return d.to(spec.PhaseDeleting, lead+"removing: "+strings.Join(parts, ", "))
}

// decideUnseen is the decision of a pass that could not see the swarm (err): the phase the app
// had, saying it is retrying; Deleting for an app whose spec is gone (read before the engine was
// asked), whatever its phase was, so that a poller never reads the phase it had before. write
// is false when there is nothing to say: no status yet, or a final one of an app still specified.
func decideUnseen(last *spec.Status, specGone bool, err error) (d decision, write bool) {
	if last == nil || last.Phase == "" {
		return decision{}, false
	}
	d = decision{Status: cloneStatus(last), Phase: last.Phase, Message: "retrying: " + err.Error()}
	switch {
	case specGone && last.Phase != spec.PhaseDeleted && last.Phase != spec.PhaseExpired:
		if last.Phase != spec.PhaseDeleting {
			d.Status.Removed = nil // the teardown begins here: its own removals count
		}
		d.Phase = spec.PhaseDeleting
	case last.Phase.Final():
		return decision{}, false
	}
	return d, true
}

// outcome folds what acting achieved into d: the removals done join the status's removed
// list; an error becomes the app's failure when waiting cannot fix it (terminal) or when the
// attempt's deadline has passed, a wait when a teardown meets a volume still in use, and
// otherwise a retry with backoff (the returned error) that leaves the phase as it is.
func outcome(d decision, done []Action, err error, now time.Time) (decision, error) {
	for _, a := range done {
		if strings.HasPrefix(string(a.Kind), "remove ") {
			d.Status.Removed = append(d.Status.Removed, a.object())
		}
	}
	var use stillInUse
	switch {
	case err == nil:
		return d, nil
	case errors.Is(err, errTerminal):
		d.Again, d.After = false, 0
		return d.to(spec.PhaseFailed, err.Error()), nil
	case !d.Deadline.IsZero() && now.After(d.Deadline):
		d.Again, d.After = false, 0
		return d.to(spec.PhaseFailed, fmt.Sprintf("not deployed within %s: %v", d.Deadline.Sub(*d.Status.AttemptStartedAt), err)), nil
	case errors.As(err, &use):
		// A volume still used by a container that is stopping: the next look retries.
		d.Again = false
		return d.to(d.Phase, d.Message+"; waiting: "+use.Error()), nil
	}
	d.Again, d.After = false, 0
	return d.to(d.Phase, "retrying: "+err.Error()), err
}

// deployed counts the deploy of the status's generation, once: a retried apply of one
// generation is one deploy, and the ttl counts from the first.
func (d decision) deployed(now time.Time) {
	st := d.Status
	if !d.Deploy || st.DeployedGeneration == st.ObservedGeneration {
		return
	}
	st.DeployedGeneration = st.ObservedGeneration
	st.Deploys++
	if st.FirstDeployedAt == nil {
		st.FirstDeployedAt = &now
	}
}

// failed is an attempt's Failed verdict msg, with the rollbacks swarm owed the services that
// failed it and did not make (owedRollbacks): they are made now, as `docker service rollback`
// would, so that the recipe's failure_action holds whatever swarm's monitor saw.
func (d decision) failed(cur *swarmstate.Snapshot, v swarmstate.Verdict, now time.Time, window func(swarmstate.ServiceState) time.Duration, msg string) decision {
	owed := owedRollbacks(v, now, window)
	if len(owed) == 0 {
		return d.to(spec.PhaseFailed, msg)
	}
	msg += fmt.Sprintf("; swarm ended the update of %s without rolling back (a task failed or was not yet stable after the update's monitor, or a dockerd restart lost the update), though its update_config.failure_action says rollback",
		strings.Join(owed, ", "))
	for _, svc := range cur.Services {
		if slices.Contains(owed, svc.Spec.Name) {
			current := svc.Spec
			d.Actions = append(d.Actions, Action{Kind: RollbackService, Name: svc.Spec.Name, ID: svc.ID, Labels: svc.Spec.Labels,
				Version: svc.Version, Service: &current, Reason: msg})
		}
	}
	return d.to(spec.PhaseFailed, msg+": rolling back to the previous spec")
}

// owedRollbacks names the services that fail the attempt's verdict at now and are owed a
// rollback swarm did not make (swarmstate.ServiceState.RollbackOwed): not converged, or not
// yet up for their stability window (window), which a task that restarted inside it is not.
// The verdict says their update did not work, which is what the recipe's failure_action is
// about, whether swarm's monitor saw a task fail or not. A service whose task has run its
// window is left as it is, whatever ended before.
func owedRollbacks(v swarmstate.Verdict, now time.Time, window func(swarmstate.ServiceState) time.Duration) []string {
	var owed []string
	for _, s := range v.Services {
		if s.RollbackOwed && (!s.Converged || s.StableAt(window(s)).After(now)) {
			owed = append(owed, s.Name)
		}
	}
	return owed
}

// owedSoon names, while the attempt waits, the services the verdict would roll back now
// (owedRollbacks) that show trouble already: not converged, or a task ended since swarm
// completed their roll. One in its window without that is how every upgrade that works looks
// for a while, and is not named.
func owedSoon(v swarmstate.Verdict, now time.Time, window func(swarmstate.ServiceState) time.Duration) []string {
	owed := owedRollbacks(v, now, window)
	var soon []string
	for _, s := range v.Services {
		if slices.Contains(owed, s.Name) && (!s.Converged || s.EndedSinceRoll) {
			soon = append(soon, s.Name)
		}
	}
	return soon
}

// owedNote tells, while an attempt waits, which services the verdict at deadline will roll
// back if they are not cond ("converged", "stable") by then; "" for none.
func owedNote(owed []string, deadline time.Time, cond string) string {
	if len(owed) == 0 {
		return ""
	}
	return fmt.Sprintf("; swarm ended the update of %s without rolling back, though its update_config.failure_action says rollback: rolled back at %s if not %s by then",
		strings.Join(owed, ", "), deadline.UTC().Format("15:04:05Z07:00"), cond)
}

// waitOutside is a wait on what the reconciler does not do itself (swarm's rollback, a secret
// a person inserts): an app that had converged is Degraded and looked at every idle; one whose
// attempt is past its timeout is Failed; otherwise it stays in its attempt's phase (Deploying
// for a first one) until the deadline.
func (d decision) waitOutside(now time.Time, converged bool, timeout, idle time.Duration, msg string) decision {
	deadline := d.Status.AttemptStartedAt.Add(timeout)
	switch {
	case converged:
		d.After = idle
		return d.to(spec.PhaseDegraded, msg)
	case now.After(deadline):
		return d.to(spec.PhaseFailed, fmt.Sprintf("not deployed within %s: %s", timeout, msg))
	}
	d.Deadline, d.After = deadline, waitAfter(*d.Status.AttemptStartedAt, deadline, now)
	phase := d.Phase
	if phase == spec.PhasePending {
		phase = spec.PhaseDeploying
	}
	return d.to(phase, msg)
}

// queued keeps an attempt that has not begun Pending until a deploy slot frees (slots.go).
// Its timeout counts from when it leaves the queue (the pass after an unset AttemptStartedAt
// sets it): waiting behind other apps is not its fault.
func (d decision) queued(w *world) decision {
	d.Queued, d.Deadline = true, time.Time{}
	d.Status.AttemptStartedAt = nil
	d.After = queuedAfter(w.Slots.Wakes)
	return d.to(spec.PhasePending, fmt.Sprintf("queued: %d apps are deploying (--max-deploying %d), %d queued ahead of this one; its timeout counts from when it starts",
		w.Slots.Others, w.Slots.Limit, w.Slots.Ahead))
}

// removalQueued keeps a teardown that has not removed its services waiting, Deleting and
// touching nothing, until a removal slot frees (slots.go).
func (d decision) removalQueued(w *world, lead string) decision {
	d.Actions, d.RemoveQueued = nil, true
	d.After = queuedAfter(w.Removals.Wakes)
	return d.to(spec.PhaseDeleting, fmt.Sprintf("%squeued: %d apps' services are stopping (--max-removing %d), %d queued ahead of this one; its services stay until one frees",
		lead, w.Removals.Others, w.Removals.Limit, w.Removals.Ahead))
}

// stopsServices says a teardown plan removes services, or stops a job's tasks: the step a
// removal slot bounds.
func stopsServices(plan []Action) bool {
	return slices.ContainsFunc(plan, func(a Action) bool { return a.Kind == RemoveService || a.Kind == UpdateService })
}

// stopping says the app's services are there, or tasks of them that have not stopped, on a
// node that reports them (settled are dropped from snap by withoutSettledTasks); node jobs do
// not count: they wait on other nodes, and the jobs' own tasks hold no containers of the app.
// Nor does a task on a node that left the swarm (nodes, when known, do not list it): it never
// reports its end, as one on a node that is down does not (jobRunning). The teardown still
// waits for it (withoutSettledTasks), but a slot held for it would be held for good.
func stopping(snap *swarmstate.Snapshot, nodes map[string]swarm.Node) bool {
	jobs := map[string]bool{}
	for _, s := range snap.Services {
		if isJob(s) {
			jobs[s.ID] = true
		}
	}
	return len(jobs) < len(snap.Services) || slices.ContainsFunc(snap.Tasks, func(t swarm.Task) bool {
		if _, known := nodes[t.NodeID]; nodes != nil && t.NodeID != "" && !known {
			return false
		}
		return !jobs[t.ServiceID] && t.JobIteration == nil && !terminalTask(t)
	})
}

// queuedAfter is when an app queued for a slot looks again: when a freed slot wakes it
// (wakes), this look is in case of a lost wake; without a loop to wake it (reconciler once),
// soon.
func queuedAfter(wakes bool) time.Duration {
	if wakes {
		return queuedIdle
	}
	return queuedLook
}

// to sets the phase and message the status will say.
func (d decision) to(phase spec.Phase, message string) decision {
	d.Phase, d.Message = phase, message
	return d
}

// status is the next status, with the decision's phase and message applied: the one place a
// phase is set.
func (d decision) status(now time.Time) *spec.Status {
	if d.Phase != "" {
		setPhase(d.Status, d.Phase, d.Message, d.Milestone, now)
	}
	if d.Phase == spec.PhaseReady {
		d.Status.SetBacks, d.Status.SetBackAt = 0, nil // the set-backs' backoff starts over
	}
	d.Status.RecordRequests() // a request's end outlives its run's place in lastBackup/lastRestore
	return d.Status
}

// notOwned says which objects hold names the app needs, and what to do about it.
func notOwned(foreign []swarmstate.Object, own swarmstate.Owner) string {
	var parts []string
	for _, o := range foreign {
		whose := "no owner labels: made by hand or by another tool"
		if app := o.Labels[swarmstate.LabelApp]; app != "" {
			whose = fmt.Sprintf("labelled %s=%s %s=%s", swarmstate.LabelApp, app, swarmstate.LabelOwner, o.Labels[swarmstate.LabelOwner])
		}
		parts = append(parts, fmt.Sprintf("%s %s (%s)", o.Kind, o.Name, whose))
	}
	return fmt.Sprintf("%s exists but is not owned by this reconciler (app %s, owner %s); it is left untouched: remove it, or give the app another domain, then change the spec to retry",
		strings.Join(parts, ", "), own.App, own.Dir)
}

// minReady is the stability window of service ss: the spec's minReady, else the service's
// update_config.monitor, else swarm's default monitor.
func minReady(s *spec.Spec, ss swarmstate.ServiceState) time.Duration {
	switch {
	case s.MinReady != nil:
		return s.MinReady.Duration
	case ss.Monitor > 0:
		return ss.Monitor
	}
	return spec.DefaultMinReady
}

// imageNowhere reports whether a service whose task a node refused for want of its image has
// no node left to run it: a swarm of one node, or every node that can take its tasks refused
// one. While another can, swarm places the next task there, and waiting helps.
func imageNowhere(v swarmstate.Verdict, cur *swarmstate.Snapshot, nodes map[string]swarm.Node) bool {
	if len(nodes) <= 1 {
		return true
	}
	for _, ss := range v.Services {
		if len(ss.ImageRefusedOn) == 0 {
			continue
		}
		i := slices.IndexFunc(cur.Services, func(s swarm.Service) bool { return s.Spec.Name == ss.Name })
		if i < 0 {
			return true
		}
		can, err := placeable(cur.Services[i].Spec, nodes)
		if err != nil {
			return true
		}
		if !slices.ContainsFunc(can, func(host string) bool {
			return !slices.ContainsFunc(ss.ImageRefusedOn, func(id string) bool { return nodes[id].Description.Hostname == host })
		}) {
			return true
		}
	}
	return false
}

// setBackBackoff is how long the n-th set-back made again after swarm rolled one back waits
// after the one before: a minute, doubling, at most an hour. A desired spec that no longer
// starts (a port held by something else, a node short of memory) is not rolled out again and
// again, each roll restarting the tasks that run.
func setBackBackoff(n int) time.Duration {
	return min(time.Minute<<min(max(n-1, 0), 6), time.Hour)
}

// holdSetBacks takes out of plan the set-backs made again (reasonSetBackAgain) that are not due
// yet, and returns when they are (zero: none held); those it leaves are counted in st. The
// first is due at once.
func holdSetBacks(plan []Action, st *spec.Status, now time.Time) ([]Action, time.Time) {
	if !slices.ContainsFunc(plan, func(a Action) bool { return a.Reason == reasonSetBackAgain }) {
		return plan, time.Time{}
	}
	if st.SetBacks > 0 && st.SetBackAt != nil {
		if due := st.SetBackAt.Add(setBackBackoff(st.SetBacks)); now.Before(due) {
			return slices.DeleteFunc(slices.Clone(plan), func(a Action) bool { return a.Reason == reasonSetBackAgain }), due
		}
	}
	st.SetBacks++
	st.SetBackAt = &now
	return plan, time.Time{}
}

// staleJobs removes the volume jobs of a teardown of an app that has a spec again, in whichever
// stack, also while it is suspended: the app is wanted, and a job waiting on a node that is
// down would otherwise remove its volumes there when the node returns (its data, or that of
// the stack a new domain gave it). The status keeps the node: the next teardown asks it.
func staleJobs(w *world) []Action {
	var out []Action
	for _, svc := range w.Snap.Services {
		if svc.Spec.Labels[LabelJobScope] == scopeLeftStack && svc.Spec.Labels[swarmstate.LabelNamespace] != w.Stack {
			continue // a move's, removing a stack the app left (decideMove); not one it is back in
		}
		if isJob(svc) && w.Owner.Owns(svc.Spec.Labels) {
			out = append(out, Action{Kind: RemoveService, Name: svc.Spec.Name, ID: svc.ID, Labels: svc.Spec.Labels,
				Reason: "the app has a spec again: its teardown's volume job is not run"})
		}
	}
	return out
}

// leftStacks is what the app owns outside stack: the stacks it used under earlier domains.
func leftStacks(snap *swarmstate.Snapshot, stack string) *swarmstate.Snapshot {
	old := &swarmstate.Snapshot{}
	for ns, g := range snap.ByStack() {
		if ns == stack {
			continue
		}
		old.Services = append(old.Services, g.Services...)
		old.Tasks = append(old.Tasks, g.Tasks...)
		old.Networks = append(old.Networks, g.Networks...)
		old.Secrets = append(old.Secrets, g.Secrets...)
		old.Configs = append(old.Configs, g.Configs...)
		old.Volumes = append(old.Volumes, g.Volumes...)
	}
	return old
}

// expiresAt is when an app with a ttl is reaped: its first deploy plus the ttl.
func expiresAt(s *spec.Spec, st *spec.Status) (time.Time, bool) {
	if s.TTL.Duration <= 0 || st.FirstDeployedAt == nil {
		return time.Time{}, false
	}
	return st.FirstDeployedAt.Add(s.TTL.Duration), true
}

// Intervals at which an app that is waiting on swarm is looked at again. Engine events usually
// come sooner; these are the safety net.
const (
	waitInterval    = 500 * time.Millisecond
	maxWaitInterval = 2 * time.Second
	// fetchRetry is how often the recipe of an app that runs is asked for again after a fetch
	// failed: a remote is not polled at the pace of a swarm.
	fetchRetry       = time.Minute
	teardownInterval = 500 * time.Millisecond
	// remoteLook is how often an app waiting on tasks on a swarm of several nodes looks at its
	// task list: no container event comes from the other nodes. A look is one task list call
	// (TasksFor), a pass only when the list moved.
	remoteLook = 100 * time.Millisecond
	// awayInterval is how often a teardown waiting only on nodes that are down or drained is
	// looked at: node events announce their return.
	awayInterval = 30 * time.Second
	// tasksOnlyFor bounds how long the looks of an app waiting on its tasks may skip the pass
	// while the task list stands still: a pass at least this often, whatever the events. What
	// moves the app comes sooner (its tasks moving in the looks, service events, spec changes);
	// this pass is for what nothing announces (a network removed by hand). At 10 s, a hundred
	// apps waiting three minutes on swarm took ten passes a second, all four workers, and the
	// pass that was due at an app's window end waited behind them (docs/benchmarks.md).
	tasksOnlyFor = 30 * time.Second
	// queuedLook is how often an app queued for a deploy slot looks again when no freed slot
	// wakes it (reconciler once); queuedIdle when one does.
	queuedLook = time.Second
	queuedIdle = 30 * time.Second
)

// waitAfter is when an app that has waited on swarm since start is looked at again: after
// waitInterval at first, then after a quarter of the time it has waited, up to
// maxWaitInterval, and never past its deadline. The engine's events announce at once what
// happens on this node (containers starting, dying, turning healthy; service updates); the
// poll is the safety net for tasks on other nodes and for states no container event announces
// (a task that cannot be scheduled). While an app waits on its tasks alone (TasksFor) the poll
// is one task list call, and a pass only when that list moved: with many apps waiting, full
// passes would compete with swarm for the CPU.
func waitAfter(start, deadline, now time.Time) time.Duration {
	d := min(max(now.Sub(start)/4, waitInterval), maxWaitInterval)
	if left := deadline.Sub(now) + time.Millisecond; left > 0 && left < d {
		d = left
	}
	return d
}
