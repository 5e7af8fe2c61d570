package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/swarm"
)

// BenchmarkScale puts the reconciler next to `docker stack deploy` for N = 1, 10 and 30 copies
// of the e2e recipe's one-service stack (each app its own stack and host port), in one run:
//
//   - deploy: the reconciler from writing N spec files at once to each status Ready (seen by
//     a 20ms poller of the status files), against N concurrent
//     `docker stack deploy --detach=false` commands (start to exit), as N CI jobs would run
//     them. The git checkout and the external secret of each stack are made before its
//     command starts, outside the timing; the reconciler renders and generates them inside it.
//   - teardown: N spec files deleted to status Deleted (which the reconciler writes only after
//     verifying that nothing labelled with the app is left; the benchmark checks again),
//     against N concurrent `docker stack rm` plus polling (stackRmPoll: every 100ms, until no
//     service, container, network, config, secret or volume of the stack is left; the volume
//     removed once the containers are gone, as abra app rm --volumes does).
//   - overhead per app: the Ready entry of the status history (the reconciler's clock) minus
//     the engine's start event of the app's last container before it (the event stream,
//     filtered to container starts of stack-labelled containers). Also reported: the same from
//     the poller's point of view, and Ready minus the running task's Status.Timestamp (the
//     time swarm gives the task's running state; the swarm agent's clock, on this host). Each
//     less the stability window (benchMinReady), which both sides wait.
//
// Rounds are interleaved per N: a warm-up of one app each way (not reported), then reconciler
// round, stack round, reconciler round, ... $E2E_BENCH_SCALE_REPS times each (default 3 below
// 100 apps and 1 from 100 on, where one round each way takes about 5 minutes).
// $E2E_BENCH_SCALE_N overrides the list of N (default 1,10,30,100); $E2E_BENCH_SCALE_LOGS, a
// directory, keeps the reconciler log of each N there, and $E2E_BENCH_SCALE_V sets its -v (1:
// every pass with how long it took), $E2E_BENCH_SCALE_WORKERS its --workers, $E2E_BENCH_SCALE_MAX_DEPLOYING its --max-deploying, $E2E_BENCH_SCALE_MAX_REMOVING its --max-removing, $E2E_BENCH_SCALE_MINREADY the specs' minReady (default:
// none in the spec, so swarm's 5 s monitor). Medians are over every app of every
// round (per app) or over rounds (all). Run it with
//
//	go test ./e2e/ -run '^$' -bench Scale -benchtime 1x -timeout 60m
//
// The markdown tables printed at the end are what docs/benchmarks.md quotes.
func BenchmarkScale(b *testing.B) {
	b.Logf("stability window: %s (%s)", benchMinReady.window, benchMinReady.why)
	counts := []int{1, 10, 30, 100}
	if v := os.Getenv("E2E_BENCH_SCALE_N"); v != "" {
		counts = nil
		for _, f := range strings.Split(v, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 1 {
				b.Fatalf("E2E_BENCH_SCALE_N=%q: %q is not a positive count", v, f)
			}
			counts = append(counts, n)
		}
	}
	repsFor := func(n int) int {
		if n >= 100 {
			return 1
		}
		return 3
	}
	if v := os.Getenv("E2E_BENCH_SCALE_REPS"); v != "" {
		reps, err := strconv.Atoi(v)
		if err != nil || reps < 1 {
			b.Fatalf("E2E_BENCH_SCALE_REPS=%q: not a positive count", v)
		}
		repsFor = func(int) int { return reps }
	}
	results := map[int]*scaleResult{}
	for _, n := range counts {
		b.Run(fmt.Sprintf("apps=%d", n), func(b *testing.B) {
			r := &scaleResult{n: n, reps: repsFor(n)}
			s := newScaleBench(b, n)
			b.Cleanup(s.keepLog)
			s.warmUp()
			for i := 0; i < b.N*r.reps; i++ {
				s.reconcilerRound(r)
				s.stackRound(r)
			}
			r.others = int(s.others.Load())
			r.report(b)
			results[n] = r
		})
	}
	var rs []*scaleResult
	for _, n := range counts {
		if r := results[n]; r != nil {
			rs = append(rs, r)
		}
	}
	if len(rs) > 0 {
		fmt.Print(scaleTables(rs))
	}
}

// benchMinReady is the apps' stability window: $E2E_BENCH_SCALE_MINREADY as the specs'
// minReady when set (0s: none, as before issue 11), else the default, swarm's 5 s monitor,
// which `docker stack deploy --detach=false` waits too: the like-for-like comparison. The
// overheads subtract the window, so they stay the reconciler's own.
var benchMinReady = func() (m struct {
	lines  []string
	window time.Duration
	why    string
}) {
	v := os.Getenv("E2E_BENCH_SCALE_MINREADY")
	if v == "" {
		m.window, m.why = 5*time.Second, "the default: the recipe sets no update_config.monitor; E2E_BENCH_SCALE_MINREADY sets another"
		return m
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		panic(fmt.Sprintf("E2E_BENCH_SCALE_MINREADY=%q: not a duration", v))
	}
	m.lines, m.window, m.why = []string{"minReady: " + v}, d, "E2E_BENCH_SCALE_MINREADY"
	return m
}()

// scaleResult holds the samples of one N, in milliseconds.
type scaleResult struct {
	n    int
	reps int // rounds each way

	recReady, recAllReady     []float64 // spec written -> Ready seen; first write -> last Ready seen
	stackDeploy, stackAll     []float64 // command start -> exit; first start -> last exit
	stackRunning              []float64 // command start -> the stack's last container start
	recDeleted, recAllDeleted []float64 // spec deleted -> Deleted seen
	stackRm, stackAllRm       []float64 // stack rm start -> nothing left; first start -> last done
	stackRmReruns             int       // `docker stack rm` runs that had to be repeated
	others                    int       // most other e2e.test processes seen at once (sampled every 2s)
	missingEvents             int       // apps or stacks without a container start event before Ready / exit

	overhead     []float64 // Ready (status history) - last container start (engine event)
	overheadSeen []float64 // Ready (seen by the poller) - last container start
	overheadTask []float64 // Ready (status history) - the task's running Status.Timestamp

	// Where the reconciler's spec-to-Ready goes, per app.
	pickup      []float64 // spec written -> first status history entry (Deploying)
	toStart     []float64 // first history entry -> last container start
	swarmReport []float64 // container start -> task running (swarm agent to manager)
	notice      []float64 // task running -> Ready history entry
	publish     []float64 // Ready history entry -> seen by the poller (status write + poll)

	// What the reconciler spent, per app of a round (its /metrics, summed over the round).
	deployCalls, deployPasses     []float64 // Engine API calls and passes, specs written -> all Ready
	teardownCalls, teardownPasses []float64 // the same, specs deleted -> all Deleted
}

func (r *scaleResult) report(b *testing.B) {
	m := func(v float64, unit string) { b.ReportMetric(v, unit) }
	m(median(r.recReady), "rec-ready-ms")
	m(median(r.stackDeploy), "stack-deploy-ms")
	m(ratio(median(r.recReady), median(r.stackDeploy)), "ratio-ready")
	m(median(r.recAllReady), "rec-all-ready-ms")
	m(median(r.stackAll), "stack-all-deploy-ms")
	m(ratio(median(r.recAllReady), median(r.stackAll)), "ratio-all-ready")
	m(median(r.stackRunning), "stack-running-ms")
	m(median(r.recDeleted), "rec-deleted-ms")
	m(median(r.stackRm), "stack-rm-ms")
	m(ratio(median(r.recDeleted), median(r.stackRm)), "ratio-deleted")
	m(median(r.recAllDeleted), "rec-all-deleted-ms")
	m(median(r.stackAllRm), "stack-all-rm-ms")
	m(ratio(median(r.recAllDeleted), median(r.stackAllRm)), "ratio-all-deleted")
	m(median(r.overhead), "overhead-ms")
	m(median(r.overheadSeen), "overhead-seen-ms")
	m(median(r.overheadTask), "overhead-task-ms")
	m(float64(r.stackRmReruns), "stack-rm-reruns")
	m(float64(r.others), "other-e2e-procs")
	m(float64(r.missingEvents), "missing-start-events")
}

// scaleTables is the human report: markdown tables, one row per N.
func scaleTables(rs []*scaleResult) string {
	var w strings.Builder
	f := func(v float64) string { return strconv.FormatFloat(v, 'f', 0, 64) }
	x := func(v float64) string { return strconv.FormatFloat(v, 'f', 2, 64) + "x" }
	var rounds []string
	for _, r := range rs {
		rounds = append(rounds, fmt.Sprintf("%d at N = %d", r.reps, r.n))
	}
	fmt.Fprintf(&w, "\nBenchmarkScale: medians in ms; per app over every app of every round, \"all\" over rounds; rounds each way: %s\n\n", strings.Join(rounds, ", "))
	fmt.Fprintln(&w, "Deploy: reconciler spec written -> status Ready (poller) vs `docker stack deploy --detach=false` start -> exit")
	fmt.Fprintln(&w)
	fmt.Fprintln(&w, "| N | reconciler per app | stack deploy per app | ratio | reconciler all Ready | stack all exited | ratio | stack: start -> last task started |")
	fmt.Fprintln(&w, "|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, r := range rs {
		fmt.Fprintf(&w, "| %d | %s | %s | %s | %s | %s | %s | %s |\n", r.n,
			f(median(r.recReady)), f(median(r.stackDeploy)), x(ratio(median(r.recReady), median(r.stackDeploy))),
			f(median(r.recAllReady)), f(median(r.stackAll)), x(ratio(median(r.recAllReady), median(r.stackAll))),
			f(median(r.stackRunning)))
	}
	fmt.Fprintln(&w)
	fmt.Fprintln(&w, "Teardown: reconciler spec deleted -> status Deleted (verified zero residue) vs `docker stack rm` + polling until nothing of the stack is left")
	fmt.Fprintln(&w)
	fmt.Fprintln(&w, "| N | reconciler per app | stack rm per app | ratio | reconciler all Deleted | stack all gone | ratio |")
	fmt.Fprintln(&w, "|---:|---:|---:|---:|---:|---:|---:|")
	for _, r := range rs {
		fmt.Fprintf(&w, "| %d | %s | %s | %s | %s | %s | %s |\n", r.n,
			f(median(r.recDeleted)), f(median(r.stackRm)), x(ratio(median(r.recDeleted), median(r.stackRm))),
			f(median(r.recAllDeleted)), f(median(r.stackAllRm)), x(ratio(median(r.recAllDeleted), median(r.stackAllRm))))
	}
	for _, r := range rs {
		if r.stackRmReruns > 0 {
			fmt.Fprintf(&w, "\nN=%d: `docker stack rm` failed (network in use by a task) and was run again %d times in all.\n", r.n, r.stackRmReruns)
		}
	}
	fmt.Fprintln(&w)
	fmt.Fprintf(&w, "Overhead per app: Ready minus the stability window (%s) minus the swarm's last task running (median / max)\n", benchMinReady.window)
	fmt.Fprintln(&w)
	fmt.Fprintln(&w, "| N | history Ready - container start event | poller saw Ready - container start event | history Ready - task running timestamp |")
	fmt.Fprintln(&w, "|---:|---:|---:|---:|")
	for _, r := range rs {
		fmt.Fprintf(&w, "| %d | %s / %s | %s / %s | %s / %s |\n", r.n,
			f(median(r.overhead)), f(maxOf(r.overhead)), f(median(r.overheadSeen)), f(maxOf(r.overheadSeen)),
			f(median(r.overheadTask)), f(maxOf(r.overheadTask)))
	}
	fmt.Fprintln(&w)
	fmt.Fprintln(&w, "Reconciler spec -> Ready by stage (medians per app; they need not add up to the total)")
	fmt.Fprintln(&w)
	fmt.Fprintln(&w, "| N | written -> first history entry | -> container started | -> task running (swarm) | -> Ready (history) | -> seen by poller | total |")
	fmt.Fprintln(&w, "|---:|---:|---:|---:|---:|---:|---:|")
	for _, r := range rs {
		fmt.Fprintf(&w, "| %d | %s | %s | %s | %s | %s | %s |\n", r.n,
			f(median(r.pickup)), f(median(r.toStart)), f(median(r.swarmReport)), f(median(r.notice)), f(median(r.publish)), f(median(r.recReady)))
	}
	fmt.Fprintln(&w)
	fmt.Fprintln(&w, "Reconciler cost per app (medians over rounds): Engine API calls and passes, deploy (specs written -> all Ready) and teardown (-> all Deleted)")
	fmt.Fprintln(&w)
	fmt.Fprintln(&w, "| N | deploy calls | deploy passes | teardown calls | teardown passes |")
	fmt.Fprintln(&w, "|---:|---:|---:|---:|---:|")
	for _, r := range rs {
		fmt.Fprintf(&w, "| %d | %s | %s | %s | %s |\n", r.n,
			f(median(r.deployCalls)), f(median(r.deployPasses)), f(median(r.teardownCalls)), f(median(r.teardownPasses)))
	}
	fmt.Fprintln(&w)
	for _, r := range rs {
		if r.missingEvents > 0 {
			fmt.Fprintf(&w, "N=%d: %d apps or stacks had no container start event at or before Ready (or the command's exit); left out of the event columns.\n", r.n, r.missingEvents)
		}
		if r.others > 0 {
			fmt.Fprintf(&w, "N=%d: DISTURBED: up to %d other e2e.test processes were running during the rounds.\n", r.n, r.others)
		} else {
			fmt.Fprintf(&w, "N=%d: quiet: no other e2e.test process seen (sampled every 2s).\n", r.n)
		}
	}
	return w.String()
}

// scaleBench is the setup of one N: a running reconciler, the engine's container start events,
// and the recipe version every app deploys.
type scaleBench struct {
	b       *testing.B
	h       *harness
	n       int
	version string
	starts  *startLog
	ctx     context.Context
	others  atomic.Int32 // most other e2e.test processes seen at once
	metrics int          // the reconciler's --metrics-addr port
}

func newScaleBench(b *testing.B, n int) *scaleBench {
	s := &scaleBench{b: b, n: n, ctx: context.Background()}
	s.starts = watchStarts(b)
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	go func() {
		for {
			if n := int32(otherE2E()); n > s.others.Load() {
				s.others.Store(n)
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(2 * time.Second):
			}
		}
	}()
	port, err := freePort()
	if err != nil {
		b.Fatal(err)
	}
	s.metrics = port
	s.h = newHarness(b)
	flags := []string{"--metrics-addr", "127.0.0.1:" + strconv.Itoa(port)}
	if v := os.Getenv("E2E_BENCH_SCALE_V"); v != "" {
		flags = append(flags, "-v", v) // 1 logs every pass with how long it took
	}
	if v := os.Getenv("E2E_BENCH_SCALE_WORKERS"); v != "" {
		flags = append(flags, "--workers", v)
	}
	if v := os.Getenv("E2E_BENCH_SCALE_MAX_DEPLOYING"); v != "" {
		flags = append(flags, "--max-deploying", v) // 0: every app starts at once, as before it
	}
	if v := os.Getenv("E2E_BENCH_SCALE_MAX_REMOVING"); v != "" {
		flags = append(flags, "--max-removing", v) // 0: every teardown at once, as before it
	}
	s.h.startWith(nil, flags...)
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		_, body, err := scrape(port)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("the reconciler's /metrics did not answer within 30s: %v\n%s", err, body)
		}
	}
	s.version = s.h.recipe.first().Version
	return s
}

// cost is the reconciler's Engine API calls and passes so far, from its /metrics.
func (s *scaleBench) cost() (calls, passes float64) {
	byOp, passes := apiCalls(s.b, s.metrics)
	for _, v := range byOp {
		calls += v
	}
	return calls, passes
}

// warmUp deploys and removes one app each way, unreported: the first deploy of a reconciler
// reads the recipe repository and checks the image, the first CLI run warms the page cache.
func (s *scaleBench) warmUp() {
	var discard scaleResult
	n := s.n
	s.n = 1
	s.reconcilerRound(&discard)
	s.stackRound(&discard)
	s.n = n
}

// keepLog copies the reconciler's log to $E2E_BENCH_SCALE_LOGS, when set.
func (s *scaleBench) keepLog() {
	dir := os.Getenv("E2E_BENCH_SCALE_LOGS")
	if dir == "" {
		return
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		s.b.Logf("keep log: %v", err)
		return
	}
	src, err := os.Open(s.h.logPath)
	if err != nil {
		s.b.Logf("keep log: %v", err)
		return
	}
	defer src.Close()
	dst, err := os.Create(filepath.Join(dir, fmt.Sprintf("reconciler-apps=%d.log", s.n)))
	if err != nil {
		s.b.Logf("keep log: %v", err)
		return
	}
	defer dst.Close()
	if _, err := io.Copy(dst, src); err != nil {
		s.b.Logf("keep log: %v", err)
	}
}

// benchStatus is the part of the status file the benchmark reads beyond appStatus.
type benchStatus struct {
	History []struct {
		Time  time.Time `json:"time"`
		Phase string    `json:"phase"`
	} `json:"history"`
}

// seen is one app reaching the awaited phase.
type seen struct {
	at      time.Time // when the poller read it
	history []time.Time
	phases  []string
}

// lastPhase is the time of the newest history entry in phase, or zero.
func (v seen) lastPhase(phase string) time.Time {
	for i := len(v.phases) - 1; i >= 0; i-- {
		if v.phases[i] == phase {
			return v.history[i]
		}
	}
	return time.Time{}
}

// firstAfter is the time of the oldest history entry at or after t, or zero.
func (v seen) firstAfter(t time.Time) time.Time {
	for _, h := range v.history {
		if !h.Before(t) {
			return h
		}
	}
	return time.Time{}
}

// awaitAll polls the status files of apps every 20ms until each is done, and returns when
// the poller saw each one done. A final phase that is not the awaited one fails the benchmark.
func (s *scaleBench) awaitAll(apps []string, what string, done func(appStatus) bool) []seen {
	out := make([]seen, len(apps))
	pending := map[int]bool{}
	for i := range apps {
		pending[i] = true
	}
	deadline := time.Now().Add(10 * time.Minute)
	for len(pending) > 0 {
		for i := range pending {
			st, found, err := s.h.readStatus(apps[i])
			now := time.Now()
			if err != nil || !found {
				continue
			}
			if done(st) {
				var bs benchStatus
				if err := json.Unmarshal(st.raw, &bs); err != nil {
					s.b.Fatalf("status of %s: %v", apps[i], err)
				}
				v := seen{at: now}
				for _, h := range bs.History {
					v.history = append(v.history, h.Time)
					v.phases = append(v.phases, h.Phase)
				}
				out[i] = v
				delete(pending, i)
				continue
			}
			if slices.Contains(finalPhases, st.Phase) && st.Phase != "Deleted" {
				s.b.Fatalf("app %s: waiting for %s, reached %s:\n%s", apps[i], what, st.Phase, st)
			}
		}
		if !s.h.running() {
			s.b.Fatalf("waiting for %s: the reconciler exited: %v", what, s.h.exit)
		}
		if time.Now().After(deadline) {
			var left []string
			for i := range pending {
				left = append(left, apps[i])
			}
			s.b.Fatalf("waiting for %s: %d apps not there within 10m: %s", what, len(left), strings.Join(left, ", "))
		}
		if len(pending) > 0 {
			time.Sleep(20 * time.Millisecond)
		}
	}
	return out
}

// reconcilerRound deploys n apps through the reconciler, all spec files written at once, then
// deletes all n specs, and records the timings.
func (s *scaleBench) reconcilerRound(r *scaleResult) {
	b, h, n := s.b, s.h, s.n
	apps := make([]*testApp, n)
	names := make([]string, n)
	bodies := make([][]byte, n)
	for i := range apps {
		apps[i] = h.newApp("bs")
		names[i] = apps[i].name
		// The swarm alone can take minutes to start 100 services on two cores (a task can
		// sit in "preparing" for two): the deadline is the poller's, not the spec's default.
		bodies[i] = apps[i].spec(s.version, append([]string{"timeout: 10m"}, benchMinReady.lines...)...)
	}
	calls0, passes0 := s.cost()
	gens := make([]string, n)
	written := make([]time.Time, n)
	for i := range apps {
		written[i] = time.Now()
		gens[i] = h.writeSpec(names[i], bodies[i])
	}
	gen := map[string]string{}
	for i, name := range names {
		gen[name] = gens[i]
	}
	ready := s.awaitAll(names, "Ready", func(st appStatus) bool {
		return st.ObservedGeneration == gen[st.App] && st.Phase == "Ready"
	})

	// The swarm's side: the last container start before Ready, the running task's timestamp.
	var lastSeen time.Time
	for i, a := range apps {
		lastSeen = later(lastSeen, ready[i].at)
		readyAt := ready[i].lastPhase("Ready")
		if readyAt.IsZero() {
			b.Fatalf("app %s: no Ready entry in its status history", a.name)
		}
		task := s.taskRunningSince(a.stack() + "_app")
		first := ready[i].firstAfter(written[i].Add(-time.Millisecond))
		r.recReady = append(r.recReady, ms(ready[i].at.Sub(written[i])))
		// The overheads are the reconciler's own: what the stability window adds is not.
		due := readyAt.Add(-benchMinReady.window)
		r.overheadTask = append(r.overheadTask, ms(due.Sub(task)))
		if !first.IsZero() {
			r.pickup = append(r.pickup, ms(first.Sub(written[i])))
		}
		r.notice = append(r.notice, ms(due.Sub(task)))
		r.publish = append(r.publish, ms(ready[i].at.Sub(readyAt)))
		started, ok := s.starts.last(s.b, a.stack(), readyAt)
		if !ok {
			b.Logf("app %s: written %s, Ready %s (seen %s), task running since %s", a.name,
				written[i].Format(time.RFC3339Nano), readyAt.Format(time.RFC3339Nano),
				ready[i].at.Format(time.RFC3339Nano), task.Format(time.RFC3339Nano))
			r.missingEvents++
			continue
		}
		r.overhead = append(r.overhead, ms(due.Sub(started)))
		r.overheadSeen = append(r.overheadSeen, ms(ready[i].at.Add(-benchMinReady.window).Sub(started)))
		if !first.IsZero() {
			r.toStart = append(r.toStart, ms(started.Sub(first)))
		}
		r.swarmReport = append(r.swarmReport, ms(task.Sub(started)))
	}
	r.recAllReady = append(r.recAllReady, ms(lastSeen.Sub(written[0])))
	calls1, passes1 := s.cost()
	r.deployCalls = append(r.deployCalls, (calls1-calls0)/float64(n))
	r.deployPasses = append(r.deployPasses, (passes1-passes0)/float64(n))

	// Teardown: every spec deleted at once.
	deleted := make([]time.Time, n)
	for i, name := range names {
		deleted[i] = time.Now()
		h.deleteSpec(name)
	}
	gone := s.awaitAll(names, "Deleted", func(st appStatus) bool { return st.Phase == "Deleted" })
	lastSeen = time.Time{}
	for i, name := range names {
		lastSeen = later(lastSeen, gone[i].at)
		r.recDeleted = append(r.recDeleted, ms(gone[i].at.Sub(deleted[i])))
		left, err := labelled(s.ctx, suite.docker, appLabel, name)
		if err != nil {
			b.Fatalf("list objects of %s: %v", name, err)
		}
		if len(left) > 0 {
			b.Errorf("app %s is Deleted with %d objects left: %s", name, len(left), strings.Join(left, ", "))
		}
	}
	r.recAllDeleted = append(r.recAllDeleted, ms(lastSeen.Sub(deleted[0])))
	calls2, passes2 := s.cost()
	r.teardownCalls = append(r.teardownCalls, (calls2-calls1)/float64(n))
	r.teardownPasses = append(r.teardownPasses, (passes2-passes1)/float64(n))
	settle()
}

// stackRound deploys n stacks with concurrent `docker stack deploy --detach=false`, then
// removes them with concurrent `docker stack rm` plus polling, and records the timings.
func (s *scaleBench) stackRound(r *scaleResult) {
	b, n := s.b, s.n
	type stack struct {
		name, dir  string
		env        []string
		start, end time.Time
		reruns     int
		out        []byte
		err        error
	}
	stacks := make([]*stack, n)
	dir := b.TempDir()
	for i := range stacks {
		port, err := freePort()
		if err != nil {
			b.Fatal(err)
		}
		st := &stack{name: fmt.Sprintf("bss-%s_%s", randomSuffix(), strings.ReplaceAll(domainSuffix, ".", "_"))}
		b.Cleanup(func() { removeLabelled(context.Background(), suite.docker, namespaceLabel, st.name) })
		if st.dir, err = stackCheckout(s.ctx, s.h.recipe, s.version, dir, st.name); err != nil {
			b.Fatal(err)
		}
		if st.env, err = stackEnv(st.dir, st.name, strings.ReplaceAll(st.name, "_", "."), port); err != nil {
			b.Fatal(err)
		}
		if err := createStackSecrets(s.ctx, st.name); err != nil {
			b.Fatal(err)
		}
		stacks[i] = st
	}
	var wg sync.WaitGroup
	for _, st := range stacks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := exec.CommandContext(s.ctx, "docker", "stack", "deploy", "--detach=false", "--resolve-image", "never", "-c", "compose.yml", st.name)
			cmd.Dir = st.dir
			cmd.Env = st.env
			st.start = time.Now()
			st.out, st.err = cmd.CombinedOutput()
			st.end = time.Now()
		}()
	}
	wg.Wait()
	first, last := stacks[0].start, stacks[0].end
	for _, st := range stacks {
		if st.err != nil {
			b.Fatalf("docker stack deploy --detach=false %s: %v\n%s", st.name, st.err, st.out)
		}
		if ok, why, err := runningTask(s.ctx, suite.docker, st.name+"_app"); err != nil || !ok {
			b.Fatalf("docker stack deploy %s exited 0 without a running task (%s, %v):\n%s", st.name, why, err, st.out)
		}
		if st.start.Before(first) {
			first = st.start
		}
		last = later(last, st.end)
		r.stackDeploy = append(r.stackDeploy, ms(st.end.Sub(st.start)))
		if started, ok := s.starts.last(b, st.name, st.end); ok {
			r.stackRunning = append(r.stackRunning, ms(started.Sub(st.start)))
		} else {
			r.missingEvents++
		}
	}
	r.stackAll = append(r.stackAll, ms(last.Sub(first)))

	for _, st := range stacks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st.start = time.Now()
			st.reruns, st.err = stackRmPoll(s.ctx, st.name)
			st.end = time.Now()
		}()
	}
	wg.Wait()
	first, last = stacks[0].start, stacks[0].end
	for _, st := range stacks {
		if st.err != nil {
			b.Fatal(st.err)
		}
		if st.start.Before(first) {
			first = st.start
		}
		last = later(last, st.end)
		r.stackRm = append(r.stackRm, ms(st.end.Sub(st.start)))
		r.stackRmReruns += st.reruns
	}
	r.stackAllRm = append(r.stackAllRm, ms(last.Sub(first)))
	settle()
}

// otherE2E counts the e2e.test processes on this host other than this one: another e2e run
// shares the swarm and the two CPUs, and disturbs the numbers.
func otherE2E() int {
	dirs, _ := os.ReadDir("/proc")
	n := 0
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", d.Name(), "cmdline"))
		if err != nil {
			continue
		}
		exe, _, _ := strings.Cut(string(cmdline), "\x00")
		if filepath.Base(exe) == "e2e.test" {
			n++
		}
	}
	return n
}

// taskRunningSince is the Status.Timestamp of service's running task: when swarm recorded it
// running. The list is polled for a few seconds rather than read once, so that a task list
// lagging the status file delays the benchmark instead of failing it.
func (s *scaleBench) taskRunningSince(service string) time.Time {
	deadline := time.Now().Add(5 * time.Second)
	for {
		tasks, err := suite.docker.TaskList(s.ctx, swarm.TaskListOptions{
			Filters: filters.NewArgs(filters.Arg("service", service), filters.Arg("desired-state", "running")),
		})
		if err != nil {
			s.b.Fatalf("tasks of %s: %v", service, err)
		}
		var since time.Time
		for _, t := range tasks {
			if t.Status.State == swarm.TaskStateRunning {
				since = later(since, t.Status.Timestamp)
			}
		}
		if !since.IsZero() {
			return since
		}
		if time.Now().After(deadline) {
			s.b.Fatalf("service %s has no running task 5 s after it was Ready", service)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// startLog records the engine's container start events of stack-labelled containers, by stack.
type startLog struct {
	mu     sync.Mutex
	starts map[string][]time.Time
	err    error
}

// watchStarts subscribes to the engine's events from now until b ends.
func watchStarts(b *testing.B) *startLog {
	l := &startLog{starts: map[string][]time.Time{}}
	followEvents(b, &l.mu, &l.err, filters.NewArgs(
		filters.Arg("type", string(events.ContainerEventType)),
		filters.Arg("event", string(events.ActionStart)),
		filters.Arg("label", namespaceLabel),
	), func(m events.Message) {
		stack := m.Actor.Attributes[namespaceLabel]
		l.starts[stack] = append(l.starts[stack], time.Unix(0, m.TimeNano))
	})
	return l
}

// followEvents calls on, holding mu, for each engine event that args select, from now until
// b ends; the stream's error, if it breaks before, goes to *errp under mu.
func followEvents(b testing.TB, mu *sync.Mutex, errp *error, args filters.Args, on func(events.Message)) {
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	now := time.Now()
	msgs, errs := suite.docker.Events(ctx, events.ListOptions{
		Since: fmt.Sprintf("%d.%09d", now.Unix(), now.Nanosecond()), Filters: args,
	})
	go func() {
		for {
			select {
			case m := <-msgs:
				mu.Lock()
				on(m)
				mu.Unlock()
			case err := <-errs:
				if ctx.Err() == nil {
					mu.Lock()
					*errp = err
					mu.Unlock()
				}
				return
			}
		}
	}()
}

// last is the newest container start of stack at or before t, waiting a little for the
// event to arrive. ok is false when there is none: the benchmark then counts the app as
// missing its event, logs every start event of the stack, and leaves it out of the numbers
// that need one.
func (l *startLog) last(b *testing.B, stack string, t time.Time) (found time.Time, ok bool) {
	deadline := time.Now().Add(5 * time.Second)
	for {
		l.mu.Lock()
		all := slices.Clone(l.starts[stack])
		err := l.err
		l.mu.Unlock()
		for _, s := range all {
			if !s.After(t) {
				found = later(found, s)
			}
		}
		if !found.IsZero() {
			return found, true
		}
		if err != nil {
			b.Fatalf("engine event stream: %v", err)
		}
		if time.Now().After(deadline) {
			var seen []string
			for _, s := range all {
				seen = append(seen, s.Format(time.RFC3339Nano))
			}
			b.Logf("no container start event of stack %s at or before %s; its start events: [%s]",
				stack, t.Format(time.RFC3339Nano), strings.Join(seen, " "))
			return time.Time{}, false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// settle gives the engine a moment between rounds (networks and volumes are released
// asynchronously), outside any timing.
func settle() { time.Sleep(2 * time.Second) }

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func maxOf(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	return slices.Max(v)
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}
