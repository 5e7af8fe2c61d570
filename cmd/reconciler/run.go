package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/docker/docker/client"
	"github.com/go-logr/logr"
	"github.com/spf13/cobra"
	"k8s.io/client-go/tools/leaderelection"

	"github.com/swarm-reconciler/reconciler/controller"
	"github.com/swarm-reconciler/reconciler/locks"
	"github.com/swarm-reconciler/reconciler/manifests"
	"github.com/swarm-reconciler/reconciler/spec"
)

// faultKillEnv makes the process SIGKILL itself right after its Nth change to the swarm, for
// crash-safety tests that kill at every step in turn. Unset in production.
const faultKillEnv = "RECONCILER_FAULT_KILL_AFTER_STEPS"

func loopFlags(cmd *cobra.Command, o *options) {
	f := cmd.Flags()
	f.DurationVar(&o.resync, "resync", 30*time.Second, "period of the resync that catches missed events (an app waiting on swarm with a look due sooner is left to it)")
	f.IntVar(&o.workers, "workers", 4, "apps reconciled at once")
	f.IntVar(&o.maxDeploying, "max-deploying", 20, "installs and upgrades in progress at once: the others wait, Pending, first come first served, until one is Ready or Failed (0: no limit)")
	f.IntVar(&o.maxRemoving, "max-removing", 20, "teardowns whose services are stopping at once: the others wait, Deleting, first come first served, until the tasks of one have stopped (0: no limit)")
	f.DurationVar(&o.retention, "status-retention", time.Hour, "how long a Deleted status file stays")
	f.DurationVar(&o.reconcileTimeout, "reconcile-timeout", 2*time.Minute, "give up one reconcile of an app after this long and retry it with backoff (0: no limit)")
	f.StringVar(&o.nodeJobs.Image, "node-image", controller.DefaultNodeJobs.Image, "image of this reconciler, present or pullable on every node: a teardown runs it as a job (node-clean) on the other nodes that ran the app's tasks, to remove the app's volumes there")
	f.StringVar(&o.nodeJobs.Socket, "node-socket", controller.DefaultNodeJobs.Socket, "path of the Docker socket on every node's host, mounted into those jobs")
	f.DurationVar(&o.specPoll, "spec-poll", 0, "also scan the spec directory this often, for filesystems whose changes inotify does not see (shared ones; 2s with --leader-elect)")
	o.nodeJobs.Wait = controller.DefaultNodeJobs.Wait
}

// passFlags are the flags of the commands that make one pass and exit.
func passFlags(cmd *cobra.Command, o *options) {
	loopFlags(cmd, o)
	cmd.Flags().DurationVar(&o.passTimeout, "timeout", 10*time.Minute, "give up the pass after this long (exit 1, naming the apps not settled; 0: no limit)")
}

func runCmd(o *options) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "run",
		Short:   "Reconcile continuously until stopped",
		Example: `  reconciler run --specs ./specs --status ./status --recipes ./recipes --domain-suffix ci.example.org`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			users, err := checkWebView(o)
			if err != nil {
				return err
			}
			if o.leader.elect {
				return runReplica(ctx, o, users)
			}
			c, log, release, err := setup(o, o.specs)
			if err != nil {
				return err
			}
			defer release()
			ui, err := startWebView(ctx, o, users, log)
			if err != nil {
				return err
			}
			if o.metricsAddr != "" {
				leaderGauge(o.registry).Set(1) // the only reconciler of its directory leads
				ready := func() (string, error) {
					if !c.Ready() {
						return "", errors.New("initial sweep not done or engine event stream not connected")
					}
					return "ok", nil
				}
				if err := serveMetrics(ctx, o.metricsAddr, o.registry, ready, o.engine, ui, log); err != nil {
					return err
				}
			}
			// Replicas of this owner run with --leader-elect hold no spec-directory lock: their
			// lease is what tells that they run, and this process would act beside their leader.
			// Asked after the health endpoints listen, and for 10 s at most: an engine that does
			// not answer yet is the loop's to wait for.
			leaseCtx, cancelLease := context.WithTimeout(ctx, 10*time.Second)
			live, err := controller.LiveLeases(leaseCtx, c.R.Engine, time.Now())
			cancelLease()
			if err != nil {
				log.Info("could not check for the leases of --leader-elect replicas", "error", err.Error())
			} else if err := leaseRefusal(live, c.R.Owner, "run"); err != nil {
				return err
			}
			log.Info("reconciling", "specs", o.specs, "status", o.status, "recipes", o.recipes, "resync", o.resync.String())
			if warning := linkedSpecsWarning(o.specs, o.owner); warning != "" {
				log.Info(warning, "specs", o.specs, "owner", c.R.Owner)
			}
			return c.Run(ctx)
		},
	}
	loopFlags(cmd, o)
	f := cmd.Flags()
	// Only run serves metrics: a scrape of once or janitor, which end within their --timeout,
	// would see a process gone by the next interval, and a flag they took would be ignored.
	f.StringVar(&o.metricsAddr, "metrics-addr", "", "serve Prometheus metrics and health on this address")
	f.BoolVar(&o.leader.elect, "leader-elect", false, "run as one replica per manager: only the holder of the lease (a swarm config, see docs/ha.md) reconciles; needs --owner and directories shared by every manager")
	f.StringVar(&o.leader.identity, "leader-identity", "", "this replica's name in the lease (default <hostname>-<pid>)")
	f.DurationVar(&o.leader.lease, "lease-duration", 15*time.Second, "how long the others wait, after they last saw the lease renewed, before taking it")
	f.DurationVar(&o.leader.renew, "lease-renew-deadline", 10*time.Second, "how long the leader keeps acting without renewing the lease (less than --lease-duration)")
	// 1 s, not 2 s: client-go stretches a candidate's tries by up to 2.2 times the period, so a
	// failover can take the lease duration plus two such tries: 19.4 s with 1 s, 23.8 s with
	// 2 s (docs/ha.md).
	f.DurationVar(&o.leader.retry, "lease-retry-period", time.Second, "how often the leader renews and the others try to take the lease")
	f.StringVar(&o.uiAddr, "ui-addr", "", "serve the read-only web view of the apps on this address (loopback unless --ui-basic-auth is set; the --metrics-addr address serves both)")
	f.StringVar(&o.uiAuth, "ui-basic-auth", "", "file of user:bcrypt-hash lines (`htpasswd -nB USER`) the web view asks for")
	return cmd
}

// leaderOptions are the flags of --leader-elect.
type leaderOptions struct {
	elect               bool
	identity            string
	lease, renew, retry time.Duration
}

// ownerName is what --owner may be with --leader-elect: it names the lease object and goes
// into labels and file names.
var ownerName = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,39}$`)

// anyOwnerName is what --owner may be without --leader-elect (upper case too, as it always
// could): it goes into labels and backup file names, so no path separator, and it cannot be
// swarmstate.JanitorOwner.
var anyOwnerName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

// leaseTiming checks that a leader cut off from the swarm has stopped acting before another
// replica may take the lease: it renews last at some time T, gives up leading at most a retry
// period plus the renew deadline after T, and its workers stop within
// controller.DefaultStopWithin after that; a candidate acts no sooner than the lease duration
// after T.
func leaseTiming(lease, renew, retry time.Duration) error {
	switch {
	case retry <= 0 || retry >= renew || renew >= lease:
		return fmt.Errorf("lease timing: need 0 < --lease-retry-period (%s) < --lease-renew-deadline (%s) < --lease-duration (%s)", retry, renew, lease)
	case renew <= time.Duration(leaderelection.JitterFactor*float64(retry)):
		// client-go's elector refuses it too, after start-up, in words that name no flag.
		return fmt.Errorf("lease timing: --lease-renew-deadline (%s) must be more than %.1f times --lease-retry-period (%s): client-go's elector refuses less (its tries are up to that many retry periods apart)", renew, leaderelection.JitterFactor, retry)
	case retry+renew+controller.DefaultStopWithin >= lease:
		return fmt.Errorf("lease timing: a leader cut off may act for --lease-retry-period + --lease-renew-deadline + %s (its workers stopping) = %s after its last renew, and another replica may take the lease --lease-duration (%s) after it: make --lease-duration longer than that, or the renew deadline shorter",
			controller.DefaultStopWithin, retry+renew+controller.DefaultStopWithin, lease)
	case lease%time.Second != 0:
		return fmt.Errorf("--lease-duration %s: use whole seconds (the lease record keeps seconds)", lease)
	}
	return nil
}

// runReplica is `run --leader-elect`: campaign for the lease and reconcile only while holding
// it, with a controller built afresh for each term (a new leader resyncs everything).
func runReplica(ctx context.Context, o *options, users map[string][]byte) error {
	if o.owner == "" {
		return errors.New("--leader-elect needs --owner NAME, the same on every replica: it labels what they create and names their lease")
	}
	if !ownerName.MatchString(o.owner) {
		return fmt.Errorf("--owner %q: use 1-40 of a-z, 0-9, '.', '_' and '-', starting with a letter or digit", o.owner)
	}
	if err := leaseTiming(o.leader.lease, o.leader.renew, o.leader.retry); err != nil {
		return err
	}
	if o.specPoll == 0 {
		o.specPoll = 2 * time.Second // inotify does not see writes made on another host
	}
	w, err := wire(o, o.specs, false)
	if err != nil {
		return err
	}
	defer w.close()
	w.probeLocks = true
	log := w.log
	identity := o.leader.identity
	if identity == "" {
		host, _ := os.Hostname()
		identity = fmt.Sprintf("%s-%d", host, os.Getpid())
	}
	gauge := leaderGauge(o.registry)
	var current atomic.Pointer[controller.Controller]
	e := &controller.Election{
		Engine: w.engine, Owner: o.owner, Identity: identity,
		LeaseDuration: o.leader.lease, RenewDeadline: o.leader.renew, RetryPeriod: o.leader.retry,
		Stuck: func() {
			log.Info("exiting: the lease was lost and the workers did not stop in time")
			os.Exit(exitFailed)
		},
		Role: func(leading bool) {
			if leading {
				gauge.Set(1)
			} else {
				gauge.Set(0)
			}
		},
		Log: log,
	}
	ui, err := startWebView(ctx, o, users, log)
	if err != nil {
		return err
	}
	if o.metricsAddr != "" {
		ready := func() (string, error) {
			c := current.Load()
			if c == nil {
				if l := e.Leader(); l != "" {
					return "ok: follower, leader " + l, nil
				}
				return "ok: follower, leader unknown (the lease cannot be read)", nil
			}
			if !c.Ready() {
				return "", errors.New("leader: initial sweep not done or engine event stream not connected")
			}
			return "ok: leader " + identity, nil
		}
		if err := serveMetrics(ctx, o.metricsAddr, o.registry, ready, w.engine, ui, log); err != nil {
			return err
		}
	}
	log.Info("campaigning for the lease", "owner", o.owner, "identity", identity, "lease", controller.LeaseName(o.owner),
		"specs", o.specs, "status", o.status, "leaseDuration", o.leader.lease.String())
	return e.Run(ctx, func(lctx context.Context) {
		c, drop := w.controller()
		current.Store(c)
		defer current.Store(nil)
		defer drop()
		if err := c.Run(lctx); err != nil {
			log.Error(err, "controller stopped")
		}
	})
}

func onceCmd(o *options) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "once",
		Short: "Reconcile every app until it settles, then exit; non-zero if any app is Failed or Invalid",
		Long: "once makes one full pass: it reconciles every app that needs work and waits for those that\n" +
			"are converging (Pending, Deploying, Upgrading, Deleting) until each is in a phase that\n" +
			"waiting would not change (Ready, Degraded, Failed, Invalid, Suspended, Deleted, Expired).\n" +
			"It prints one line per app (app, phase, message) and exits 1 if any app is Failed or\n" +
			"Invalid, or if --timeout passed first (naming the apps not settled), 0 otherwise.",
		Example: `  reconciler once --specs ./specs --status ./status --recipes ./recipes --timeout 15m`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return pass(cmd.Context(), o, o.specs)
		},
	}
	passFlags(cmd, o)
	return cmd
}

func janitorCmd(o *options) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "janitor",
		Short: "Tear down everything this reconciler owns that no running reconciler holds, then exit",
		Long: "janitor is the orphan sweep against an empty desired set, run once: for a host where no\n" +
			"reconciler is running. Objects without the swarm-reconciler.app label are never touched.\n" +
			"It exits 1 if a teardown has not finished when --timeout passes, naming the apps.",
		Example: `  reconciler janitor --status ./status`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			empty, err := os.MkdirTemp("", "reconciler-janitor-")
			if err != nil {
				return err
			}
			defer os.RemoveAll(empty)
			o.janitor = true
			return pass(cmd.Context(), o, empty)
		},
	}
	passFlags(cmd, o)
	return cmd
}

// pass runs one full reconcile pass over specDir, bounded by --timeout, and turns the apps'
// phases into an exit code.
func pass(ctx context.Context, o *options, specDir string) error {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	c, _, release, err := setup(o, specDir)
	if err != nil {
		return err
	}
	defer release()
	// --timeout bounds the whole pass, from its first engine call: an engine that takes calls
	// and never answers (a manager electing its leader) must not hold the command for ever.
	passCtx, cancel := context.WithCancel(ctx)
	if o.passTimeout > 0 {
		passCtx, cancel = context.WithTimeout(ctx, o.passTimeout)
	}
	defer cancel()
	// Replicas run with --leader-elect hold no app lock and not the spec directory's: a lease
	// is what tells that they run.
	live, err := controller.LiveLeases(passCtx, c.R.Engine, time.Now())
	switch {
	case err != nil && ctx.Err() == nil && passCtx.Err() != nil:
		return &exitError{code: exitFailed, err: fmt.Errorf("timed out after %s checking for the leases of --leader-elect replicas: %w", o.passTimeout, err)}
	case err != nil:
		return err
	}
	command := "once"
	if o.janitor {
		command = "janitor"
	}
	if err := leaseRefusal(live, c.R.Owner, command); err != nil {
		return err
	}
	apps, unsettled, err := c.RunOnce(passCtx)
	if o.janitor {
		// A one-shot janitor leaves no volume job behind (DropJanitorJobs), also when cut short.
		dropCtx, cancelDrop := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		if _, derr := c.R.DropJanitorJobs(dropCtx); derr != nil {
			c.R.Log.Error(derr, "volume jobs of this janitor are left in the swarm: remove them by hand (docker service ls --filter label=swarm-reconciler.owner=(janitor))")
		}
		cancelDrop()
	}
	switch {
	case err != nil && ctx.Err() != nil:
		return &exitError{code: exitFailed, err: fmt.Errorf("interrupted by a signal before the pass ended (%w): each app keeps the status its last pass wrote; run it again to finish", err)}
	case err != nil && apps == nil && passCtx.Err() != nil:
		return &exitError{code: exitFailed, err: fmt.Errorf("timed out after %s listing the apps: %w", o.passTimeout, err)}
	case err != nil && apps == nil:
		return err
	}
	return passVerdict(os.Stdout, o.status, apps, unsettled, o.passTimeout)
}

// leaseRefusal is why command must not run beside the live leases (controller.LiveLeases): the
// janitor, beside any (it would take the replicas' apps for orphans); once and run, beside
// their own owner's (they would act on the leader's apps at the same time as the leader). nil
// if neither.
func leaseRefusal(live []string, owner, command string) error {
	const stopped = "a stopped replica releases its lease; the lease of one killed counts as live for its duration plus a minute of clock skew"
	if command == "janitor" {
		if len(live) > 0 {
			return &exitError{code: exitFailed, err: fmt.Errorf("reconciler replicas lead on this swarm (%s): the janitor sweeps what no running reconciler holds, and replicas run with --leader-elect hold no app lock; stop them first (%s), then run the janitor again", strings.Join(live, ", "), stopped)}
		}
		return nil
	}
	mine := slices.DeleteFunc(slices.Clone(live), func(l string) bool { return !strings.HasPrefix(l, controller.LeaseName(owner)+" ") })
	if len(mine) > 0 {
		return &exitError{code: exitFailed, err: fmt.Errorf("reconciler replicas of owner %s lead on this swarm (%s): %s would act on their apps beside their leader; let them reconcile (reconciler wait), or stop them first (%s)", owner, strings.Join(mine, ", "), command, stopped)}
	}
	return nil
}

// passVerdict prints one line per app of a pass (app, phase, message, from its status file)
// and returns the pass's exit error: code 1 naming the apps that had not settled when the
// timeout passed, with their last phase and message, the settled apps that are Failed or
// Invalid, and those whose teardown the pass left unfinished (still Deleting: what it cannot
// remove, or held by another process); nil when there are none.
func passVerdict(w io.Writer, statusDir string, apps, unsettled []string, timeout time.Duration) error {
	var (
		bad     []string
		waiting []string
		left    []string
	)
	for _, app := range apps {
		st, err := spec.ReadStatus(statusDir, app)
		if slices.Contains(unsettled, app) {
			last := "no status"
			if err == nil {
				last = string(st.Phase)
				if st.Message != "" {
					last += ": " + oneLine(st.Message, 200)
				}
			}
			waiting = append(waiting, fmt.Sprintf("%s (%s)", app, last))
		}
		if err != nil {
			continue
		}
		fmt.Fprintf(w, "%s\t%s\t%s\n", app, st.Phase, st.Message)
		switch {
		case slices.Contains(unsettled, app):
		case st.Phase == spec.PhaseFailed || st.Phase == spec.PhaseInvalid:
			bad = append(bad, app)
		case st.Phase == spec.PhaseDeleting:
			left = append(left, fmt.Sprintf("%s (%s)", app, oneLine(st.Message, 400)))
		}
	}
	var msgs []string
	if len(waiting) > 0 {
		msgs = append(msgs, fmt.Sprintf("timed out after %s: %d apps not settled: %s", timeout, len(waiting), strings.Join(waiting, "; ")))
	}
	if len(bad) > 0 {
		msgs = append(msgs, fmt.Sprintf("%d apps Failed or Invalid: %v (see their status files in %s)", len(bad), bad, statusDir))
	}
	if len(left) > 0 {
		msgs = append(msgs, fmt.Sprintf("%d apps not torn down by this pass: %s", len(left), strings.Join(left, "; ")))
	}
	if len(msgs) > 0 {
		return &exitError{code: exitFailed, err: errors.New(strings.Join(msgs, "; and "))}
	}
	return nil
}

// setup takes the spec-directory lock and wires a controller to the engine.
func setup(o *options, specDir string) (*controller.Controller, logr.Logger, func(), error) {
	w, err := wire(o, specDir, true)
	if err != nil {
		return nil, w.log, nil, err
	}
	c, drop := w.controller()
	return c, w.log, func() { drop(); w.close() }, nil
}

// wiring is what every controller of a process shares: the logger, the engine, the metrics,
// the lock directory. A replica of --leader-elect builds a fresh controller from it each time
// it starts leading.
type wiring struct {
	o        *options
	specDir  string
	log      logr.Logger
	policy   manifests.Policy
	lockDir  *locks.Dir
	specLock *locks.Lock
	engine   *client.Client
	metrics  *controller.Metrics
	// probeLocks: app locks are probed, not kept (--leader-elect: the lease is what makes this
	// replica the only one acting; see docs/ha.md).
	probeLocks bool
}

// wire sets up what the controllers of this process share; with lockSpecDir, it takes the
// spec-directory lock (one reconciler per spec directory on this host).
func wire(o *options, specDir string, lockSpecDir bool) (*wiring, error) {
	w := &wiring{o: o, specDir: specDir}
	var err error
	if w.log, err = newLogger(o.logFormat, o.verbosity); err != nil {
		return w, err
	}
	if w.policy, err = o.policy(); err != nil {
		return w, err
	}
	manifests.SweepExports()
	for _, d := range []string{specDir, o.status} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return w, fmt.Errorf("create %s: %w", d, err)
		}
	}
	if sameDir(specDir, o.status) {
		// A status file, <app>.json, would read as a second spec of its app: every app Invalid.
		return w, fmt.Errorf("--status %s is the spec directory %s: give the statuses a directory of their own", o.status, specDir)
	}
	if w.lockDir, err = locks.Open(o.lockDir); err != nil {
		return w, fmt.Errorf("lock directory: %w", err)
	}
	if lockSpecDir {
		if w.specLock, err = w.lockDir.SpecDir(specDir); err != nil {
			return w, err
		}
	}
	o.registry = newRegistry()
	if w.engine, err = instrumentedEngine(o.registry); err != nil {
		w.close()
		return w, err
	}
	o.engine = w.engine
	w.metrics = controller.NewMetrics(o.registry)
	return w, nil
}

// sameDir reports whether a and b, both existing, are one directory.
func sameDir(a, b string) bool {
	ai, errA := os.Stat(a)
	bi, errB := os.Stat(b)
	return errA == nil && errB == nil && os.SameFile(ai, bi)
}

func (w *wiring) close() {
	manifests.Cleanup()
	if w.specLock != nil {
		_ = w.specLock.Release()
	}
	if w.engine != nil {
		_ = w.engine.Close()
	}
}

// controller builds a controller with nothing cached; drop releases the app locks it took.
func (w *wiring) controller() (*controller.Controller, func()) {
	o, log := w.o, w.log
	r := &controller.Reconciler{
		Engine: w.engine, SpecsDir: w.specDir, StatusDir: o.status, RecipesDir: o.recipes,
		Defaults: o.defaults(), StatusRetention: o.retention, Now: time.Now, Log: log, Locks: w.lockDir,
		ProbeLocks: w.probeLocks,
		Owner:      o.ownerOf(w.specDir), Backups: spec.BackupStore{Dir: o.backups}, Remote: o.remote(),
		NodeJobs: o.nodeJobs, Policy: w.policy, Metrics: w.metrics, MaxDeploying: max(o.maxDeploying, 0),
		MaxRemoving: max(o.maxRemoving, 0),
	}
	if o.janitor {
		r.Owner = "" // the janitor sweeps orphans of every spec directory
	} else if left, err := r.Backups.CleanPartial(r.Owner); err != nil {
		log.Info("leftovers of interrupted backups not removed", "error", err.Error())
	} else if len(left) > 0 {
		log.Info("removed the leftovers of interrupted backups", "paths", left)
	}
	for _, dir := range []string{o.status, w.specDir} {
		if left, err := spec.CleanTemp(dir, time.Now()); err != nil {
			log.Info("temporary files of interrupted writes not removed", "dir", dir, "error", err.Error())
		} else if len(left) > 0 {
			log.Info("removed the temporary files of interrupted writes", "paths", left)
		}
	}
	if n, err := strconv.ParseInt(os.Getenv(faultKillEnv), 10, 64); err == nil && n > 0 {
		log.Info("fault injection: this process kills itself after a number of swarm changes", "env", faultKillEnv, "steps", n)
		// The removal of a stopped task container is not counted: it races swarm's own
		// reaper, so a run has it or not, and the Nth step must be the same change in every
		// run. What is left after it is what the reaper would leave.
		var counted atomic.Int64
		r.Step = func(_ int64, a controller.Action) {
			if a.Kind == controller.RemoveContainer {
				return
			}
			if step := counted.Add(1); step == n {
				log.Info("fault injection: SIGKILL", "step", step, "after", a.String())
				_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
			}
		}
	}
	c := &controller.Controller{R: r, Workers: o.workers, Resync: o.resync, ReconcileTimeout: o.reconcileTimeout, SpecPoll: o.specPoll, Log: log}
	return c, r.ReleaseAll
}

// linkedSpecsWarning says why --owner should be set for a spec directory that is a symbolic
// link and none was given: the owner label is derived from the directory the link resolves
// to at start-up, so a tool that points the link elsewhere (git-sync, ln -sfn) gives the next
// process another owner, which then takes the apps it deployed for another reconciler's.
func linkedSpecsWarning(specs, owner string) string {
	if owner != "" {
		return ""
	}
	fi, err := os.Lstat(filepath.Clean(specs))
	if err != nil {
		return ""
	}
	if fi.Mode()&os.ModeSymlink != 0 {
		return "the spec directory is a symbolic link and no --owner is set: the owner label comes from the directory it points at now, and pointed elsewhere, a restarted reconciler would not own the apps deployed before; set --owner to keep one owner"
	}
	// A link above it (git-sync's --link with the specs in a folder of the synced tree) moves
	// the owner label too (locks.SpecDirID follows every link), and the watch does not follow it.
	abs, err := filepath.Abs(specs)
	if err != nil {
		return ""
	}
	if real, err := filepath.EvalSymlinks(abs); err == nil && real != abs {
		return "the spec directory's path goes through a symbolic link (it is " + real + " now) and no --owner is set: the owner label comes from where it resolves at start-up; if a tool points that link elsewhere (git-sync), a restarted reconciler would not own the apps deployed before, and the running one keeps watching the old directory: set --owner, and give --specs as the link itself"
	}
	return ""
}
