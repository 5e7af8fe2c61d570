package controller

import (
	"context"
	"fmt"
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
	Log      logr.Logger

	queue  workqueue.TypedRateLimitingInterface[string]
	mu     sync.Mutex
	stacks map[string]string // stack namespace -> app, to route engine events
	timers map[string]*time.Timer

	swept     atomic.Bool     // the initial sweep finished
	initial   map[string]bool // apps of the initial sweep not reconciled yet
	streaming atomic.Bool     // the engine event stream is connected
}

// Run reconciles until ctx ends. The initial resync (which includes the orphan sweep) runs
// before the function starts serving events, so every app is looked at once at start-up.
func (c *Controller) Run(ctx context.Context) error {
	c.init()
	defer c.queue.ShutDown()
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
	if err := c.resync(ctx); err != nil {
		c.Log.Error(err, "initial resync failed; retrying at the next resync")
	}

	var wg sync.WaitGroup
	changes := make(chan swarmstate.Change, 256)
	wg.Add(4 + c.Workers)
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
	c.queue.ShutDown()
	wg.Wait()
	return nil
}

func (c *Controller) init() {
	if c.Workers <= 0 {
		c.Workers = 4
	}
	if c.Debounce <= 0 {
		c.Debounce = 100 * time.Millisecond
	}
	q := workqueue.NewTypedRateLimitingQueueWithConfig(
		workqueue.NewTypedItemExponentialFailureRateLimiter[string](200*time.Millisecond, 30*time.Second),
		workqueue.TypedRateLimitingQueueConfig[string]{Name: "apps"})
	c.mu.Lock()
	c.queue = q
	c.stacks = map[string]string{}
	c.timers = map[string]*time.Timer{}
	c.mu.Unlock()
	c.R.observed = c.route
}

func (c *Controller) eventStream(connected bool) {
	c.streaming.Store(connected)
	c.Log.V(1).Info("engine event stream", "connected", connected)
}

// processNext runs one reconcile and maps its (result, error) to a queue action.
func (c *Controller) processNext(ctx context.Context) bool {
	app, shutdown := c.queue.Get()
	if shutdown {
		return false
	}
	defer c.queue.Done(app)
	start := time.Now()
	res, err := c.reconcile(ctx, app)
	c.reconciled(app)
	result := "success"
	switch {
	case ctx.Err() != nil:
		result = "canceled"
	case err != nil:
		result = "error"
		c.Log.Error(err, "reconcile failed; retrying with backoff", "app", app, "retries", c.queue.NumRequeues(app))
		c.queue.AddRateLimited(app)
		if m := c.R.Metrics; m != nil {
			m.QueueRetries.Inc()
		}
	case res.RequeueAfter > 0:
		result = "requeue"
		c.queue.Forget(app)
		c.queue.AddAfter(app, res.RequeueAfter)
	default:
		c.queue.Forget(app)
	}
	if m := c.R.Metrics; m != nil {
		m.Reconciles.WithLabelValues(result).Inc()
		m.ReconcileSeconds.Observe(time.Since(start).Seconds())
	}
	return true
}

// QueueDepth is the number of apps waiting in the work queue.
func (c *Controller) QueueDepth() float64 {
	c.mu.Lock()
	q := c.queue
	c.mu.Unlock()
	if q != nil {
		return float64(q.Len())
	}
	return 0
}

// Ready reports whether the initial sweep is done and the engine event stream is connected.
func (c *Controller) Ready() bool { return c.swept.Load() && c.streaming.Load() }

// reconcile recovers a panic into an error, so one bad app cannot stop the loop.
func (c *Controller) reconcile(ctx context.Context, app string) (res Result, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic in reconcile of %s: %v", app, p)
		}
	}()
	return c.R.Reconcile(ctx, app)
}

func (c *Controller) resyncEvery(ctx context.Context) {
	if c.Resync <= 0 {
		return
	}
	t := time.NewTicker(c.Resync)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := c.resync(ctx); err != nil {
				c.Log.Error(err, "resync failed")
			}
		}
	}
}

// resync enqueues every app that may need work: a spec whose status does not describe it as
// settled, an app that owns objects but has no spec (an orphan: the sweep), a status with no
// spec behind it. It costs one directory scan and one snapshot of all apps, whatever their
// number; settled apps are not reconciled at all.
func (c *Controller) resync(ctx context.Context) error {
	apps, err := c.R.Pending(ctx)
	if err != nil {
		return err
	}
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
		c.queue.Add(app)
	}
	return nil
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
	for {
		select {
		case <-ctx.Done():
			return
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
			if app, ok := spec.AppName(filepath.Base(ev.Name)); ok {
				c.debounce(app)
			}
		}
	}
}

// debounce enqueues app once its spec file has been quiet for a moment: CI may write a
// file in several steps.
func (c *Controller) debounce(app string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t, ok := c.timers[app]; ok {
		t.Reset(c.Debounce)
		return
	}
	c.timers[app] = time.AfterFunc(c.Debounce, func() {
		c.mu.Lock()
		delete(c.timers, app)
		c.mu.Unlock()
		c.queue.Add(app)
	})
}

func (c *Controller) route(app, stack string) {
	if stack == "" {
		return
	}
	c.mu.Lock()
	c.stacks[stack] = app
	c.mu.Unlock()
}

// eventSettle is when, after an engine event about a task's container, its app is looked at
// again: swarm's task list shows what the event announced (a task running, failed, healthy)
// only once the manager's dispatcher has recorded the agent's report, which it batches every
// 100 ms. Looking every 25 ms over that span notices it within 25 ms, rather than at the next
// wait interval; the task list, not the event, stays the word on whether a task runs.
var eventSettle = []time.Duration{
	25 * time.Millisecond, 50 * time.Millisecond, 75 * time.Millisecond, 100 * time.Millisecond,
	125 * time.Millisecond, 150 * time.Millisecond, 200 * time.Millisecond, 300 * time.Millisecond,
}

// routeChanges turns engine events into app names. A service is named <stack>_<service>, and
// stacks may themselves contain underscores, so every prefix is tried.
func (c *Controller) routeChanges(ctx context.Context, changes <-chan swarmstate.Change) {
	for {
		select {
		case <-ctx.Done():
			return
		case ch := <-changes:
			app := c.appOf(ch)
			if app == "" {
				continue
			}
			c.Log.V(2).Info("engine event", "app", app, "action", ch.Action, "task", ch.Task, "lag", time.Since(ch.At))
			c.queue.Add(app)
			if ch.TaskChange() {
				// Timers, not AddAfter: the queue keeps only the earliest of an item's
				// pending AddAfters, which would leave one look at 25 ms.
				for _, d := range eventSettle {
					time.AfterFunc(d, func() { c.queue.Add(app) })
				}
			}
		}
	}
}

func (c *Controller) appOf(ch swarmstate.Change) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if app, ok := c.stacks[ch.Stack]; ok {
		return app
	}
	name := ch.Service
	for i := strings.LastIndex(name, "_"); i > 0; i = strings.LastIndex(name[:i], "_") {
		if app, ok := c.stacks[name[:i]]; ok {
			return app
		}
	}
	return ""
}
