package controller

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/util/workqueue"

	"github.com/swarm-reconciler/reconciler/swarmstate"
)

// fakeClock runs the loop's timers when a test moves it, in the test's goroutine.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
}

type fakeTimer struct {
	clock *fakeClock
	at    time.Time
	f     func()
	done  bool // fired or stopped
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) AfterFunc(d time.Duration, f func()) stopper {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{clock: c, at: c.now.Add(d), f: f}
	c.timers = append(c.timers, t)
	return t
}

func (t *fakeTimer) Stop() bool {
	t.clock.mu.Lock()
	defer t.clock.mu.Unlock()
	was := !t.done
	t.done = true
	return was
}

// advance moves the clock by d, firing the timers that come due in the order of their times.
func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	end := c.now.Add(d)
	c.mu.Unlock()
	for {
		c.mu.Lock()
		var next *fakeTimer
		for _, t := range c.timers {
			if !t.done && !t.at.After(end) && (next == nil || t.at.Before(next.at)) {
				next = t
			}
		}
		if next == nil {
			c.now = end
			c.mu.Unlock()
			return
		}
		if next.at.After(c.now) {
			c.now = next.at
		}
		next.done = true
		c.mu.Unlock()
		next.f()
	}
}

// wantIdle fails t if a timer is still armed.
func (c *fakeClock) wantIdle(t *testing.T) {
	t.Helper()
	if n := c.pending(); n != 0 {
		t.Errorf("%d timers left armed", n)
	}
}

// pending is the number of timers armed and neither fired nor stopped.
func (c *fakeClock) pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, t := range c.timers {
		if !t.done {
			n++
		}
	}
	return n
}

// recQueue is the controller's real queue, recording the calls the loop makes. A backoff or a
// delayed add is recorded, not waited for: the test adds the app again itself.
type recQueue struct {
	workqueue.TypedRateLimitingInterface[string]
	limiter workqueue.TypedRateLimiter[string]
	clock   *fakeClock

	mu    sync.Mutex
	calls []string
	adds  []time.Time // the fake clock's time at each Add
}

func (q *recQueue) record(format string, args ...any) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.calls = append(q.calls, fmt.Sprintf(format, args...))
}

func (q *recQueue) Add(app string) {
	q.record("add %s", app)
	if q.clock != nil {
		q.mu.Lock()
		q.adds = append(q.adds, q.clock.Now())
		q.mu.Unlock()
	}
	q.TypedRateLimitingInterface.Add(app)
}

func (q *recQueue) AddAfter(app string, d time.Duration) { q.record("after %s %s", d, app) }
func (q *recQueue) AddRateLimited(app string)            { q.record("backoff %s %s", q.limiter.When(app), app) }
func (q *recQueue) Forget(app string)                    { q.record("forget %s", app); q.limiter.Forget(app) }
func (q *recQueue) NumRequeues(app string) int           { return q.limiter.NumRequeues(app) }

// take returns the calls recorded since the last take.
func (q *recQueue) take() []string {
	q.mu.Lock()
	defer q.mu.Unlock()
	c := q.calls
	q.calls = nil
	return c
}

func (q *recQueue) addTimes() []time.Time {
	q.mu.Lock()
	defer q.mu.Unlock()
	return slices.Clone(q.adds)
}

func (q *recQueue) addCount(app string) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := 0
	for _, c := range q.calls {
		if c == "add "+app {
			n++
		}
	}
	return n
}

// newTestLoop is a Controller whose reconciles are reconcile, on a fake clock, with its queue
// recorded.
func newTestLoop(t *testing.T, reconcile func(ctx context.Context, app string) (Result, error)) (*Controller, *recQueue, *fakeClock) {
	t.Helper()
	clock := newFakeClock()
	c := &Controller{R: &Reconciler{SpecsDir: t.TempDir(), StatusDir: t.TempDir()}, reconcileFunc: reconcile, clock: clock}
	c.init()
	q := &recQueue{TypedRateLimitingInterface: c.queue, limiter: c.limiter, clock: clock}
	c.queue = q
	t.Cleanup(func() { c.stopTimers(); q.ShutDown() })
	return c, q, clock
}

// TestProcessNextMapsResultsToQueueActions: an error retries with a backoff that doubles, a
// RequeueAfter comes back after that long with the backoff forgotten, a nil result forgets the
// app; a panic and a reconcile past its timeout are errors; a stopping process does nothing.
func TestProcessNextMapsResultsToQueueActions(t *testing.T) {
	type answer struct {
		res   Result
		err   error
		panic bool
		hang  bool // until the pass's context ends, then return res, err
	}
	var next answer
	c, q, _ := newTestLoop(t, func(ctx context.Context, app string) (Result, error) {
		switch {
		case next.panic:
			panic("boom")
		case next.hang:
			<-ctx.Done()
		}
		return next.res, next.err
	})
	c.ReconcileTimeout = 20 * time.Millisecond
	ctx := context.Background()
	fail := errors.New("engine did not answer")
	steps := []struct {
		answer answer
		want   []string
	}{
		{answer{err: fail}, []string{"backoff 200ms a"}},
		{answer{err: fail}, []string{"backoff 400ms a"}},
		{answer{panic: true}, []string{"backoff 800ms a"}},
		{answer{res: Result{RequeueAfter: 2 * time.Second}}, []string{"forget a"}}, // and a look in 2s: TestWaitOn
		{answer{err: fail}, []string{"backoff 200ms a"}},                           // forgotten: the backoff starts over
		{answer{}, []string{"forget a"}},
		{answer{hang: true, err: context.DeadlineExceeded}, []string{"backoff 200ms a"}},
		{answer{hang: true}, []string{"backoff 400ms a"}}, // past its timeout, even if it says nothing went wrong
		{answer{hang: true, res: Result{RequeueAfter: time.Second}}, []string{"backoff 800ms a"}},
	}
	for i, s := range steps {
		next = s.answer
		c.queue.Add("a")
		q.take()
		if !c.processNext(ctx) {
			t.Fatalf("step %d: processNext says the queue shut down", i)
		}
		if got := q.take(); !slices.Equal(got, s.want) {
			t.Errorf("step %d (%+v): queue calls %q, want %q", i, s.answer, got, s.want)
		}
	}

	// A stopping process: the pass is cancelled, and nothing is queued again.
	stopping, cancel := context.WithCancel(ctx)
	next = answer{hang: true, err: context.Canceled}
	c.queue.Add("a")
	q.take()
	go func() { time.Sleep(10 * time.Millisecond); cancel() }()
	c.ReconcileTimeout = time.Hour
	c.processNext(stopping)
	if got := q.take(); len(got) != 0 {
		t.Errorf("cancelled pass: queue calls %q, want none", got)
	}
}

// TestReconcileTimeoutIsAnError: the error of a pass past its timeout says so, and wraps
// what the reconcile returned.
func TestReconcileTimeoutIsAnError(t *testing.T) {
	c, _, _ := newTestLoop(t, func(ctx context.Context, app string) (Result, error) {
		<-ctx.Done()
		return Result{}, fmt.Errorf("pull image: %w", ctx.Err())
	})
	c.ReconcileTimeout = 10 * time.Millisecond
	start := time.Now()
	_, _, err := c.runPass(context.Background(), "a")
	if err == nil || !strings.Contains(err.Error(), "ran past its timeout of 10ms") || !strings.Contains(err.Error(), "pull image") ||
		!errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("the pass took %s with a timeout of 10ms", took)
	}
}

// TestEveryLogLineOfAPassNamesIt: the logger in a pass's context carries the app and a
// reconcile ID of that pass.
func TestEveryLogLineOfAPassNamesIt(t *testing.T) {
	var (
		mu    sync.Mutex
		lines []string
	)
	c, _, _ := newTestLoop(t, func(ctx context.Context, app string) (Result, error) {
		logr.FromContextOrDiscard(ctx).Info("applied", "object", "x_app")
		return Result{}, errors.New("fail")
	})
	c.Log = funcr.New(func(prefix, args string) {
		mu.Lock()
		defer mu.Unlock()
		lines = append(lines, args)
	}, funcr.Options{})
	for range 2 {
		c.queue.Add("a")
		c.processNext(context.Background())
	}
	ids := map[string]bool{}
	for _, l := range lines {
		if !strings.Contains(l, `"app"="a"`) {
			t.Errorf("log line without the app: %s", l)
		}
		_, id, ok := strings.Cut(l, `"reconcileID"="`)
		if !ok {
			t.Errorf("log line without a reconcile ID: %s", l)
			continue
		}
		id, _, _ = strings.Cut(id, `"`)
		ids[id] = true
	}
	// Two passes, each logging "applied" and "reconcile failed": two IDs on four lines.
	if len(lines) != 4 || len(ids) != 2 {
		t.Errorf("%d lines with %d reconcile IDs, want 4 with 2:\n%s", len(lines), len(ids), strings.Join(lines, "\n"))
	}
}

// TestDebounceSpecEvents: several writes of a spec file in a row enqueue its app once, when
// the file has been quiet for Debounce.
func TestDebounceSpecEvents(t *testing.T) {
	c, q, clock := newTestLoop(t, nil)
	c.Debounce = 100 * time.Millisecond
	for range 5 {
		c.debounce("a")
		clock.advance(40 * time.Millisecond)
	}
	c.debounce("b")
	if n := q.addCount("a"); n != 0 {
		t.Fatalf("enqueued %d times while its file was still being written", n)
	}
	clock.advance(59 * time.Millisecond)
	if n := q.addCount("a"); n != 0 {
		t.Fatalf("enqueued %d times 99ms after the last write", n)
	}
	clock.advance(time.Second)
	if a, b := q.addCount("a"), q.addCount("b"); a != 1 || b != 1 {
		t.Errorf("enqueued a %d and b %d times, want once each", a, b)
	}
	clock.wantIdle(t)
}

// TestEventRouting: an event is routed to the app whose stack prefixes its service name,
// underscores and all, the longest stack first; events of unknown stacks are ignored.
func TestEventRouting(t *testing.T) {
	c, q, _ := newTestLoop(t, nil)
	c.route("ch-1", "ch-1_ci_example_org")
	c.route("x", "x")
	c.route("xy", "x_y") // a stack that is a prefix of another's services
	for _, tc := range []struct {
		change swarmstate.Change
		want   string
	}{
		{swarmstate.Change{Service: "ch-1_ci_example_org_app", Action: "update"}, "ch-1"},
		{swarmstate.Change{Service: "ch-1_ci_example_org_db", Stack: "ch-1_ci_example_org", Task: "t1", Action: "die"}, "ch-1"},
		{swarmstate.Change{Stack: "ch-1_ci_example_org", Task: "t2", Action: "start"}, "ch-1"},
		{swarmstate.Change{Service: "x_y_app"}, "xy"},
		{swarmstate.Change{Service: "x_app"}, "x"},
		{swarmstate.Change{Service: "traefik_app", Stack: "traefik"}, ""},
		{swarmstate.Change{Service: "ch-1_ci_example"}, ""},
		{swarmstate.Change{Service: "noprefix"}, ""},
	} {
		if got := c.appOf(tc.change); got != tc.want {
			t.Errorf("appOf(%+v) = %q, want %q", tc.change, got, tc.want)
		}
	}

	// Through routeChanges: each routed event enqueues its app at once; the others nothing.
	ctx, cancel := context.WithCancel(context.Background())
	changes := make(chan swarmstate.Change)
	done := make(chan struct{})
	go func() { defer close(done); c.routeChanges(ctx, changes) }()
	changes <- swarmstate.Change{Service: "traefik_app", Action: "update"}
	changes <- swarmstate.Change{Service: "ch-1_ci_example_org_app", Action: "update"}
	changes <- swarmstate.Change{Service: "x_y_app", Action: "update"}
	cancel()
	<-done
	if got := q.take(); !slices.Equal(got, []string{"add ch-1", "add xy"}) {
		t.Errorf("routeChanges enqueued %q, want ch-1 and xy", got)
	}

	// A node event (a node down, back, drained) enqueues every routed app: any may have tasks
	// there.
	ctx, cancel = context.WithCancel(context.Background())
	done = make(chan struct{})
	go func() { defer close(done); c.routeChanges(ctx, changes) }()
	changes <- swarmstate.Change{Node: "n2", Action: "update", NodeState: true}
	cancel()
	<-done
	got := q.take()
	slices.Sort(got)
	if !slices.Equal(got, []string{"add ch-1", "add x", "add xy"}) {
		t.Errorf("a node event enqueued %q, want every routed app", got)
	}

	// A node update that moves no task (swarm recording the node's network attachments as
	// tasks start, a label added) enqueues nothing: at N = 100 there are hundreds of them.
	ctx, cancel = context.WithCancel(context.Background())
	done = make(chan struct{})
	go func() { defer close(done); c.routeChanges(ctx, changes) }()
	changes <- swarmstate.Change{Node: "n2", Action: "update"}
	cancel()
	<-done
	if got := q.take(); len(got) > 0 {
		t.Errorf("a node update that moves no task enqueued %q, want nothing", got)
	}
}

// TestOneTaskEventLooksOnSchedule: after one task event the app is enqueued at once and
// then looked at on the eventSettle schedule, by one timer, and not after the window.
func TestOneTaskEventLooksOnSchedule(t *testing.T) {
	c, q, clock := newTestLoop(t, nil)
	c.route("a", "a_example_org")
	start := clock.Now()
	c.lookAfterTaskEvent("a")
	for range 1000 {
		if n := clock.pending(); n > 1 {
			t.Fatalf("%d timers pending for one app", n)
		}
		clock.advance(time.Millisecond)
	}
	var got []time.Duration
	for _, at := range q.addTimes() {
		got = append(got, at.Sub(start))
	}
	if !slices.Equal(got, eventSettle) {
		t.Errorf("looks at %v after the event, want %v", got, eventSettle)
	}
	clock.wantIdle(t)
}

// TestTaskEventsCoalesce: a burst of task events (a five-service app restarting) costs about
// as many looks as one event, from one timer, and the looks stop one window after the last
// event. Before, each event armed eight timers of its own.
func TestTaskEventsCoalesce(t *testing.T) {
	c, q, clock := newTestLoop(t, nil)
	c.route("a", "a_example_org")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	changes := make(chan swarmstate.Change)
	go c.routeChanges(ctx, changes)

	const events = 20
	var last time.Time
	for i := range events {
		changes <- swarmstate.Change{Service: "a_example_org_app", Stack: "a_example_org", Task: fmt.Sprint("t", i), Action: "die"}
		changes <- swarmstate.Change{} // a no-op, so the event above has been handled when this send returns
		last = clock.Now()
		if n := clock.pending(); n > 1 {
			t.Fatalf("%d timers pending for one app", n)
		}
		clock.advance(5 * time.Millisecond)
	}
	clock.advance(2 * time.Second)
	adds := q.addTimes()
	looks := len(adds) - events // the adds at the events themselves
	// 100 ms of events: about four 25 ms looks inside it, then the schedule after the last.
	if max := 100/25 + len(eventSettle) + 1; looks > max {
		t.Errorf("%d events made %d looks, want at most %d", events, looks, max)
	}
	if end := adds[len(adds)-1]; end.After(last.Add(eventSettle[len(eventSettle)-1])) {
		t.Errorf("a look at %s, after the window of the last event at %s", end, last)
	}
	clock.wantIdle(t)
	t.Logf("%d task events: %d adds at the events, %d looks (before: %d timers)", events, events, looks, events*8)
}

// TestForgetApp: route(app, "") drops every route to app and its pending look.
func TestForgetApp(t *testing.T) {
	c, q, clock := newTestLoop(t, nil)
	c.route("a", "a_example_org")
	c.route("a", "a_old_example_org") // a domain it moved from
	c.route("b", "b_example_org")
	c.lookAfterTaskEvent("a")
	c.lookAfterTaskEvent("b")
	c.route("a", "")
	for stack, want := range map[string]string{"a_example_org": "", "a_old_example_org": "", "b_example_org": "b"} {
		if got := c.appOf(swarmstate.Change{Stack: stack}); got != want {
			t.Errorf("after forgetting a, %s routes to %q, want %q", stack, got, want)
		}
	}
	clock.advance(time.Second)
	if n := q.addCount("a"); n != 0 {
		t.Errorf("a forgotten app was looked at %d times", n)
	}
	if n := q.addCount("b"); n != len(eventSettle) {
		t.Errorf("b was looked at %d times, want %d", n, len(eventSettle))
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.routes) != 1 || len(c.looks) != 0 {
		t.Errorf("left: routes %v, looks %d", c.routes, len(c.looks))
	}
}

// TestStopTimers: when ctx ends, pending looks and debounces stop and no new one is armed.
func TestStopTimers(t *testing.T) {
	c, q, clock := newTestLoop(t, nil)
	c.route("a", "a_example_org")
	c.lookAfterTaskEvent("a")
	c.debounce("b")
	c.stopTimers()
	c.lookAfterTaskEvent("a")
	c.debounce("b")
	clock.advance(time.Second)
	if n := q.addCount("a") + q.addCount("b"); n != 0 {
		t.Errorf("enqueued %d times after stop", n)
	}
	clock.wantIdle(t)
}

// TestQueueMetrics: the queue's own metrics land on the registry under the names README
// documents: depth, retries, reconcile durations.
func TestQueueMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	calls := 0
	c := &Controller{R: &Reconciler{Metrics: NewMetrics(reg)}, reconcileFunc: func(context.Context, string) (Result, error) {
		calls++
		if calls == 1 {
			return Result{}, errors.New("fail")
		}
		return Result{}, nil
	}}
	c.init()
	defer c.queue.ShutDown()
	c.queue.Add("a")
	c.queue.Add("b")
	if v := gathered(t, reg, "swarm_reconciler_workqueue_depth"); v != 2 {
		t.Errorf("depth %v with two apps queued", v)
	}
	c.processNext(context.Background()) // a fails: back on the queue after a backoff
	c.processNext(context.Background()) // b
	for name, want := range map[string]float64{
		"swarm_reconciler_workqueue_retries_total":    1,
		"swarm_reconciler_reconcile_duration_seconds": 2, // samples
		"swarm_reconciler_reconciles_total":           2,
	} {
		if v := gathered(t, reg, name); v != want {
			t.Errorf("%s = %v, want %v", name, v, want)
		}
	}
	// a comes back after its backoff (200 ms): one more add, and depth 1, by then.
	if v := gathered(t, reg, "swarm_reconciler_workqueue_adds_total"); v != 2 && v != 3 {
		t.Errorf("adds %v, want 2 (3 once a's backoff passed)", v)
	}
	if v := gathered(t, reg, "swarm_reconciler_workqueue_depth"); v != 0 && v != 1 {
		t.Errorf("depth %v after both were taken, want 0 (1 once a's backoff passed)", v)
	}
}

// gathered is the value of an unlabelled gauge or counter, the sum over a labelled one, or
// the sample count of a histogram.
func gathered(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		var sum float64
		for _, m := range f.GetMetric() {
			switch {
			case m.Gauge != nil:
				sum += m.GetGauge().GetValue()
			case m.Counter != nil:
				sum += m.GetCounter().GetValue()
			case m.Histogram != nil:
				sum += float64(m.GetHistogram().GetSampleCount())
			}
		}
		return sum
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// TestWaitOn: a pass that waits on swarm is looked at again after RequeueAfter. One that waits
// on its tasks alone (TasksFor) runs a pass at a look only if its task list moved, and at the
// end of TasksFor whatever; a pass in between drops the look it had; a resync leaves a waiting
// app to its look; a forgotten or stopped app is not looked at.
func TestWaitOn(t *testing.T) {
	c, q, clock := newTestLoop(t, nil)
	moved := map[string]bool{}
	var checks []string
	c.movedFunc = func(app string) bool { checks = append(checks, app); return moved[app] }

	// A plain wait: one pass after RequeueAfter, no task list call.
	start := clock.Now()
	c.waitOn("w", Result{RequeueAfter: 500 * time.Millisecond})
	clock.advance(499 * time.Millisecond)
	if n := q.addCount("w"); n != 0 {
		t.Fatalf("w enqueued %d times before its RequeueAfter", n)
	}
	clock.advance(time.Millisecond)
	if n := q.addCount("w"); n != 1 || len(checks) != 0 {
		t.Fatalf("w: %d passes and task checks %q at its RequeueAfter, want 1 and none", n, checks)
	}
	if got := q.addTimes()[0].Sub(start); got != 500*time.Millisecond {
		t.Errorf("w enqueued %s after its pass, want 500ms", got)
	}

	// Waiting on tasks that stand still: a check every 2s, a pass only at the end of TasksFor.
	checks = nil
	c.waitOn("t", Result{RequeueAfter: 2 * time.Second, TasksFor: 7 * time.Second})
	clock.advance(6999 * time.Millisecond)
	if n := q.addCount("t"); n != 0 || len(checks) != 3 {
		t.Errorf("t before the end of TasksFor: %d passes, %d task checks; want 0 and 3 (at 2, 4, 6s)", n, len(checks))
	}
	clock.advance(time.Millisecond)
	if n := q.addCount("t"); n != 1 || len(checks) != 3 {
		t.Errorf("t at the end of TasksFor: %d passes, %d task checks; want 1 and 3", n, len(checks))
	}
	clock.advance(10 * time.Second)
	if n := q.addCount("t"); n != 1 {
		t.Errorf("t: %d passes after its look ran one; want no more until a pass schedules one", n)
	}

	// Tasks that moved: a pass at the first check after the move.
	checks = nil
	c.waitOn("m", Result{RequeueAfter: time.Second, TasksFor: 10 * time.Second})
	clock.advance(1500 * time.Millisecond)
	moved["m"] = true
	clock.advance(500 * time.Millisecond)
	if n := q.addCount("m"); n != 1 || len(checks) != 2 {
		t.Errorf("m: %d passes, %d checks once its tasks moved; want 1 and 2", n, len(checks))
	}

	// A pass drops the look the app had: only the new pass's look is scheduled.
	c.waitOn("f", Result{RequeueAfter: time.Second})
	c.queue.Add("f")
	q.take()
	c.reconcileFunc = func(_ context.Context, app string) (Result, error) {
		if app != "f" {
			return Result{}, nil // w, t and m, still in the queue from their looks
		}
		return Result{RequeueAfter: 3 * time.Second}, nil
	}
	for c.queue.Len() > 0 {
		c.processNext(context.Background())
	}
	q.take()
	clock.advance(2 * time.Second)
	if n := q.addCount("f"); n != 0 {
		t.Errorf("f enqueued %d times by the look its pass replaced", n)
	}

	// A resync leaves f to its look, due before the next resync, and enqueues r (not waiting)
	// and x, whose look (an expiry, say) is due after the next resync.
	c.Resync = 2 * time.Second
	c.waitOn("x", Result{RequeueAfter: time.Hour})
	c.pendingFunc = func(context.Context) ([]string, error) { return []string{"f", "r", "x"}, nil }
	if err := c.resync(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := q.take(); !slices.Equal(got, []string{"add r", "add x"}) {
		t.Errorf("resync enqueued %q, want r and x", got)
	}
	c.waitOn("x", Result{})

	// A look whose time passed less than a resync ago is under way (its task list call takes
	// a while on a busy engine): the resync leaves its app to it. One overdue by longer (its
	// call hangs on an engine that came back half-way) does not keep the resync away.
	c.pendingFunc = func(context.Context) ([]string, error) { return []string{"h"}, nil }
	for _, tc := range []struct {
		overdue time.Duration
		want    []string
	}{{time.Second, nil}, {2*time.Second + time.Millisecond, []string{"add h"}}} {
		c.mu.Lock()
		c.waits["h"] = &wait{timer: &fakeTimer{clock: clock}, at: clock.Now().Add(-tc.overdue), every: 2 * time.Second}
		c.mu.Unlock()
		if err := c.resync(context.Background()); err != nil {
			t.Fatal(err)
		}
		if got := q.take(); !slices.Equal(got, tc.want) {
			t.Errorf("resync with h's look overdue by %s enqueued %q, want %q", tc.overdue, got, tc.want)
		}
	}
	c.waitOn("h", Result{})

	// Forgotten, then stopped: no look, and none armed after.
	c.route("f", "")
	clock.advance(4 * time.Second)
	if got := q.take(); len(got) != 0 {
		t.Errorf("after forgetting f: queue calls %q, want none", got)
	}
	c.waitOn("s", Result{RequeueAfter: time.Second})
	c.stopTimers()
	c.waitOn("s", Result{RequeueAfter: time.Second})
	clock.advance(5 * time.Second)
	if got := q.take(); len(got) != 0 {
		t.Errorf("after stop: queue calls %q, want none", got)
	}
	clock.wantIdle(t)
}

// TestLookWaitsForItsCheck: a look's task list call can take hundreds of ms on a busy engine;
// no second look of the app is armed while it is under way, events meanwhile only move the
// window, and the next look is armed once the call is back. Forgetting or stopping the app
// during the call leaves nothing armed.
func TestLookWaitsForItsCheck(t *testing.T) {
	c, q, clock := newTestLoop(t, nil)
	c.route("a", "a_example_org")
	var during []int
	c.movedFunc = func(app string) bool {
		c.lookAfterTaskEvent(app) // an event while the call is under way
		during = append(during, clock.pending())
		return false
	}
	c.lookAfterTaskEvent("a")
	clock.advance(eventSettle[0])
	if len(during) != 1 || during[0] != 0 {
		t.Fatalf("timers pending during the look's call: %v, want [0]", during)
	}
	if n := clock.pending(); n != 1 {
		t.Fatalf("%d timers pending after the look's call, want the next look", n)
	}
	if n := q.addCount("a"); n != 0 {
		t.Errorf("a enqueued %d times; its tasks never moved", n)
	}

	for _, end := range []func(){func() { c.route("a", "") }, c.stopTimers} {
		c.movedFunc = func(string) bool { end(); return true }
		c.lookAfterTaskEvent("a")
		clock.advance(time.Second)
		if n := clock.pending(); n != 0 {
			t.Errorf("%d timers pending after the app was forgotten or stopped during a look", n)
		}
	}
}

// TestPollSpecs: with SpecPoll, a spec file written, changed or removed behind inotify's back
// (another host on a shared filesystem) queues its app; a file left alone queues nothing.
func TestPollSpecs(t *testing.T) {
	c, q, clock := newTestLoop(t, nil)
	c.Debounce = 10 * time.Millisecond
	c.SpecPoll = 5 * time.Millisecond
	write := func(name, body string) {
		if err := os.WriteFile(filepath.Join(c.R.SpecsDir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("still.yml", "recipe: x\n")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); c.pollSpecs(ctx) }()
	defer func() { cancel(); <-done }()
	time.Sleep(20 * time.Millisecond) // the first scan saw still.yml

	queued := func(app string, want int) {
		t.Helper()
		deadline := time.Now().Add(2 * time.Second)
		for q.addCount(app) < want && time.Now().Before(deadline) {
			clock.advance(20 * time.Millisecond)
			time.Sleep(5 * time.Millisecond)
		}
		if n := q.addCount(app); n < want {
			t.Fatalf("%s queued %d times, want %d", app, n, want)
		}
	}
	write("new.yml", "recipe: x\n")
	queued("new", 1)
	write("new.yml", "recipe: x\nversion: 2\n")
	queued("new", 2)
	if err := os.Remove(filepath.Join(c.R.SpecsDir, "new.yml")); err != nil {
		t.Fatal(err)
	}
	queued("new", 3)
	if n := q.addCount("still"); n != 0 {
		t.Errorf("an unchanged spec file was queued %d times", n)
	}
}

// TestOverlayFilesAreWatched: the folders of the specs' overlay files join the spec
// directory's watch, and a file written there makes a resync (which finds the app whose
// generation changed); a spec file's own event still queues its app alone.
func TestOverlayFilesAreWatched(t *testing.T) {
	c, q, _ := newTestLoop(t, nil)
	c.Debounce = 10 * time.Millisecond
	overlays := filepath.Join(c.R.SpecsDir, "overlays")
	if err := os.MkdirAll(overlays, 0o755); err != nil {
		t.Fatal(err)
	}
	var resyncs atomic.Int32
	c.pendingFunc = func(context.Context) ([]string, error) {
		resyncs.Add(1)
		return nil, nil
	}
	c.R.overlayDirs = []string{overlays}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := w.Add(c.R.SpecsDir); err != nil {
		t.Fatal(err)
	}
	c.watcher = w
	c.watchOverlays()
	if !slices.Contains(w.WatchList(), overlays) {
		t.Fatalf("overlay folder not watched: %v", w.WatchList())
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); c.watchSpecs(ctx, w) }()
	defer func() { cancel(); <-done }()

	written := func(what string) {
		t.Helper()
		before := resyncs.Load()
		if err := os.WriteFile(filepath.Join(overlays, "ci.yml"), []byte("services: {}\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(2 * time.Second)
		for resyncs.Load() == before && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		if resyncs.Load() == before {
			t.Fatalf("writing an overlay file %s made no resync", what)
		}
	}
	written("")
	if n := q.addCount("ci"); n != 0 {
		t.Errorf("an overlay file was taken for the spec of app ci (%d adds)", n)
	}

	// The folder removed (its watch goes with it) and made again: watched again. Each of the
	// two is seen in the spec directory and makes a resync of its own, waited for first.
	seen := func(change func() error) {
		t.Helper()
		before := resyncs.Load()
		if err := change(); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(2 * time.Second)
		for resyncs.Load() == before && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
	}
	seen(func() error { return os.RemoveAll(overlays) })
	seen(func() error { return os.MkdirAll(overlays, 0o755) })
	written("in the folder made again")

	// No spec names it any more: no longer watched.
	c.R.mu.Lock()
	c.R.overlayDirs = nil
	c.R.mu.Unlock()
	c.watchOverlays()
	if got := w.WatchList(); len(got) != 1 || got[0] != c.R.SpecsDir {
		t.Fatalf("watched %v, want the spec directory alone", got)
	}
}

// TestReconnectResyncs: the event stream back after a break (dockerd restarted) resyncs at
// once, without waiting for the periodic resync; its first connect does not (Run has just
// resynced), and reconnects in a row make one resync each at most.
func TestReconnectResyncs(t *testing.T) {
	c, q, _ := newTestLoop(t, nil)
	var calls atomic.Int32
	c.pendingFunc = func(context.Context) ([]string, error) { calls.Add(1); return []string{"a"}, nil }
	c.Resync = 0 // no periodic resync: only the reconnect's
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); c.resyncEvery(ctx) }()
	defer func() { cancel(); <-done }()

	c.eventStream(true)
	time.Sleep(50 * time.Millisecond)
	if n := calls.Load(); n != 0 {
		t.Fatalf("the first connect resynced %d times, want none", n)
	}
	c.eventStream(false)
	c.eventStream(true)
	deadline := time.Now().Add(2 * time.Second)
	for q.addCount("a") == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if q.addCount("a") == 0 {
		t.Fatal("the reconnect did not queue the app")
	}
	c.eventStream(true) // connected again without a break: nothing to catch up
	time.Sleep(50 * time.Millisecond)
	if n := calls.Load(); n != 1 {
		t.Errorf("%d resyncs, want 1", n)
	}
}

// TestEventsWaitOutABackoff: while an app's last pass failed and its retry waits out the
// backoff, its engine events (a dockerd stopping kills every container) add nothing and arm no
// look; a node event skips it too. A spec change still adds it at once, and once a pass
// succeeds its events add it again.
func TestEventsWaitOutABackoff(t *testing.T) {
	fail := errors.New("Cannot connect to the Docker daemon")
	var err error
	c, q, clock := newTestLoop(t, func(context.Context, string) (Result, error) { return Result{}, err })
	c.route("a", "a_example_org")
	c.route("b", "b_example_org")
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	changes := make(chan swarmstate.Change)
	go c.routeChanges(ctx, changes)
	send := func(chs ...swarmstate.Change) {
		for _, ch := range chs {
			changes <- ch
		}
		changes <- swarmstate.Change{} // a no-op: the changes above are handled when this send returns
	}
	die := swarmstate.Change{Service: "a_example_org_app", Stack: "a_example_org", Task: "t1", Action: "die"}

	err = fail
	c.queue.Add("a")
	if !c.processNext(ctx) {
		t.Fatal("queue shut down")
	}
	q.take()
	send(die, die, die, swarmstate.Change{Node: "n2", Action: "update", NodeState: true})
	if got := q.take(); !slices.Equal(got, []string{"add b"}) {
		t.Errorf("events during a's backoff: queue calls %q, want only b's node event", got)
	}
	if n := clock.pending(); n != 0 {
		t.Errorf("%d timers armed by events during the backoff, want none", n)
	}

	c.debounce("a") // the spec file written
	clock.advance(c.Debounce)
	if got := q.take(); !slices.Equal(got, []string{"add a"}) {
		t.Errorf("a spec change during the backoff: queue calls %q, want a added", got)
	}

	err = nil
	for range 2 { // b (its node event), then a
		if !c.processNext(ctx) {
			t.Fatal("queue shut down")
		}
	}
	q.take()
	send(die)
	if got := q.take(); !slices.Equal(got, []string{"add a"}) {
		t.Errorf("an event after a pass succeeded: queue calls %q, want a added", got)
	}
}

// TestReconnectResyncRetried: the catch-up resync after a reconnect fails (dockerd's event
// stream answers before its swarm has a leader) and the stream stays connected: the resync is
// tried again after a backoff until it goes through, with no periodic resync to fall back on.
func TestReconnectResyncRetried(t *testing.T) {
	c, q, clock := newTestLoop(t, nil)
	var calls atomic.Int32
	c.pendingFunc = func(context.Context) ([]string, error) {
		if calls.Add(1) <= 2 {
			return nil, errors.New("the swarm does not have a leader")
		}
		return []string{"a"}, nil
	}
	c.Resync = 0
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); c.resyncEvery(ctx) }()
	defer func() { cancel(); <-done }()

	c.eventStream(false)
	c.eventStream(true)
	for want := int32(1); want <= 3; want++ {
		deadline := time.Now().Add(2 * time.Second)
		for calls.Load() < want && time.Now().Before(deadline) {
			clock.advance(resyncRetryMin)
			time.Sleep(time.Millisecond)
		}
		if n := calls.Load(); n < want {
			t.Fatalf("%d resyncs, want %d: a failed catch-up resync is not tried again", n, want)
		}
	}
	deadline := time.Now().Add(2 * time.Second)
	for q.addCount("a") == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if q.addCount("a") == 0 {
		t.Fatal("the resync that went through did not queue the app")
	}
	clock.advance(time.Minute)
	time.Sleep(20 * time.Millisecond)
	if n := calls.Load(); n != 3 {
		t.Errorf("%d resyncs after one went through, want 3: the retries go on", n)
	}
}
