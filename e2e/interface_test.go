package e2e

// The CI and operator interface (issue 6): apply/wait/delete exit codes, status, /metrics and
// /readyz, the README's CI example run as written, the swarm-service compose file deployed
// with the locally built image, and the systemd unit check.
//
//	go test ./e2e/ -run 'Interface|README|Metrics|ServiceDeploy' -count=1 -v -timeout 20m

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/image"
)

// ifaceSpecFile writes body as <dir>/<app>.yml, outside the spec directory, as CI would
// before `reconciler apply`.
func ifaceSpecFile(t *testing.T, app string, body []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), app+".yml")
	if err := os.WriteFile(path, body, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// ifacePhaseLines parses what apply --wait and delete --wait print on stdout: one line per
// phase change, "<RFC 3339 time>  <phase>  <message>". It fails the test on any other line.
func ifacePhaseLines(t *testing.T, r cliResult) []string {
	t.Helper()
	var phases []string
	for line := range strings.Lines(r.stdout) {
		f := strings.Fields(line)
		if len(f) < 2 {
			t.Errorf("not a phase line (time, phase, message): %q\n%s", line, r)
			continue
		}
		if _, err := time.Parse(time.RFC3339, f[0]); err != nil {
			t.Errorf("phase line %q: the first field is not a time: %v", line, err)
		}
		phases = append(phases, f[1])
	}
	return phases
}

// TestInterfaceApplyWaitDelete: `apply --wait` prints the phase changes and exits 0 on Ready;
// `status` lists the app (table, wide, JSON); `delete --wait` exits 0 with zero residual.
func TestInterfaceApplyWaitDelete(t *testing.T) {
	h := startHarness(t)
	a := h.newApp("e2e-iface")
	version := h.recipe.first().Version
	body := a.spec(version)
	file := ifaceSpecFile(t, a.name, body)

	r := h.cli(phaseDeadline, "apply", file, "--wait", "--timeout", "150s")
	if r.code != 0 {
		t.Fatalf("apply --wait: want exit 0 on Ready: %s", r)
	}
	phases := ifacePhaseLines(t, r)
	if len(phases) == 0 || phases[len(phases)-1] != "Ready" {
		t.Errorf("apply --wait: want one line per phase change ending in Ready, got %v: %s", phases, r)
	}
	for i := 1; i < len(phases); i++ {
		if phases[i] == phases[i-1] {
			t.Errorf("apply --wait printed phase %s twice in a row: %s", phases[i], r)
		}
	}
	if !strings.Contains(r.stderr, generation(body)) {
		t.Errorf("apply: want the generation %s on stderr: %s", generation(body), r)
	}
	s := h.waitPhase(a.name, generation(body), "Ready")
	if got, err := os.ReadFile(h.specPath(a.name)); err != nil || !bytes.Equal(got, body) {
		t.Errorf("apply placed %q (err %v), want the file's bytes", got, err)
	}
	a.checkAnswers(t, version)

	// Applying the same bytes again: already Ready for this generation, no new deploy.
	idx := h.indexes(a.name)
	if r := h.cli(time.Minute, "apply", file, "--wait", "--timeout", "30s"); r.code != 0 {
		t.Errorf("apply --wait of an unchanged spec: want exit 0 at once: %s", r)
	}
	time.Sleep(2 * resync) // what a redeploy would take to show
	if again, _, err := h.readStatus(a.name); err != nil || again.Deploys != s.Deploys || !maps.Equal(h.indexes(a.name), idx) {
		t.Errorf("apply of an unchanged spec: deploys %d -> %d (%v), services %v -> %v; want no new deploy", s.Deploys, again.Deploys, err, idx, h.indexes(a.name))
	}

	// status: table, wide, JSON.
	r = h.cli(time.Minute, "status")
	if r.code != 0 || !hasLineWith(r.stdout, a.name, h.recipe.Name, version, "install", "Ready") {
		t.Errorf("status: want a line with %s, %s, %s, install, Ready: %s", a.name, h.recipe.Name, version, r)
	}
	if header := strings.Fields(strings.SplitN(r.stdout, "\n", 2)[0]); strings.Join(header, " ") != "APP RECIPE VERSION TIER PHASE AGE MESSAGE" {
		t.Errorf("status header %v: %s", header, r)
	}
	if strings.Contains(r.stdout, "\x1b[") {
		t.Errorf("status: colour codes on a pipe: %q", r.stdout)
	}
	r = h.cli(time.Minute, "status", a.name, "-o", "wide")
	if r.code != 0 || !hasLineWith(r.stdout, a.name, "Ready", s.Stack, strings.TrimPrefix(s.ObservedGeneration, "sha256:")[:12]) {
		t.Errorf("status -o wide: want the stack %s and the generation: %s", s.Stack, r)
	}
	r = h.cli(time.Minute, "status", "-o", "json")
	var list []appStatus
	if err := json.Unmarshal([]byte(r.stdout), &list); r.code != 0 || err != nil {
		t.Errorf("status -o json: want a JSON array (%v): %s", err, r)
	}
	found := false
	for _, st := range list {
		found = found || (st.App == a.name && st.Phase == "Ready" && st.ObservedGeneration == generation(body))
	}
	if !found {
		t.Errorf("status -o json: no Ready entry for %s: %s", a.name, r)
	}

	r = h.cli(phaseDeadline, "delete", a.name, "--wait", "--timeout", "150s")
	if r.code != 0 {
		t.Fatalf("delete --wait: want exit 0 once Deleted: %s", r)
	}
	if phases := ifacePhaseLines(t, r); len(phases) == 0 || phases[len(phases)-1] != "Deleted" {
		t.Errorf("delete --wait: want phase lines ending in Deleted, got %v: %s", phases, r)
	}
	h.assertNoResidue(a.name)
	if _, err := os.Stat(h.specPath(a.name)); !os.IsNotExist(err) {
		t.Errorf("delete: the spec is still there (%v)", err)
	}
}

// TestInterfaceWaitFailed: `wait --for ready` of an app whose release names a missing image
// exits 1 and prints the status message; so does `apply --wait` of that spec.
func TestInterfaceWaitFailed(t *testing.T) {
	h := startHarness(t)
	a := h.newApp("e2e-iface-fail")
	file := ifaceSpecFile(t, a.name, a.spec(missingImageVersion))
	if r := h.cli(time.Minute, "apply", file); r.code != 0 {
		t.Fatalf("apply: %s", r)
	}
	r := h.cli(phaseDeadline, "wait", a.name, "--for", "ready", "--timeout", "150s")
	if r.code != 1 {
		t.Fatalf("wait of a Failed app: want exit 1: %s", r)
	}
	s, _, err := h.readStatus(a.name)
	if err != nil || s.Phase != "Failed" {
		t.Fatalf("wait exited 1 but the status is not Failed (%v):\n%s", err, s)
	}
	if !strings.Contains(r.stderr, "Failed") || !strings.Contains(r.stderr, s.Message) || !strings.Contains(r.stderr, missingImage) {
		t.Errorf("wait: want the phase and the status message %q (naming %s) on stderr: %s", s.Message, missingImage, r)
	}

	// The same spec again: Failed is final for its generation, so apply --wait says so at once.
	r = h.cli(time.Minute, "apply", file, "--wait", "--timeout", "60s")
	if r.code != 1 || !strings.Contains(r.stderr, s.Message) {
		t.Errorf("apply --wait of a Failed spec: want exit 1 with the message: %s", r)
	}
	if phases := ifacePhaseLines(t, r); len(phases) != 1 || phases[0] != "Failed" {
		t.Errorf("apply --wait of a Failed spec: want one Failed line, got %v: %s", phases, r)
	}
	r = h.cli(time.Minute, "status")
	if !hasLineWith(r.stdout, a.name, missingImageVersion, "Failed") {
		t.Errorf("status: want %s Failed: %s", a.name, r)
	}
}

// TestInterfaceWaitTimeout: with no reconciler running, `wait` and `apply --wait` time out
// with exit 2 and say that no reconciler updated the status.
func TestInterfaceWaitTimeout(t *testing.T) {
	h := newHarness(t) // never started
	a := h.newApp("e2e-iface-timeout")
	file := ifaceSpecFile(t, a.name, a.spec(h.recipe.first().Version))

	start := time.Now()
	r := h.cli(time.Minute, "apply", file, "--wait", "--timeout", "3s")
	if r.code != 2 || !strings.Contains(r.stderr, "no reconciler updated the status") {
		t.Errorf("apply --wait without a reconciler: want exit 2 saying no reconciler updated the status: %s", r)
	}
	if took := time.Since(start); took < 3*time.Second || took > 30*time.Second {
		t.Errorf("apply --wait --timeout 3s took %s", took)
	}
	r = h.cli(time.Minute, "wait", a.name, "--for", "ready", "--timeout", "2s")
	if r.code != 2 || !strings.Contains(r.stderr, "no reconciler updated the status") || !strings.Contains(r.stderr, h.specs) {
		t.Errorf("wait without a reconciler: want exit 2 saying no reconciler updated the status and naming %s: %s", h.specs, r)
	}
	if _, found, _ := h.readStatus(a.name); found {
		t.Errorf("wait wrote a status file; only a reconciler may")
	}
	r = h.cli(time.Minute, "status", a.name)
	if r.code != 1 || !strings.Contains(r.stderr, "no reconciler has reported on it") {
		t.Errorf("status of an app nobody reported on: want exit 1 saying so: %s", r)
	}
	// delete: nothing was deployed, so nothing to wait for.
	if r := h.cli(time.Minute, "delete", a.name, "--wait", "--timeout", "5s"); r.code != 0 {
		t.Errorf("delete --wait of an app never reconciled: want exit 0: %s", r)
	}
}

// gatedEngine is an Engine API proxy on a unix socket in front of the suite's daemon. Until
// opened it holds every request except /_ping and /version (which the client's version
// negotiation and /readyz's engine check use), so a reconciler behind it cannot finish its
// initial sweep nor connect its event stream.
type gatedEngine struct {
	socket string
	open   chan struct{}
	once   sync.Once
	mu     sync.Mutex
	held   []string // requests that waited for the gate
}

func newGatedEngine(t *testing.T) *gatedEngine {
	t.Helper()
	target, err := url.Parse(suite.docker.DaemonHost())
	if err != nil {
		t.Fatal(err)
	}
	network, addr := target.Scheme, target.Host
	if network == "unix" {
		addr = target.Path
	}
	if network != "unix" && network != "tcp" {
		t.Fatalf("gated engine proxy: daemon host %s is neither unix nor tcp: run the suite against a unix or tcp engine", suite.docker.DaemonHost())
	}
	g := &gatedEngine{socket: filepath.Join(shortTempDir(t), "engine.sock"), open: make(chan struct{})}
	proxy := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(&url.URL{Scheme: "http", Host: "docker"})
			r.Out.Host = "docker"
		},
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		}},
		FlushInterval: -1, // the event stream
	}
	versioned := regexp.MustCompile(`^(/v[0-9.]+)?/(_ping|version)$`)
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !versioned.MatchString(r.URL.Path) {
			select {
			case <-g.open:
			default:
				g.mu.Lock()
				g.held = append(g.held, r.Method+" "+r.URL.Path)
				g.mu.Unlock()
				select {
				case <-g.open:
				case <-r.Context().Done():
					return
				}
			}
		}
		proxy.ServeHTTP(w, r)
	})
	ln, err := net.Listen("unix", g.socket)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() {
		g.release()
		srv.Close()
	})
	return g
}

func (g *gatedEngine) release() { g.once.Do(func() { close(g.open) }) }

func (g *gatedEngine) heldRequests() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]string(nil), g.held...)
}

// shortTempDir is a temporary directory with a path short enough for a unix socket (108
// bytes), which t.TempDir under a long test name may not be.
func shortTempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "e2e-sock-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// metricNames are the metrics issue 6 names, as --metrics-addr serves them.
var metricNames = []string{
	"swarm_reconciler_reconciles_total",
	"swarm_reconciler_reconcile_duration_seconds",
	"swarm_reconciler_workqueue_depth",
	"swarm_reconciler_workqueue_retries_total",
	"swarm_reconciler_apps",
	"swarm_reconciler_time_to_ready_seconds",
	"swarm_reconciler_teardown_duration_seconds",
	"swarm_reconciler_engine_api_calls_total",
}

// scrape parses the Prometheus text format at /metrics into sample name{labels} -> value.
func scrape(port int) (map[string]float64, string, error) {
	code, body, err := httpGet(port, "/metrics")
	if err != nil {
		return nil, body, err
	}
	if code != http.StatusOK {
		return nil, body, fmt.Errorf("GET /metrics: %d", code)
	}
	samples := map[string]float64{}
	sc := bufio.NewScanner(strings.NewReader(body))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			return nil, body, fmt.Errorf("not a sample line: %q", line)
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			return nil, body, fmt.Errorf("sample %q: %w", line, err)
		}
		samples[line[:i]] = v
	}
	return samples, body, sc.Err()
}

// family sums the samples of metric name whose labels contain every one of labels. The
// samples of a histogram are name_bucket, name_sum and name_count; name matches them all.
func family(samples map[string]float64, name string, labels ...string) (sum float64, n int) {
	for k, v := range samples {
		base, rest, _ := strings.Cut(k, "{")
		if base != name && base != name+"_bucket" && base != name+"_sum" && base != name+"_count" {
			continue
		}
		all := true
		for _, l := range labels {
			all = all && strings.Contains(rest, l)
		}
		if all {
			sum += v
			n++
		}
	}
	return sum, n
}

// TestMetricsAndReadyz: /readyz answers 503 until the initial sweep is done and the event
// stream is connected, then 200; /metrics serves every metric issue 6 names once an app was
// deployed and deleted.
//
// The not-ready window of a reconciler on a fast engine lasts a few milliseconds, too short to
// observe reliably. So the reconciler talks to the engine through gatedEngine, which holds
// every request but /_ping and /version: its sweep (list calls) and event stream wait at the
// gate, while /readyz's engine ping passes. /readyz must say 503 for as long as the gate is
// closed, and 200 soon after it opens.
func TestMetricsAndReadyz(t *testing.T) {
	h := newHarness(t)
	gate := newGatedEngine(t)
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	h.startWith([]string{"DOCKER_HOST=unix://" + gate.socket}, "--metrics-addr", "127.0.0.1:"+strconv.Itoa(port))
	ctx := context.Background()

	// /healthz: alive as soon as it listens.
	if err := waitHTTP(ctx, port, "/healthz", "ok\n"); err != nil {
		t.Fatalf("/healthz: %v", err)
	}
	// /readyz: 503 while the sweep waits at the gate.
	// Only a 200 is wrong here; an answer that is late or names another reason (a slow engine
	// ping on a loaded node) is not, as long as most name the sweep.
	var notReady, other int
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		code, body, err := httpGet(port, "/readyz")
		switch {
		case code == http.StatusOK:
			t.Fatalf("/readyz before the initial sweep: 200 %q; held engine requests: %v", body, gate.heldRequests())
		case err == nil && code == http.StatusServiceUnavailable && strings.Contains(body, "initial sweep"):
			notReady++
		default:
			other++
			t.Logf("/readyz before the initial sweep: %d %q (%v)", code, body, err)
		}
	}
	if notReady <= other {
		t.Fatalf("/readyz before the initial sweep named it in %d answers, and did not in %d", notReady, other)
	}
	held := gate.heldRequests()
	if len(held) == 0 {
		t.Fatalf("no Engine API request waited at the gate: the reconciler did not start its sweep")
	}
	t.Logf("/readyz said 503 %d times while %d engine requests waited at the gate (first: %s)", notReady, len(held), held[0])
	if samples, body, err := scrape(port); err != nil {
		t.Errorf("/metrics before the initial sweep: %v\n%s", err, body)
	} else if _, n := family(samples, "swarm_reconciler_workqueue_depth"); n != 1 {
		t.Errorf("/metrics before the initial sweep: no swarm_reconciler_workqueue_depth\n%s", body)
	}

	opened := time.Now()
	gate.release()
	if err := poll(ctx, 30*time.Second, func() (bool, error) {
		code, _, err := httpGet(port, "/readyz")
		return code == http.StatusOK, err
	}); err != nil {
		t.Fatalf("/readyz after the gate opened: not 200 within 30s: %v", err)
	}
	t.Logf("/readyz 200 %s after the gate opened", time.Since(opened).Round(time.Millisecond))

	// Every metric has samples once an app went through Ready and a teardown.
	a := h.newApp("e2e-metrics")
	file := ifaceSpecFile(t, a.name, a.spec(h.recipe.first().Version))
	if r := h.cli(phaseDeadline, "apply", file, "--wait", "--timeout", "150s"); r.code != 0 {
		t.Fatalf("apply --wait: %s", r)
	}
	if r := h.cli(phaseDeadline, "delete", a.name, "--wait", "--timeout", "150s"); r.code != 0 {
		t.Fatalf("delete --wait: %s", r)
	}
	h.assertNoResidue(a.name)

	var (
		samples map[string]float64
		body    string
		missing []string
	)
	// swarm_reconciler_apps is set at a resync: wait for one.
	err = poll(ctx, 4*resync+5*time.Second, func() (bool, error) {
		var err error
		samples, body, err = scrape(port)
		if err != nil {
			return false, err
		}
		missing = missing[:0]
		for _, name := range metricNames {
			if _, n := family(samples, name); n == 0 {
				missing = append(missing, name)
			}
		}
		return len(missing) == 0, nil
	})
	if err != nil {
		t.Fatalf("/metrics lacks %v (%v):\n%s", missing, err, body)
	}
	checks := []struct {
		what   string
		name   string
		labels []string
		min    float64
	}{
		{"successful reconciles", "swarm_reconciler_reconciles_total", []string{`result="success"`}, 1},
		{"reconciles timed", "swarm_reconciler_reconcile_duration_seconds_count", nil, 1},
		{"apps reaching Ready", "swarm_reconciler_time_to_ready_seconds_count", nil, 1},
		{"teardowns", "swarm_reconciler_teardown_duration_seconds_count", nil, 1},
		{"Engine API service creations", "swarm_reconciler_engine_api_calls_total", []string{`operation="POST /services/create"`}, 1},
		{"apps by phase", "swarm_reconciler_apps", []string{`phase="`}, 0},
	}
	for _, c := range checks {
		if v, n := family(samples, c.name, c.labels...); n == 0 || v < c.min {
			t.Errorf("%s: %s%v = %v over %d samples, want at least %v", c.what, c.name, c.labels, v, n, c.min)
		}
	}
	var ops []string
	for k := range samples {
		if strings.HasPrefix(k, "swarm_reconciler_engine_api_calls_total{") {
			ops = append(ops, k)
		}
	}
	t.Logf("engine API calls: %v", ops)
}

// dockerSocketPath is the host path of the daemon's unix socket, which deploy/compose.yml
// bind-mounts into the service.
func dockerSocketPath() string {
	if u, err := url.Parse(suite.docker.DaemonHost()); err == nil && u.Scheme == "unix" {
		return u.Path
	}
	return "/var/run/docker.sock"
}

// buildReconcilerImage builds deploy/Dockerfile with a static reconciler, as `make image`
// does, through the Engine API (classic builder: FROM scratch needs no registry), tagged tag.
func buildReconcilerImage(ctx context.Context, t *testing.T, tag string) {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	info, err := suite.docker.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	goarch, ok := map[string]string{"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}[info.Architecture]
	if !ok {
		t.Fatalf("daemon architecture %q: no GOARCH for it", info.Architecture)
	}
	bin := filepath.Join(t.TempDir(), "reconciler")
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", bin, "./cmd/reconciler")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+goarch)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("static build of the reconciler (as make build): %v\n%s", err, out)
	}
	dockerfile, err := os.ReadFile(filepath.Join(root, "deploy", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	binary, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	if err := buildImage(ctx, suite.docker, tag, []contextFile{{"Dockerfile", 0o644, dockerfile}, {"reconciler", 0o755, binary}}); err != nil {
		t.Fatalf("build %s from deploy/Dockerfile: %v", tag, err)
	}
	t.Cleanup(func() {
		if _, err := suite.docker.ImageRemove(context.Background(), tag, image.RemoveOptions{PruneChildren: true}); err != nil {
			t.Errorf("remove image %s: %v", tag, err)
		}
	})
}

// ifaceStackRemove runs `docker stack rm` and waits until no object of the stack, container
// included, is left.
func ifaceStackRemove(ctx context.Context, stack string) error {
	if out, err := exec.CommandContext(ctx, "docker", "stack", "rm", stack).CombinedOutput(); err != nil {
		return fmt.Errorf("docker stack rm %s: %w\n%s", stack, err, out)
	}
	var left []string
	err := poll(ctx, 2*time.Minute, func() (bool, error) {
		var err error
		left, err = labelled(ctx, suite.docker, namespaceLabel, stack)
		return err == nil && len(left) == 0, err
	})
	if err != nil {
		return fmt.Errorf("docker stack rm %s: still there: %s: %w", stack, strings.Join(left, ", "), err)
	}
	return nil
}

// serviceDiagnostics is what `docker service ps` and `docker service logs` say, for failures.
func serviceDiagnostics(service string) string {
	var b strings.Builder
	for _, args := range [][]string{
		{"service", "ps", "--no-trunc", service},
		{"service", "logs", "--raw", "--tail", "60", service},
	} {
		out, err := exec.Command("docker", args...).CombinedOutput()
		fmt.Fprintf(&b, "$ docker %s (%v)\n%s\n", strings.Join(args, " "), err, out)
	}
	return b.String()
}

// TestServiceDeploy: deploy/compose.yml, deployed with `docker stack deploy` as
// deploy/README.md says and the image built from deploy/Dockerfile here, runs a reconciler
// that turns a spec into a Ready app and tears it down again; `docker stack rm` removes it.
func TestServiceDeploy(t *testing.T) {
	if _, err := exec.LookPath("docker"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("the docker CLI is needed to deploy deploy/compose.yml: %v", err)
		}
		t.Skipf("the docker CLI is needed to deploy deploy/compose.yml: %v (with CI set this fails)", err)
	}
	ctx := context.Background()
	h := newHarness(t) // its directories; the reconciler is the service
	a := h.newApp("e2e-svc")
	stack := "e2e-reconciler-" + randomSuffix()
	tag := "swarm-reconciler-e2e/reconciler:" + strings.TrimPrefix(stack, "e2e-reconciler-")
	buildReconcilerImage(ctx, t, tag)

	metricsPort, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	root, _ := filepath.Abs("..")
	deploy := exec.CommandContext(ctx, "docker", "stack", "deploy", "--resolve-image", "never", "-c", "deploy/compose.yml", stack)
	deploy.Dir = root
	deploy.Env = append(os.Environ(),
		"RECONCILER_IMAGE="+tag,
		"RECONCILER_SPECS="+h.specs,
		"RECONCILER_STATUS="+h.status,
		"RECONCILER_RECIPES="+h.recipes,
		"RECONCILER_LOCK_DIR="+suite.lockDir,
		"RECONCILER_DOCKER_SOCKET="+dockerSocketPath(),
		"RECONCILER_DOMAIN_SUFFIX="+domainSuffix,
		"RECONCILER_RESYNC="+resync.String(),
		"RECONCILER_METRICS_ADDR=127.0.0.1:"+strconv.Itoa(metricsPort),
	)
	// Registered after newApp, so it runs before the app's cleanup: with the service gone, that
	// cleanup can start a reconciler of its own on the spec directory.
	removed := false
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("service diagnostics:\n%s", serviceDiagnostics(stack+"_reconciler"))
		}
		if !removed {
			if err := ifaceStackRemove(context.Background(), stack); err != nil {
				t.Error(err)
			}
		}
	})
	if out, err := deploy.CombinedOutput(); err != nil {
		t.Fatalf("docker stack deploy -c deploy/compose.yml %s: %v\n%s", stack, err, out)
	}

	// The service is up, has swept and streams events.
	if err := poll(ctx, 2*time.Minute, func() (bool, error) {
		code, _, err := httpGet(metricsPort, "/readyz")
		return code == http.StatusOK, err
	}); err != nil {
		t.Fatalf("the service's /readyz on 127.0.0.1:%d never answered 200: %v\n%s", metricsPort, err, serviceDiagnostics(stack+"_reconciler"))
	}

	version := h.recipe.first().Version
	gen := h.writeSpec(a.name, a.spec(version))
	s := h.waitPhase(a.name, gen, "Ready")
	if s.Deploys != 1 {
		t.Errorf("deploys = %d, want 1:\n%s", s.Deploys, s)
	}
	a.checkAnswers(t, version)
	// The host's CLI reads what the service writes.
	if r := h.cli(time.Minute, "status"); !hasLineWith(r.stdout, a.name, "Ready") {
		t.Errorf("status on the host: want %s Ready: %s", a.name, r)
	}
	// A second reconciler on the same directory, on the host, is refused: the lock is shared.
	if r := h.cli(30*time.Second, "once"); r.code == 0 || !strings.Contains(r.stdout+r.stderr, h.specs) {
		t.Errorf("once on the host while the service runs on %s: want a non-zero exit naming it: %s", h.specs, r)
	}

	h.deleteSpec(a.name)
	if _, err := h.waitDeleted(a.name); err != nil {
		t.Fatal(err)
	}
	h.assertNoResidue(a.name)

	if err := ifaceStackRemove(ctx, stack); err != nil {
		t.Fatal(err)
	}
	removed = true
}

// readmeCIExample returns the shell block of README.md marked as the CI example.
func readmeCIExample(t *testing.T) string {
	t.Helper()
	readme, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	const marker = "<!-- ci-example:"
	_, after, ok := strings.Cut(string(readme), marker)
	if !ok {
		t.Fatalf("README.md has no %q marker before its CI example", marker)
	}
	_, block, ok := strings.Cut(after, "```sh\n")
	if !ok {
		t.Fatal("README.md: no ```sh block after the CI example marker")
	}
	block, _, ok = strings.Cut(block, "\n```")
	if !ok {
		t.Fatal("README.md: the CI example block does not end")
	}
	return block + "\n"
}

// ifaceReleaseOnPort tags a new release of the harness's recipe: the compose files of from,
// with the .env.sample's default PORT set to port, so that a spec without env (as in the
// README) publishes on a port free on this host. It returns the new version.
func ifaceReleaseOnPort(t *testing.T, r recipe, from string, port int) string {
	t.Helper()
	version := fmt.Sprintf("9.%d.0+1.0", port)
	if err := git(r.Dir, "checkout", "-q", from, "--", "."); err != nil {
		t.Fatal(err)
	}
	envPath := filepath.Join(r.Dir, ".env.sample")
	env, err := os.ReadFile(envPath)
	if err != nil {
		t.Fatal(err)
	}
	portLine := regexp.MustCompile(`(?m)^PORT=.*$`)
	if !portLine.Match(env) {
		t.Fatalf("recipe %s: no PORT= line in .env.sample:\n%s", r.Name, env)
	}
	env = portLine.ReplaceAll(env, []byte("PORT="+strconv.Itoa(port)))
	if err := os.WriteFile(envPath, env, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"add", "-A"}, {"commit", "-q", "-m", "chore: release " + version}, {"tag", "-a", version, "-m", "release " + version}} {
		if err := git(r.Dir, args...); err != nil {
			t.Fatal(err)
		}
	}
	return version
}

// TestREADMECIExample runs the README's CI example with bash, as written, against a running
// reconciler: once for a release that comes up (exit 0, the tests ran against the app, the
// app torn down after) and once for a release whose image is missing (exit 1, no tests run,
// torn down all the same).
func TestREADMECIExample(t *testing.T) {
	script := readmeCIExample(t)
	t.Logf("README CI example:\n%s", script)
	h := startHarness(t)
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	good := ifaceReleaseOnPort(t, h.recipe, h.recipe.first().Version, port)
	message := h.recipe.message(h.recipe.first().Version)

	// PATH: the reconciler as `reconciler`, and run-my-tests, standing in for the job's tests:
	// it records its argument and checks that the app answers on its port.
	bin := t.TempDir()
	if err := os.Symlink(h.bin, filepath.Join(bin, "reconciler")); err != nil {
		t.Fatal(err)
	}
	calls := filepath.Join(bin, "run-my-tests.calls")
	runMyTests := fmt.Sprintf(`#!/usr/bin/env bash
# run-my-tests URL: records URL, then checks that the app answers %[2]q on 127.0.0.1:%[1]d.
printf '%%s\n' "$1" >> %[3]q
for _ in $(seq 1 120); do
  body=$( { exec 3<>/dev/tcp/127.0.0.1/%[1]d && printf 'GET / HTTP/1.0\r\n\r\n' >&3 && cat <&3; } 2>/dev/null )
  case "$body" in *%[2]q*) echo "run-my-tests: $1 answered"; exit 0;; esac
  sleep 0.5
done
echo "run-my-tests: no answer %[2]q on 127.0.0.1:%[1]d; last: $body" >&2
exit 1
`, port, message, calls)
	if err := os.WriteFile(filepath.Join(bin, "run-my-tests"), []byte(runMyTests), 0o755); err != nil {
		t.Fatal(err)
	}

	for _, c := range []struct {
		name, version string
		code          int
		tested        bool
	}{
		{"Ready", good, 0, true},
		{"Failed", missingImageVersion, 1, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			job := "readme-" + randomSuffix()
			app := "ch-" + job
			t.Cleanup(func() { h.cleanupApp(app) })
			os.Remove(calls)
			cmd := exec.Command("bash", "-c", script)
			cmd.Dir = t.TempDir()
			cmd.Env = append(os.Environ(),
				"PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"),
				"CI_JOB_ID="+job, "RECIPE="+h.recipe.Name, "VERSION="+c.version, "CI_DOMAIN="+domainSuffix,
				"RECONCILER_SPECS="+h.specs, "RECONCILER_STATUS="+h.status, "RECONCILER_RECIPES="+h.recipes,
				"RECONCILER_LOCK_DIR="+suite.lockDir, "RECONCILER_DOMAIN_SUFFIX="+domainSuffix,
			)
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			done := make(chan error, 1)
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			go func() { done <- cmd.Wait() }()
			var err error
			select {
			case err = <-done:
			case <-time.After(2 * phaseDeadline):
				cmd.Process.Kill()
				t.Fatalf("the README CI example did not finish within %s:\n%s", 2*phaseDeadline, out.String())
			}
			code := 0
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			t.Logf("exit %d:\n%s", code, out.String())
			if code != c.code {
				t.Errorf("the README CI example for %s exited %d, want %d", c.version, code, c.code)
			}
			got, _ := os.ReadFile(calls)
			want := ""
			if c.tested {
				want = "https://" + app + "." + domainSuffix + "\n"
			}
			if string(got) != want {
				t.Errorf("run-my-tests was called with %q, want %q", got, want)
			}
			s, found, err := h.readStatus(app)
			if err != nil || !found || s.Phase != "Deleted" {
				t.Errorf("after the example (its trap deletes the app): want phase Deleted (found %v, %v):\n%s", found, err, s)
			}
			h.assertNoResidue(app)
		})
	}
}

// TestInterfaceSystemdUnit runs deploy/verify-unit (systemd-analyze verify of the unit as it
// would be installed, any warning a failure) against the reconciler this run built.
func TestInterfaceSystemdUnit(t *testing.T) {
	bin := needBinary(t)
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("systemd-analyze is missing, and CI is set: install it (apt-get install systemd) so the unit is verified: %v", err)
		}
		t.Skipf("systemd-analyze is missing (apt-get install systemd); set CI to make this a failure")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "deploy/verify-unit", bin)
	cmd.Dir = ".."
	out, err := cmd.CombinedOutput()
	t.Logf("deploy/verify-unit:\n%s", out)
	if err != nil {
		t.Errorf("deploy/verify-unit %s: %v", bin, err)
	}
	if !strings.Contains(string(out), "OK (no warnings)") {
		t.Errorf("deploy/verify-unit did not report OK")
	}
}
