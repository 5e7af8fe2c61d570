package e2e

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// poisonRecipe is the suite's recipe running a tag of this run's echo image (which has
// /poison) with POISON_FILE on its volume: POST /poison turns the live app into a crash loop
// that survives any update of its service (the echo image exits 3 at every start while the
// file exists), so the app stays Degraded whatever the reconciler does. Its healthcheck keeps
// the crashing tasks from showing as running for a moment.
const poisonRecipe = "e2e-poison"

// poisonHealthcheck keeps a task that exits at its start from ever being counted as running:
// with a healthcheck, swarm reports it running only once healthy.
const poisonHealthcheck = "    healthcheck:\n" +
	"      test: [\"CMD\", \"/echo\", \"check\"]\n" +
	"      interval: 500ms\n      timeout: 2s\n      retries: 3\n"

// poison makes the app's task crash for good: POST /poison on its port.
func poison(t *testing.T, port int) {
	t.Helper()
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Post("http://127.0.0.1:"+strconv.Itoa(port)+"/poison", "text/plain", nil)
	if err != nil {
		t.Fatalf("POST /poison: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST /poison: %s (a 404 means the image predates /poison: was %s rebuilt by a run of an older tree?)", resp.Status, echoImage)
	}
}

// onceTimeout is the --timeout given to `reconciler once`; onceMargin is how much later than
// that it must have exited, and onceKill when the test kills it.
const (
	onceTimeout = 20 * time.Second
	onceMargin  = 10 * time.Second
	onceKill    = onceTimeout + 30*time.Second
)

// TestOnceEndsWithDegradedApp: `reconciler once --timeout 20s` with an app that is Degraded
// for good (its task crash-loops: nothing the reconciler can do repairs it) exits within its
// timeout (and a margin of 10 s), never runs on: exit 1 naming the app when the timeout ended
// it, or the pass's verdict (0, or 1 naming the app). The same with the timeout from the
// environment (RECONCILER_TIMEOUT, as every flag can be), which the reconciler of before this
// flag ignores: that run shows `once` running for ever. The wait is bounded: the test kills
// `once` 30 s after its timeout.
func TestOnceEndsWithDegradedApp(t *testing.T) {
	h := startHarness(t)
	img := testImage(t, "poison")
	makeVariantRecipe(t, h, poisonRecipe, []edit{
		{"image: " + echoImage + "\n", "image: " + img + "\n"},
		{"      - PORT=8080\n", "      - PORT=8080\n      - POISON_FILE=/data/poison\n"},
		{"    ports:\n", poisonHealthcheck + "    ports:\n"},
	}, nil)
	a := h.newApp("e2e-once")
	gen := h.writeSpec(a.name, a.specOf(poisonRecipe, miniRelease, "timeout: 10m"))
	h.waitPhase(a.name, gen, "Ready")
	poison(t, a.port)
	s := h.waitPhase(a.name, gen, "Degraded")
	t.Logf("Degraded: %s", s.Message)
	// once needs the spec directory to itself.
	if err := h.stop(); err != nil {
		t.Errorf("reconciler on SIGTERM: %v", err)
	}

	for _, c := range []struct {
		name string
		env  []string
		args []string
	}{
		{"flag", nil, []string{"once", "--timeout", onceTimeout.String()}},
		{"env", []string{"RECONCILER_TIMEOUT=" + onceTimeout.String()}, []string{"once"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			r, err := h.cliWith(onceKill, c.env, "", append(c.args, "--log-format", "console")...)
			if err != nil {
				t.Fatalf("once with a Degraded app and a timeout of %s: %v", onceTimeout, err)
			}
			out := r.stdout + r.stderr
			if strings.Contains(out, "unknown flag") {
				t.Fatalf("once does not know --timeout: %s", r)
			}
			if r.took > onceTimeout+onceMargin {
				t.Errorf("once ran %s, want at most its timeout %s and a margin of %s: %s", r.took.Round(time.Millisecond), onceTimeout, onceMargin, r)
			}
			switch {
			case r.code != 0 && r.code != 1:
				t.Errorf("once exited %d, want 1 (timed out, naming the app) or the verdict 0/1: %s", r.code, r)
			case r.code == 1 && !strings.Contains(out, a.name):
				t.Errorf("once exited 1 without naming the app %s: %s", a.name, r)
			case r.code == 0 && r.took >= onceTimeout:
				t.Errorf("once exited 0 after its timeout with the app %s not finished: %s", a.name, r)
			}
			s, _, err := h.readStatus(a.name)
			t.Logf("once exited %d after %s; the app is %s (%v): %s\nstdout: %s\nstderr (tail): %s", r.code, r.took.Round(time.Millisecond),
				s.Phase, err, s.Message, r.stdout, tail(r.stderr, 5))
		})
	}
	h.start() // for the app's teardown
}

// tail is the last n lines of text.
func tail(text string, n int) string {
	lines := strings.Split(strings.TrimRight(text, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
