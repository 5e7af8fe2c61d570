package controller

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/go-logr/logr"
	"k8s.io/client-go/util/workqueue"

	"github.com/swarm-reconciler/reconciler/spec"
	"github.com/swarm-reconciler/reconciler/swarmstate"
)

// Controller feeds the Reconciler from its inputs: the spec directory (debounced fsnotify
// events), the engine's event stream, and a periodic resync. Each input only enqueues an app
// name; the queue merges duplicates, never runs one app on two workers at once, and retries
// errors with exponential backoff.
type Controller struct {
	R        *Reconciler
	Workers  int
	Resync   time.Duration
	Debounce time.Duration
	// SpecPoll, when set, also scans the spec directory this often: inotify does not see the
	// writes another host makes to a shared filesystem.
	SpecPoll time.Duration
	// ReconcileTimeout bounds one Reconcile: past it the pass's context is cancelled and the
	// pass counts as an error (retried with backoff), so a hung engine call (an image pull
	// that never ends) holds one worker for at most this long. 0: no bound.
	ReconcileTimeout time.Duration
	Log              logr.Logger

	// Seams for the loop's own tests; nil in production.
	reconcileFunc func(ctx context.Context, app string) (Result, error) // instead of R.Reconcile
	pendingFunc   func(ctx context.Context) ([]string, error)           // instead of R.Pending
	movedFunc     func(app string) bool                                 // instead of R.TasksMoved
	clock         timerClock                                            // the debounce and look timers' clock

	queue   workqueue.TypedRateLimitingInterface[string]
	limiter workqueue.TypedRateLimiter[string] // the queue's backoff after errors

	mu        sync.Mutex
	routes    map[string]string    // stack namespace -> app, to route engine events
	debounces map[string]*appTimer // spec-file events of an app, waiting for its file to be quiet
	looks     map[string]*look     // apps looked at again after a task event
	waits     map[string]*wait     // apps waiting on swarm: when each is looked at again
	seq       uint64               // numbers every timer armed, so a superseded one does nothing
	stopped   bool                 // ctx ended: no timer is armed any more
	lookCtx   context.Context      // Run's context, for the looks' task list calls
	// watcher is Run's watch of the spec directory, to which the folders of overlay files are
	// added as the specs name them; overlayResync coalesces their events.
	watcher       *fsnotify.Watcher
	overlayResync atomic.Bool

	swept     atomic.Bool     // the initial sweep finished
	initial   map[string]bool // apps of the initial sweep not reconciled yet
	streaming atomic.Bool     // the engine event stream is connected
	broke     atomic.Bool     // the event stream broke since it last connected
	resyncNow chan struct{}   // a resync wanted now (the event stream is back), coalesced
}

// timerClock is what the loop's own timers need of a clock; tests pass a fake one.
type timerClock interface {
	Now() time.Time
	AfterFunc(d time.Duration, f func()) stopper
}

type stopper interface{ Stop() bool }

type realClock struct{}

func (realClock) Now() time.Time                              { return time.Now() }
func (realClock) AfterFunc(d time.Duration, f func()) stopper { return time.AfterFunc(d, f) }

// appTimer is the one pending timer of an app; seq tells its firing from a superseded one's.
type appTimer struct {
	timer stopper
	seq   uint64
}

// Run reconciles until ctx ends. The initial resync (which includes the orphan sweep) runs
// before the function starts serving events, so every app is looked at once at start-up.
func (c *Controller) Run(ctx context.Context) error {
	c.init()
	c.mu.Lock()
	c.lookCtx = ctx
	c.mu.Unlock()
	defer c.queue.ShutDown()
	defer c.stopTimers()
	if err := os.MkdirAll(c.R.SpecsDir, 0o755); err != nil {
		return fmt.Errorf("create spec directory: %w", err)
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch spec directory: %w", err)
	}
	defer w.Close()
	if err := w.Add(c.R.SpecsDir); err != nil {
		return fmt.Errorf("watch spec directory %s: %w", c.R.SpecsDir, err)
	}
	c.mu.Lock()
	c.watcher = w
	c.mu.Unlock()
	c.R.enqueue = func(app string) { c.queue.Add(app) }
	if err := c.resync(ctx); err != nil {
		c.Log.Error(err, "initial resync failed; retrying when the engine's event stream connects")
		c.broke.Store(true) // its first connect resyncs
	}

	var wg sync.WaitGroup
	changes := make(chan swarmstate.Change, 256)
	wg.Add(5 + c.Workers)
	go func() { defer wg.Done(); c.pollSpecs(ctx) }()
	go func() { defer wg.Done(); swarmstate.Watch(ctx, c.R.Engine, c.eventStream, changes) }()
	go func() { defer wg.Done(); c.routeChanges(ctx, changes) }()
	go func() { defer wg.Done(); c.watchSpecs(ctx, w) }()
	go func() { defer wg.Done(); c.resyncEvery(ctx) }()
	for i := 0; i < c.Workers; i++ {
		go func() {
			defer wg.Done()
			for c.processNext(ctx) {
			}
		}()
	}
	<-ctx.Done()
	c.stopTimers()
	c.queue.ShutDown()
	wg.Wait()
	if m := c.R.Metrics; m != nil {
		// The queue stops updating its gauges of the work in progress once it shuts down, at
		// whatever they said last; no reconcile runs now (a --leader-elect replica goes on as
		// a follower and must not report its last pass as running for ever).
		m.queueUnfinished.Set(0)
		m.queueLongest.Set(0)
		// The apps by phase are the last resync's: a replica that stopped leading counts
		// none (the leader does), or a sum over the replicas counts each app once a term.
		m.AppsByPhase.Reset()
	}
	return nil
}

// init sets the defaults and makes the queue. The queue's metrics are client-go's own,
// recorded on R.Metrics when set.
func (c *Controller) init() {
	if c.Workers <= 0 {
		c.Workers = 4
	}
	if c.Debounce <= 0 {
		c.Debounce = 100 * time.Millisecond
	}
	if c.clock == nil {
		c.clock = realClock{}
	}
	c.limiter = workqueue.NewTypedItemExponentialFailureRateLimiter[string](200*time.Millisecond, 30*time.Second)
	cfg := workqueue.TypedRateLimitingQueueConfig[string]{Name: "apps"}
	if m := c.R.Metrics; m != nil {
		cfg.MetricsProvider = queueMetrics{m}
	}
	q := workqueue.NewTypedRateLimitingQueueWithConfig(c.limiter, cfg)
	c.resyncNow = make(chan struct{}, 1)
	c.broke.Store(false)
	c.mu.Lock()
	c.queue = q
	c.routes = map[string]string{}
	c.debounces = map[string]*appTimer{}
	c.looks = map[string]*look{}
	c.waits = map[string]*wait{}
	c.stopped = false
	c.mu.Unlock()
	c.R.observed = c.route
}

func (c *Controller) eventStream(connected bool) {
	c.streaming.Store(connected)
	c.Log.V(1).Info("engine event stream", "connected", connected)
	if !connected {
		c.broke.Store(true)
	} else if c.broke.Swap(false) {
		// Events were missed while it was down (dockerd restarted): every app is looked at
		// now, not at the next resync or at the end of its backoff, each up to 30 s away.
		select {
		case c.resyncNow <- struct{}{}:
		default:
		}
	}
}

// processNext runs one reconcile and maps its (result, error) to a queue action:
//
//	the process is stopping  -> nothing (the next start looks at every app that needs it)
//	error (a timeout too)    -> AddRateLimited: again after a backoff that doubles, 200ms to 30s
//	RequeueAfter > 0         -> Forget the backoff, look again after RequeueAfter (see waitOn)
//	neither                  -> Forget: done until an input enqueues the app again
//
// A pass drops the look its app had scheduled: it sees the world itself.
func (c *Controller) processNext(ctx context.Context) bool {
	app, shutdown := c.queue.Get()
	if shutdown {
		return false
	}
	defer c.queue.Done(app)
	c.waitOn(app, Result{}) // this pass looks now; its result schedules the next look
	start := c.clock.Now()
	res, log, err := c.runPass(ctx, app)
	c.reconciled(app)
	result := "success"
	switch {
	case ctx.Err() != nil:
		result = "canceled"
	case err != nil:
		result = "error"
		log.Error(err, "reconcile failed; retrying with backoff", "retries", c.queue.NumRequeues(app))
		c.queue.AddRateLimited(app)
	case res.RequeueAfter > 0:
		result = "requeue"
		c.queue.Forget(app)
		c.waitOn(app, res)
	default:
		c.queue.Forget(app)
	}
	log.V(1).Info("reconciled", "result", result, "took", c.clock.Now().Sub(start).String(),
		"requeueAfter", res.RequeueAfter.String(), "tasksFor", res.TasksFor.String())
	if m := c.R.Metrics; m != nil {
		m.Reconciles.WithLabelValues(result).Inc()
	}
	return true
}

// Ready reports whether the initial sweep is done and the engine event stream is connected.
func (c *Controller) Ready() bool { return c.swept.Load() && c.streaming.Load() }

// runPass runs one reconcile of app. Every line it logs names the app and a reconcile ID
// of its own: the logger is in the context (logr.FromContextOrDiscard), and log is it. The
// pass ends after ReconcileTimeout at the latest, and a pass past it is an error whatever it
// returned, unless it ran a backup or restore, which has a deadline of its own. A panic is
// recovered into an error, so one bad app cannot stop the loop.
func (c *Controller) runPass(ctx context.Context, app string) (res Result, log logr.Logger, err error) {
	log = c.Log.WithValues("app", app, "reconcileID", reconcileID())
	pctx := withProcess(logr.NewContext(ctx, log), ctx)
	if c.ReconcileTimeout > 0 {
		var cancel context.CancelFunc
		pctx, cancel = context.WithTimeout(pctx, c.ReconcileTimeout)
		defer cancel()
	}
	res, err = c.call(pctx, app)
	if ctx.Err() == nil && errors.Is(pctx.Err(), context.DeadlineExceeded) && !res.Job {
		if err == nil {
			err = pctx.Err()
		}
		return Result{}, log, fmt.Errorf("reconcile of %s ran past its timeout of %s: %w", app, c.ReconcileTimeout, err)
	}
	return res, log, err
}

func (c *Controller) call(ctx context.Context, app string) (res Result, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic in reconcile of %s: %v", app, p)
		}
	}()
	if c.reconcileFunc != nil {
		return c.reconcileFunc(ctx, app)
	}
	return c.R.Reconcile(ctx, app)
}

// reconcileID names one pass in the log: 8 random hex digits, like a short trace ID.
func reconcileID() string { return fmt.Sprintf("%08x", rand.Uint32()) }

func (c *Controller) pending(ctx context.Context) ([]string, error) {
	if c.pendingFunc != nil {
		return c.pendingFunc(ctx)
	}
	return c.R.Pending(ctx)
}

// resyncEvery resyncs every Resync (never when it is 0), and each time the event stream
// reconnects after a break, until such a catch-up resync succeeds.
func (c *Controller) resyncEvery(ctx context.Context) {
	var tick <-chan time.Time
	var backoff time.Duration
	if c.Resync > 0 {
		t := time.NewTicker(c.Resync)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick:
			if err := c.resync(ctx); err != nil {
				c.Log.Error(err, "resync failed")
			}
		case <-c.resyncNow:
			if err := c.resync(ctx); err != nil {
				// The engine is not back yet (its event stream answers before its swarm has a
				// leader): the stream stays connected and will not ask again, so try again
				// after a backoff until a resync goes through.
				backoff = min(max(2*backoff, resyncRetryMin), resyncRetryMax)
				c.Log.V(1).Info("resync after the event stream reconnected failed; trying again", "error", err.Error(), "after", backoff.String())
				c.clock.AfterFunc(backoff, func() {
					select {
					case c.resyncNow <- struct{}{}:
					default:
					}
				})
			} else {
				backoff = 0
			}
		}
	}
}

// The backoff of a catch-up resync that failed: short, since apps wait on it, and capped at
// the periodic resync's default.
const (
	resyncRetryMin = 500 * time.Millisecond
	resyncRetryMax = 30 * time.Second
)

// resync enqueues every app that may need work: a spec whose status does not describe it as
// settled, an app that owns objects but has no spec (an orphan: the sweep), a status with no
// spec behind it. It costs one directory scan and one snapshot of all apps, whatever their
// number; settled apps are not reconciled at all, and neither are apps that wait on swarm with
// a look due before the next resync (waitOn): they are being watched, and a pass of each on
// every resync would, with many apps deploying at once, fill the queue their events need.
func (c *Controller) resync(ctx context.Context) error {
	apps, err := c.pending(ctx)
	if err != nil {
		return err
	}
	c.watchOverlays()
	c.mu.Lock()
	if !c.swept.Load() && c.initial == nil {
		// The first successful resync is the initial sweep: it is done once each app it
		// found has been reconciled once.
		c.initial = map[string]bool{}
		for _, app := range apps {
			c.initial[app] = true
		}
		if len(apps) == 0 {
			c.swept.Store(true)
		}
	}
	c.mu.Unlock()
	for _, app := range apps {
		if !c.lookDue(app, c.Resync) {
			c.queue.Add(app)
		}
	}
	return nil
}

// lookDue reports whether app has a look scheduled by its last pass within d from now, or one
// under way: its time passed less than d (at most lookTimeout) ago. A look's task list call
// takes hundreds of ms on a busy engine, and with a hundred apps waiting a resync that took
// those looks for stuck queued a full pass of each, a third of all passes at N = 100. A look
// overdue by longer is stuck on an engine that took the call and never answers: the resync
// enqueues the app, and the pass replaces that look.
func (c *Controller) lookDue(app string, d time.Duration) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	w := c.waits[app]
	now := c.clock.Now()
	return w != nil && w.at.After(now.Add(-min(d, lookTimeout))) && !w.at.After(now.Add(d))
}

// reconciled notes that app was reconciled once, for the initial sweep's readiness.
func (c *Controller) reconciled(app string) {
	if c.swept.Load() {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.initial == nil {
		return
	}
	delete(c.initial, app)
	if len(c.initial) == 0 {
		c.swept.Store(true)
	}
}

func (c *Controller) watchSpecs(ctx context.Context, w *fsnotify.Watcher) {
	specs := filepath.Clean(c.R.SpecsDir)
	// The kernel drops the watch of a directory that is removed or moved away. While the spec
	// directory is gone, rewatch tries every Debounce to watch the one at its path again (a tool
	// that replaces the directory whole: rm -rf and mkdir, or mv specs.new specs); once it is
	// watched, a resync picks up what was written there meanwhile.
	var (
		rewatch *time.Ticker
		again   <-chan time.Time
	)
	defer func() {
		if rewatch != nil {
			rewatch.Stop()
		}
	}()
	gone := func() {
		unwatchSpecs(w, specs)
		if rewatch == nil {
			c.Log.Info("spec directory removed or moved away: watching for it to be made again", "dir", specs)
			rewatch = time.NewTicker(max(c.Debounce, 10*time.Millisecond))
			again = rewatch.C
		}
	}
	// The folder holding the spec directory, when that is a symbolic link, is watched on a
	// watcher of its own: on w, fsnotify would drop the IN_DELETE_SELF of the directory the link
	// points at (its parent path being watched), and watchOverlays would prune it.
	var lw *fsnotify.Watcher
	var linkEvents <-chan fsnotify.Event
	var linkErrors <-chan error
	relink := func() {
		if lw != nil {
			lw.Close()
		}
		lw, linkEvents, linkErrors = c.watchLink(specs), nil, nil
		if lw != nil {
			linkEvents, linkErrors = lw.Events, lw.Errors
		}
	}
	defer func() {
		if lw != nil {
			lw.Close()
		}
	}()
	relink()
	for {
		select {
		case <-ctx.Done():
			return
		case <-again:
			if err := w.Add(specs); err != nil {
				continue // not made again yet
			}
			rewatch.Stop()
			rewatch, again = nil, nil
			relink()
			c.Log.Info("spec directory watched again", "dir", specs)
			go func() {
				if err := c.resync(ctx); err != nil {
					c.Log.Error(err, "resync after the spec directory was made again")
				}
			}()
		case err, ok := <-linkErrors:
			if !ok {
				linkErrors = nil
				continue
			}
			c.Log.Error(err, "watch of the folder holding the spec directory's link")
			go func() { _ = c.resync(ctx) }()
		case ev, ok := <-linkEvents:
			if !ok {
				linkEvents = nil
				continue
			}
			if ev.Name != specs || !ev.Has(fsnotify.Create|fsnotify.Remove|fsnotify.Rename) {
				continue // another entry of the folder holding the link, or the link's attributes
			}
			// The link removed, made again or renamed over (ln -sfn, git-sync): the
			// directory it pointed at is not the spec directory any more.
			unwatchSpecs(w, specs)
			if ev.Has(fsnotify.Create) && w.Add(specs) == nil {
				if rewatch != nil {
					rewatch.Stop()
					rewatch, again = nil, nil
				}
				c.Log.Info("spec directory link points elsewhere: watching the directory it points at", "dir", specs)
				go func() {
					if err := c.resync(ctx); err != nil {
						c.Log.Error(err, "resync after the spec directory link changed")
					}
				}()
				continue
			}
			gone()
		case err, ok := <-w.Errors:
			if !ok {
				return
			}
			// An overflow loses events; a resync picks up whatever they were.
			c.Log.Error(err, "spec directory watch")
			go func() { _ = c.resync(ctx) }()
		case ev, ok := <-w.Events:
			if !ok {
				return
			}
			if ev.Name == specs && ev.Has(fsnotify.Remove|fsnotify.Rename) {
				gone()
			} else if filepath.Dir(ev.Name) != specs {
				c.overlayChanged(ctx) // a file in a folder of overlay files
			} else if app, ok := spec.AppName(filepath.Base(ev.Name)); ok {
				c.debounce(app)
			} else if ev.Has(fsnotify.Create) {
				c.overlayChanged(ctx) // perhaps a folder an overlay names, made now
			}
		}
	}
}

// unwatchSpecs drops the watches of the spec directory and of the overlay folders inside it.
// Each is held by the directory that was at its path when it was added: once the spec
// directory is another (a link pointed elsewhere, a directory moved away), the resync that
// follows its watch coming back watches the overlay folders now at those paths
// (watchOverlays adds only a path not watched).
func unwatchSpecs(w *fsnotify.Watcher, specs string) {
	for _, p := range w.WatchList() {
		if p == specs || strings.HasPrefix(p, specs+string(filepath.Separator)) {
			_ = w.Remove(p)
		}
	}
}

// watchLink watches, on a watcher of its own, the folder holding the spec directory when that
// is a symbolic link; nil when it is not one, or the folder cannot be watched.
func (c *Controller) watchLink(specs string) *fsnotify.Watcher {
	fi, err := os.Lstat(specs)
	if err != nil || fi.Mode()&os.ModeSymlink == 0 {
		return nil
	}
	dir := filepath.Dir(specs)
	lw, err := fsnotify.NewWatcher()
	if err == nil {
		if err = lw.Add(dir); err != nil {
			lw.Close()
		}
	}
	if err != nil {
		c.Log.Error(err, "the spec directory is a symbolic link, and the folder holding it cannot be watched: the directory the link points at now stays the one watched", "dir", dir)
		return nil
	}
	return lw
}

// watchOverlays adds the folders of the specs' overlay files to the spec directory's watch:
// an overlay file edited is a change of its app, found by a resync (which compares each app's
// generation, overlays included). A folder that does not exist yet is watched once a spec
// names it and it exists.
func (c *Controller) watchOverlays() {
	dirs := c.R.OverlayDirs()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.watcher == nil {
		return
	}
	// The watcher's own list, not one of ours: the kernel drops the watch of a folder that is
	// removed (an app's overlay folder going with it), and one made again under that name must
	// be watched again. A folder no spec names any more is dropped, so the watch does not grow
	// with every app an operator ever had.
	watched := map[string]bool{}
	for _, p := range c.watcher.WatchList() {
		watched[p] = true
	}
	for _, dir := range dirs {
		if !watched[dir] {
			_ = c.watcher.Add(dir) // a folder not made yet is watched once a later scan finds it
		}
		delete(watched, dir)
	}
	delete(watched, filepath.Clean(c.R.SpecsDir))
	for p := range watched {
		_ = c.watcher.Remove(p)
	}
}

// overlayChanged resyncs once the folder has been quiet for Debounce: many events of one
// edit make one resync.
func (c *Controller) overlayChanged(ctx context.Context) {
	if !c.overlayResync.CompareAndSwap(false, true) {
		return
	}
	go func() {
		select {
		case <-ctx.Done():
			return
		case <-time.After(c.Debounce):
		}
		c.overlayResync.Store(false)
		if err := c.resync(ctx); err != nil {
			c.Log.Error(err, "resync after an overlay file changed")
		}
	}()
}

// pollSpecs scans the spec directory every SpecPoll and queues the apps whose files appeared,
// changed (size or modification time) or went since the last scan.
func (c *Controller) pollSpecs(ctx context.Context) {
	if c.SpecPoll <= 0 {
		return
	}
	t := time.NewTicker(c.SpecPoll)
	defer t.Stop()
	seen := scanSpecs(c.R.SpecsDir)
	var seenOverlays map[string]specStamp
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := scanSpecs(c.R.SpecsDir)
		if now == nil {
			continue // unreadable this time; the resync reports it
		}
		overlays := map[string]specStamp{}
		for _, dir := range c.R.OverlayDirs() {
			for name, st := range scanSpecs(dir) {
				overlays[filepath.Join(dir, name)] = st
			}
		}
		if seenOverlays != nil && !maps.Equal(overlays, seenOverlays) {
			c.overlayChanged(ctx)
		}
		seenOverlays = overlays
		for name, st := range now {
			if seen[name] != st {
				c.queueSpec(name)
			}
		}
		for name := range seen {
			if _, ok := now[name]; !ok {
				c.queueSpec(name)
			}
		}
		seen = now
	}
}

type specStamp struct {
	size    int64
	modTime time.Time
}

func scanSpecs(dir string) map[string]specStamp {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	out := make(map[string]specStamp, len(entries))
	for _, e := range entries {
		if info, err := e.Info(); err == nil {
			out[e.Name()] = specStamp{info.Size(), info.ModTime()}
		}
	}
	return out
}

func (c *Controller) queueSpec(name string) {
	if app, ok := spec.AppName(name); ok {
		c.debounce(app)
	}
}

// debounce enqueues app once its spec file has been quiet for Debounce: CI may write a file
// in several steps. Each event restarts the app's one timer.
func (c *Controller) debounce(app string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return
	}
	if old := c.debounces[app]; old != nil {
		old.timer.Stop()
	}
	seq := c.nextSeqLocked()
	c.debounces[app] = &appTimer{seq: seq, timer: c.clock.AfterFunc(c.Debounce, func() {
		c.mu.Lock()
		t := c.debounces[app]
		current := t != nil && t.seq == seq && !c.stopped
		if current {
			delete(c.debounces, app)
		}
		c.mu.Unlock()
		if current {
			c.queue.Add(app)
		}
	})}
}

func (c *Controller) nextSeqLocked() uint64 {
	c.seq++
	return c.seq
}

// route is the Reconciler's observed hook: app uses stack, so engine events of stack are
// app's. An empty stack means that app is gone (torn down, nothing left): every route to it
// and its pending look are dropped, so the maps hold only apps that exist.
func (c *Controller) route(app, stack string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if stack != "" {
		c.routes[stack] = app
		return
	}
	for s, a := range c.routes {
		if a == app {
			delete(c.routes, s)
		}
	}
	if l := c.looks[app]; l != nil {
		l.stop()
		delete(c.looks, app)
	}
	if w := c.waits[app]; w != nil {
		w.timer.Stop()
		delete(c.waits, app)
	}
}

// stopTimers stops every pending timer and arms none after: ctx ended.
func (c *Controller) stopTimers() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stopped = true
	for app, t := range c.debounces {
		t.timer.Stop()
		delete(c.debounces, app)
	}
	for app, l := range c.looks {
		l.stop()
		delete(c.looks, app)
	}
	for app, w := range c.waits {
		w.timer.Stop()
		delete(c.waits, app)
	}
}

// eventSettle is when, after an engine event about a task's container, its app is looked at
// again: swarm's task list shows what the event announced (a task running, failed, healthy)
// only once the manager's dispatcher has recorded the agent's report, which it batches every
// 100 ms. Looking every 25 ms over that span notices it within 25 ms, rather than at the next
// wait interval; the task list, not the event, stays the word on whether a task runs. The
// last offset is the settle window: a task event keeps the app's looks going until then.
// The looks at 500 ms and 1 s are for a busy manager (a hundred apps deploying at once), whose
// reports lag; a look that finds the task list unchanged since the last pass costs one call.
var eventSettle = []time.Duration{
	25 * time.Millisecond, 50 * time.Millisecond, 75 * time.Millisecond, 100 * time.Millisecond,
	125 * time.Millisecond, 150 * time.Millisecond, 200 * time.Millisecond, 300 * time.Millisecond,
	500 * time.Millisecond, time.Second,
}

// look is an app's pending look after task events: one timer per app, however many events.
type look struct {
	last     time.Time // the app's latest task event: the eventSettle offsets count from it
	at       time.Time // when timer fires
	timer    stopper
	seq      uint64
	checking bool // a look's task list call is under way: the next look is armed after it
}

// stop stops l's timer; during a look's task list call it has none.
func (l *look) stop() {
	if l.timer != nil {
		l.timer.Stop()
	}
}

// routeChanges turns engine events into app names. Every event enqueues its app at once; a
// task event also keeps the app's looks going (see lookAfterTaskEvent). The pass at once often
// sees what a container start announces: on this host swarm records the task running a few ms
// after the start event, while the pass is still reading.
func (c *Controller) routeChanges(ctx context.Context, changes <-chan swarmstate.Change) {
	for {
		select {
		case <-ctx.Done():
			return
		case ch := <-changes:
			if ch.Node != "" {
				c.Log.V(2).Info("node event", "node", ch.Node, "action", ch.Action, "state", ch.NodeState)
				if c.R != nil {
					c.R.NodesChanged() // labels and the like count for placement messages
				}
				if !ch.NodeState {
					// Tasks stay where they are; an app waiting on a task a label change
					// lets swarm place sees it move in its looks.
					continue
				}
				// A node went down, came back or was drained: any app may have tasks there.
				for _, app := range c.routedApps() {
					if !c.backingOff(app) {
						c.queue.Add(app)
					}
				}
				continue
			}
			app := c.appOf(ch)
			if app == "" {
				continue
			}
			c.Log.V(2).Info("engine event", "app", app, "action", ch.Action, "task", ch.Task, "lag", time.Since(ch.At))
			if c.backingOff(app) {
				continue
			}
			c.queue.Add(app)
			if ch.TaskChange() {
				c.lookAfterTaskEvent(app)
			}
		}
	}
}

// backingOff reports whether app's last pass failed and its retry waits out the backoff: an
// engine event then adds nothing (the retry sees what it announces). A dockerd that stops sends
// a burst of events, every container of every app dying, and a pass each would only fail again
// at once: about thirty failing passes an app in a second, each logged as an error. A spec
// change and the resync after the event stream reconnects still enqueue at once.
func (c *Controller) backingOff(app string) bool {
	return c.queue.NumRequeues(app) > 0
}

// lookAfterTaskEvent opens (or extends) app's settle window to eventSettle's last offset from
// now, and makes sure a look is due within the first offset. However many events come, app
// has one timer, and a burst of events costs about as many looks as one event.
func (c *Controller) lookAfterTaskEvent(app string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return
	}
	now := c.clock.Now()
	l := c.looks[app]
	if l == nil {
		l = &look{}
		c.looks[app] = l
	}
	l.last = now
	if l.checking || l.timer != nil && !l.at.After(now.Add(eventSettle[0])) {
		return // a look is due soon enough, or under way and arms the next from l.last
	}
	c.armLookLocked(app, l, now, eventSettle[0])
}

func (c *Controller) armLookLocked(app string, l *look, now time.Time, d time.Duration) {
	if l.timer != nil {
		l.timer.Stop()
	}
	seq := c.nextSeqLocked()
	l.seq, l.at = seq, now.Add(d)
	l.timer = c.clock.AfterFunc(d, func() { c.lookNow(app, seq) })
}

// lookNow is a look firing: it enqueues app if its task list moved and, while the settle window
// is open, arms the next look at the next eventSettle offset from the latest event. The next
// look is armed once this one's task list call is back: on a busy engine that call takes
// hundreds of ms, and overlapping calls for one app would only add to the load that slows it.
func (c *Controller) lookNow(app string, seq uint64) {
	c.mu.Lock()
	l := c.looks[app]
	if l == nil || l.seq != seq || c.stopped {
		c.mu.Unlock()
		return // superseded, forgotten or stopped
	}
	l.timer, l.checking = nil, true
	since := c.clock.Now().Sub(l.last)
	ctx := c.lookCtx
	c.mu.Unlock()
	moved := !c.backingOff(app) && c.tasksMoved(ctx, app)
	if moved {
		c.Log.V(2).Info("tasks moved", "app", app, "sinceEvent", since.String())
		c.queue.Add(app)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.looks[app] != l || c.stopped {
		return // forgotten or stopped meanwhile
	}
	l.checking = false
	now := c.clock.Now()
	if d, ok := nextLook(l.last, now); ok {
		c.armLookLocked(app, l, now, d)
	} else {
		delete(c.looks, app)
	}
}

// tasksMoved is Reconciler.TasksMoved, or the loop tests' stand-in for it. The call is bounded
// by lookTimeout: an engine that accepts the call and never answers (a manager still electing
// its leader after a restart) must not hold the app's looks for ever; an unanswered call counts
// as moved, so a pass, with its own timeout and backoff, takes over.
func (c *Controller) tasksMoved(ctx context.Context, app string) bool {
	switch {
	case c.movedFunc != nil:
		return c.movedFunc(app)
	case c.reconcileFunc != nil || ctx == nil:
		return true
	}
	ctx, cancel := context.WithTimeout(ctx, lookTimeout)
	defer cancel()
	return c.R.TasksMoved(ctx, app)
}

// lookTimeout bounds a look's task list call.
const lookTimeout = 10 * time.Second

// wait is an app's look scheduled by its last pass, which found it waiting on swarm.
type wait struct {
	timer stopper
	seq   uint64
	every time.Duration // the pass's RequeueAfter
	until time.Time     // the end of its TasksFor: from then on, a look runs a pass whatever
	at    time.Time     // when timer fires
}

// waitOn schedules app's next look after a pass that returned res, replacing any the app had;
// a zero res schedules none. A look runs a pass, except while the app waits on its tasks alone
// (res.TasksFor): then a look whose task list has not moved since the pass (one call) runs
// none and comes again after RequeueAfter, until TasksFor is over. With a hundred apps waiting
// on swarm, their looks cost a hundred task list calls every RequeueAfter instead of six
// hundred calls and a hundred passes, and the queue stays free for the passes that events
// call for.
func (c *Controller) waitOn(app string, res Result) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if old := c.waits[app]; old != nil {
		old.timer.Stop()
		delete(c.waits, app)
	}
	if res.RequeueAfter <= 0 || c.stopped {
		return
	}
	now := c.clock.Now()
	w := &wait{every: res.RequeueAfter}
	if res.TasksFor > 0 {
		w.until = now.Add(res.TasksFor)
	}
	c.waits[app] = w
	c.armWaitLocked(app, w, now)
}

func (c *Controller) armWaitLocked(app string, w *wait, now time.Time) {
	d := w.every
	if !w.until.IsZero() {
		d = min(d, max(w.until.Sub(now), 0))
	}
	seq := c.nextSeqLocked()
	w.seq, w.at = seq, now.Add(d)
	w.timer = c.clock.AfterFunc(d, func() { c.waitOver(app, seq) })
}

// waitOver is a scheduled look firing: a pass, unless the app waits on its tasks and they have
// not moved, in which case the look is scheduled again.
func (c *Controller) waitOver(app string, seq uint64) {
	c.mu.Lock()
	w := c.waits[app]
	if w == nil || w.seq != seq || c.stopped {
		c.mu.Unlock()
		return // superseded by a pass, forgotten or stopped
	}
	ctx := c.lookCtx
	tasksOnly := !w.until.IsZero() && c.clock.Now().Before(w.until)
	c.mu.Unlock()
	if tasksOnly && !c.tasksMoved(ctx, app) {
		c.mu.Lock()
		if w := c.waits[app]; w != nil && w.seq == seq && !c.stopped {
			c.armWaitLocked(app, w, c.clock.Now())
		}
		c.mu.Unlock()
		return
	}
	c.mu.Lock()
	if w := c.waits[app]; w != nil && w.seq == seq {
		delete(c.waits, app)
	}
	c.mu.Unlock()
	c.Log.V(2).Info("wait over", "app", app, "tasksMoved", tasksOnly)
	c.queue.Add(app)
}

// nextLook is how long after now the next look is due after a task event at last: at the first
// eventSettle offset from last that is still ahead; none once the window has passed.
func nextLook(last, now time.Time) (time.Duration, bool) {
	for _, d := range eventSettle {
		if at := last.Add(d); at.After(now) {
			return at.Sub(now), true
		}
	}
	return 0, false
}

// routedApps are the apps engine events are routed to: every app with objects in the swarm.
func (c *Controller) routedApps() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	seen := map[string]bool{}
	var apps []string
	for _, app := range c.routes {
		if !seen[app] {
			seen[app] = true
			apps = append(apps, app)
		}
	}
	return apps
}

// appOf is the app an engine event is about. A service is named <stack>_<service>, and stacks
// may themselves contain underscores, so every prefix is tried.
func (c *Controller) appOf(ch swarmstate.Change) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if app, ok := c.routes[ch.Stack]; ok {
		return app
	}
	name := ch.Service
	for i := strings.LastIndex(name, "_"); i > 0; i = strings.LastIndex(name[:i], "_") {
		if app, ok := c.routes[name[:i]]; ok {
			return app
		}
	}
	return ""
}
