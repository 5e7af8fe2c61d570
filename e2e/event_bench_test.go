package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/swarm"
)

// Event cost benchmark (issue 10): the Engine API calls the reconciler makes after one task
// container of a Ready app dies.
const (
	eventRecipeName    = "e2e-event"
	eventRecipeVersion = "1.0.0+1.0"
	// eventServices is the number of services of the benchmark's app.
	eventServices = 5
	// eventQuiet is how long the reconciler's call counters must stay unchanged for it to be
	// done with an app.
	eventQuiet = time.Second
	// eventResync is the benchmark reconciler's --resync: long enough that no periodic resync
	// falls into a measured window, so every call counted there answers the kill.
	eventResync = time.Hour
	// apiCallsMetric is the reconciler's counter of Engine API requests, by operation.
	apiCallsMetric = "swarm_reconciler_engine_api_calls_total"
	// reconcilesMetric counts the reconciler's passes, by result.
	reconcilesMetric = "swarm_reconciler_reconciles_total"
)

// BenchmarkEventCost counts the Engine API calls the reconciler makes per container event of an
// app. The app is a recipe of eventServices services of the echo image, one replica each,
// without published ports, with restart_policy on-failure and no restart delay (swarm starts
// the replacement task at once). The reconciler runs with --resync 1h (no periodic resync in
// a window) and --metrics-addr on a free loopback port, where the benchmark reads
// swarm_reconciler_engine_api_calls_total.
//
// Once the app is Ready and the counters have not moved for eventQuiet, each round kills the
// running task container of one service through the Engine API (ContainerKill, SIGKILL; the
// services take turns), waits until a replacement task runs, the app's status is Ready and
// the counters have been quiet for eventQuiet again, and takes the difference of the counters
// (in all and by operation). The engine's container events of the app's stack in that window
// (an events subscription filtered on the stack label: kill, die, stop, create, start, ...)
// give the calls per container event. $E2E_BENCH_EVENT_REPS sets the number of rounds
// (default 5); $E2E_BENCH_EVENT_KILLS, from 1 (the default) to eventServices, how many
// services have their task container killed at once in a round (a burst of events). Run it with
//
//	go test ./e2e/ -run '^$' -bench EventCost -benchtime 1x -timeout 20m
//
// The markdown table printed at the end is what docs/benchmarks.md quotes.
func BenchmarkEventCost(b *testing.B) {
	reps := 5
	if v := os.Getenv("E2E_BENCH_EVENT_REPS"); v != "" {
		var err error
		if reps, err = strconv.Atoi(v); err != nil || reps < 1 {
			b.Fatalf("E2E_BENCH_EVENT_REPS=%q: not a positive count", v)
		}
	}
	kills := 1
	if v := os.Getenv("E2E_BENCH_EVENT_KILLS"); v != "" {
		var err error
		if kills, err = strconv.Atoi(v); err != nil || kills < 1 || kills > eventServices {
			b.Fatalf("E2E_BENCH_EVENT_KILLS=%q: not a count from 1 to %d", v, eventServices)
		}
	}
	ctx := context.Background()
	began := time.Now()
	h := newHarness(b)
	makeEventRecipe(b, h.recipes)
	port, err := freePort()
	if err != nil {
		b.Fatal(err)
	}
	h.startWith(nil, "--resync", eventResync.String(), "--metrics-addr", "127.0.0.1:"+strconv.Itoa(port))
	if err := waitHTTP(ctx, port, "/healthz", "ok\n"); err != nil {
		b.Fatalf("/healthz: %v", err)
	}

	a := h.newApp("e2e-event")
	stack := a.stack()
	evs := watchContainerEvents(b, stack)
	// No stability window: a kill's cost is counted up to Ready, as before the window.
	gen := h.writeSpec(a.name, []byte(fmt.Sprintf("recipe: %s\nversion: %q\ntimeout: %s\nminReady: 0s\n", eventRecipeName, eventRecipeVersion, specTimeout)))
	h.waitPhase(a.name, gen, "Ready")
	deployCalls, _ := awaitQuiet(b, h, port, nil)
	b.Logf("app %s Ready after %d Engine API calls (deploy included), %s after the start", a.name, int(deployCalls), time.Since(began).Round(time.Millisecond))

	var rounds []eventRound
	others := 0
	b.ResetTimer()
	for i := 0; i < b.N*reps; i++ {
		others = max(others, otherE2E())
		var services []string
		for j := range kills {
			services = append(services, fmt.Sprintf("%s_s%d", stack, (i*kills+j)%eventServices+1))
		}
		rounds = append(rounds, killRound(b, h, a.name, gen, services, port, evs))
		r := rounds[len(rounds)-1]
		b.Logf("round %d: killed the task of %s: %d calls in %d reconciles, %d container events (%s), phases after the kill %v, replacement running after %s, quiet %s after the kill",
			i+1, strings.Join(services, ", "), int(r.calls), int(r.passes), r.events, strings.Join(r.actions, " "), r.phases, r.running.Round(time.Millisecond), r.settled.Round(time.Millisecond))
	}
	b.StopTimer()
	others = max(others, otherE2E())

	res := eventResult{rounds: rounds, kills: kills, others: others}
	b.ReportMetric(median(res.perKill()), "calls/kill")
	b.ReportMetric(median(res.perEvent()), "calls/event")
	b.ReportMetric(median(res.events()), "events/kill")
	b.ReportMetric(median(res.passes()), "reconciles/kill")
	b.ReportMetric(float64(others), "other-e2e-procs")
	fmt.Print(res.table(time.Since(began)))
}

// eventRound is what one kill cost.
type eventRound struct {
	calls   float64            // Engine API calls from the kill until quiet
	byOp    map[string]float64 // the same, by operation ("GET /tasks", ...)
	passes  float64            // reconciles in that window
	events  int                // container events of the stack in that window
	actions []string           // their actions, in order
	phases  []string           // phases of the status history written after the kill
	running time.Duration      // kill -> replacement task running (seen by the benchmark)
	settled time.Duration      // kill -> counters quiet (the end of their last change)
}

// killRound kills the running task container of each of services at once and measures until
// the app has settled.
func killRound(b *testing.B, h *harness, app, gen string, services []string, port int, evs *containerEvents) eventRound {
	ctx := context.Background()
	tasks := make([]string, len(services))
	containers := make([]string, len(services))
	for i, service := range services {
		tasks[i], containers[i] = runningContainer(b, service)
	}
	before, _ := awaitQuiet(b, h, port, nil)
	beforeOps, beforePasses := apiCalls(b, port)

	// The kills go out together: the engine answers one only once its container has stopped.
	killed := time.Now()
	errs := make([]error, len(services))
	var wg sync.WaitGroup
	for i := range services {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = suite.docker.ContainerKill(ctx, containers[i], "KILL")
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			b.Fatalf("kill %s (task %s of %s): %v", containers[i], tasks[i], services[i], err)
		}
	}
	var running time.Duration
	replaced := func() bool {
		if running > 0 {
			return true
		}
		for i, service := range services {
			if !replacementRunning(b, service, tasks[i]) {
				return false
			}
		}
		running = time.Since(killed)
		return true
	}
	ready := func() bool {
		st, found, err := h.readStatus(app)
		if err != nil {
			b.Fatal(err)
		}
		if found && st.ObservedGeneration == gen && slices.Contains(finalPhases, st.Phase) {
			b.Fatalf("app %s: %s after a kill:\n%s", app, st.Phase, st)
		}
		return found && st.ObservedGeneration == gen && st.Phase == "Ready"
	}
	after, lastChange := awaitQuiet(b, h, port, func() bool { return replaced() && ready() })
	afterOps, afterPasses := apiCalls(b, port)
	end := time.Now()

	r := eventRound{calls: after - before, byOp: map[string]float64{}, passes: afterPasses - beforePasses, running: running, settled: lastChange.Sub(killed)}
	for op, n := range afterOps {
		if d := n - beforeOps[op]; d != 0 {
			r.byOp[op] = d
		}
	}
	for _, m := range evs.between(b, killed, end) {
		r.actions = append(r.actions, fmt.Sprintf("%s+%dms", m.Action, time.Unix(0, m.TimeNano).Sub(killed).Milliseconds()))
	}
	r.events = len(r.actions)
	if r.events == 0 {
		b.Fatalf("no container event of %s between the kill and the end of the round", strings.Join(services, ", "))
	}
	st, _, err := h.readStatus(app)
	if err != nil {
		b.Fatal(err)
	}
	var bs benchStatus
	if err := json.Unmarshal(st.raw, &bs); err != nil {
		b.Fatal(err)
	}
	for _, e := range bs.History {
		if e.Time.After(killed) {
			r.phases = append(r.phases, e.Phase)
		}
	}
	return r
}

// replacementRunning reports whether service has a running task other than old.
func replacementRunning(b *testing.B, service, old string) bool {
	tasks, err := suite.docker.TaskList(context.Background(), swarm.TaskListOptions{
		Filters: filters.NewArgs(filters.Arg("service", service), filters.Arg("desired-state", "running")),
	})
	if err != nil {
		b.Fatalf("tasks of %s: %v", service, err)
	}
	for _, t := range tasks {
		if t.ID != old && t.Status.State == swarm.TaskStateRunning {
			return true
		}
	}
	return false
}

// runningContainer is the running task of service and its container.
func runningContainer(b *testing.B, service string) (task, container string) {
	err := poll(context.Background(), time.Minute, func() (bool, error) {
		tasks, err := suite.docker.TaskList(context.Background(), swarm.TaskListOptions{
			Filters: filters.NewArgs(filters.Arg("service", service), filters.Arg("desired-state", "running")),
		})
		for _, t := range tasks {
			if t.Status.State == swarm.TaskStateRunning && t.Status.ContainerStatus != nil && t.Status.ContainerStatus.ContainerID != "" {
				task, container = t.ID, t.Status.ContainerStatus.ContainerID
				return true, nil
			}
		}
		return false, err
	})
	if err != nil {
		b.Fatalf("no running task container of %s: %v", service, err)
	}
	return task, container
}

// awaitQuiet polls the reconciler's call counters every 50ms until done (nil: at once) holds and
// they have not changed for eventQuiet, and returns their sum and when it last changed (the
// first poll that saw the final value).
func awaitQuiet(b *testing.B, h *harness, port int, done func() bool) (float64, time.Time) {
	deadline := time.Now().Add(phaseDeadline)
	last, lastChange := -1.0, time.Now()
	for {
		sum := 0.0
		calls, _ := apiCalls(b, port)
		for _, n := range calls {
			sum += n
		}
		now := time.Now()
		if sum != last {
			last, lastChange = sum, now
		}
		ok := done == nil || done() // every poll: done may time what it sees
		if ok && now.Sub(lastChange) >= eventQuiet {
			return last, lastChange
		}
		if !h.running() {
			b.Fatalf("the reconciler exited: %v", h.exit)
		}
		if now.After(deadline) {
			b.Fatalf("the app did not settle within %s (calls %v, last change %s ago)", phaseDeadline, last, now.Sub(lastChange).Round(time.Millisecond))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// apiCalls reads swarm_reconciler_engine_api_calls_total by operation, and the sum of
// swarm_reconciler_reconciles_total, from the reconciler's /metrics.
func apiCalls(b *testing.B, port int) (map[string]float64, float64) {
	samples, body, err := scrape(port)
	if err != nil {
		b.Fatalf("/metrics: %v\n%s", err, body)
	}
	passes, _ := family(samples, reconcilesMetric)
	out := map[string]float64{}
	for k, v := range samples {
		rest, ok := strings.CutPrefix(k, apiCallsMetric+"{")
		if !ok {
			continue
		}
		_, op, _ := strings.Cut(rest, `operation="`)
		op, _, _ = strings.Cut(op, `"`)
		out[op] += v
	}
	return out, passes
}

// containerEvents records every container event of one stack (any action) from its start.
type containerEvents struct {
	mu     sync.Mutex
	events []events.Message
	err    error
}

func watchContainerEvents(b *testing.B, stack string) *containerEvents {
	l := &containerEvents{}
	followEvents(b, &l.mu, &l.err, filters.NewArgs(
		filters.Arg("type", string(events.ContainerEventType)),
		filters.Arg("label", namespaceLabel+"="+stack),
	), func(m events.Message) { l.events = append(l.events, m) })
	return l
}

// between is the events from from to to, in order.
func (l *containerEvents) between(b *testing.B, from, to time.Time) []events.Message {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err != nil {
		b.Fatalf("engine event stream: %v", l.err)
	}
	var out []events.Message
	for _, m := range l.events {
		t := time.Unix(0, m.TimeNano)
		if !t.Before(from) && !t.After(to) {
			out = append(out, m)
		}
	}
	return out
}

// eventResult is every round of one run.
type eventResult struct {
	rounds []eventRound
	kills  int // task containers killed at once per round
	others int
}

// column is one measure of every round.
func (r eventResult) column(of func(eventRound) float64) []float64 {
	var v []float64
	for _, x := range r.rounds {
		v = append(v, of(x))
	}
	return v
}

func (r eventResult) perKill() []float64 {
	return r.column(func(x eventRound) float64 { return x.calls })
}

func (r eventResult) perEvent() []float64 {
	return r.column(func(x eventRound) float64 { return x.calls / float64(x.events) })
}

func (r eventResult) passes() []float64 {
	return r.column(func(x eventRound) float64 { return x.passes })
}

func (r eventResult) events() []float64 {
	return r.column(func(x eventRound) float64 { return float64(x.events) })
}

// table is the human report: one row per measure, median and max over the rounds.
func (r eventResult) table(took time.Duration) string {
	var w strings.Builder
	f := func(v float64) string { return strconv.FormatFloat(v, 'f', 0, 64) }
	f1 := func(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) }
	what := "one task container"
	if r.kills > 1 {
		what = fmt.Sprintf("%d task containers (of as many services)", r.kills)
	}
	fmt.Fprintf(&w, "\nBenchmarkEventCost: Engine API calls after %s of a %d-service app is killed; %d rounds, took %s\n\n",
		what, eventServices, len(r.rounds), took.Round(time.Second))
	fmt.Fprintln(&w, "| per round | median | max |")
	fmt.Fprintln(&w, "|---|---:|---:|")
	fmt.Fprintf(&w, "| API calls | %s | %s |\n", f(median(r.perKill())), f(maxOf(r.perKill())))
	fmt.Fprintf(&w, "| container events of the stack | %s | %s |\n", f(median(r.events())), f(maxOf(r.events())))
	fmt.Fprintf(&w, "| API calls per container event | %s | %s |\n", f1(median(r.perEvent())), f1(maxOf(r.perEvent())))
	fmt.Fprintf(&w, "| reconciles | %s | %s |\n", f(median(r.passes())), f(maxOf(r.passes())))
	ops := map[string]bool{}
	for _, x := range r.rounds {
		for op := range x.byOp {
			ops[op] = true
		}
	}
	for _, op := range sortedKeys(ops) {
		v := r.column(func(x eventRound) float64 { return x.byOp[op] }) // 0 when the round made none
		fmt.Fprintf(&w, "| `%s` | %s | %s |\n", op, f(median(v)), f(maxOf(v)))
	}
	fmt.Fprintln(&w)
	if r.others > 0 {
		fmt.Fprintf(&w, "DISTURBED: up to %d other e2e.test processes were running (call counts hardly depend on it).\n", r.others)
	} else {
		fmt.Fprintln(&w, "quiet: no other e2e.test process seen.")
	}
	return w.String()
}

// makeEventRecipe creates <recipesDir>/e2e-event: a git repository with one annotated tag,
// eventRecipeVersion, whose compose file runs eventServices services s1, s2, ... of the echo
// image, one replica each, no published ports, restarted at once on failure.
func makeEventRecipe(t testing.TB, recipesDir string) {
	t.Helper()
	dir := filepath.Join(recipesDir, eventRecipeName)
	var compose strings.Builder
	compose.WriteString("version: \"3.8\"\n\nservices:\n")
	for i := 1; i <= eventServices; i++ {
		fmt.Fprintf(&compose, `  s%d:
    image: %s
    environment:
      - MESSAGE=hello from s%d
      - PORT=8080
    deploy:
      replicas: 1
      restart_policy:
        condition: on-failure
        delay: 0s
      labels:
        - "coop-cloud.${STACK_NAME}.version=%s"
`, i, echoImage, i, eventRecipeVersion)
	}
	files := map[string]string{
		".env.sample": "TYPE=" + eventRecipeName + "\nDOMAIN=" + eventRecipeName + ".example.com\nLETS_ENCRYPT_ENV=production\n",
		"README.md":   "# " + eventRecipeName + "\n\nAn e2e benchmark recipe: five echo services.\n",
		"compose.yml": compose.String(),
	}
	commitRecipe(t, dir, eventRecipeVersion, files)
}
