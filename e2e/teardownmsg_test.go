package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

const slowStopRecipe = "e2e-slowstop"

// TestTeardownMessagesHaveNoRawEngineErrors: an app whose container takes 3 s to stop (its
// stop signal is one the process ignores, so swarm kills it after stop_grace_period) holds its
// volume while the teardown wants to remove it. Every Deleting message a close reader of the
// status file sees says that in the reconciler's words, never the engine's raw "volume is in
// use - [ids]", and the wait is shown at least once (or the test proves nothing).
func TestTeardownMessagesHaveNoRawEngineErrors(t *testing.T) {
	h := startHarness(t)
	makeEchoRecipe(t, h, slowStopRecipe, "", fmt.Sprintf(`services:
  app:
    image: %s
    environment:
      - MESSAGE=hello from %s
    stop_signal: SIGWINCH
    stop_grace_period: 3s
    volumes:
      - data:/data

volumes:
  data:
`, echoImage, slowStopRecipe), nil)
	a := h.newApp("e2e-slowstop")
	gen := h.writeSpec(a.name, []byte(fmt.Sprintf("recipe: %s\nversion: %q\nminReady: 0s\n", slowStopRecipe, miniRelease)))
	h.waitPhase(a.name, gen, "Ready")

	h.deleteSpec(a.name)
	seen := map[string]bool{}
	var order []string
	deadline := time.Now().Add(phaseDeadline)
	for {
		b, err := os.ReadFile(h.statusPath(a.name))
		var s struct{ Phase, Message string }
		if err == nil && json.Unmarshal(b, &s) == nil && !seen[s.Message] {
			seen[s.Message] = true
			order = append(order, s.Phase+": "+s.Message)
		}
		if s.Phase == "Deleted" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not Deleted within %s; messages:\n%s", phaseDeadline, strings.Join(order, "\n"))
		}
		time.Sleep(2 * time.Millisecond)
	}
	t.Logf("messages during the teardown:\n%s", strings.Join(order, "\n"))
	waited := false
	for _, m := range order {
		if strings.Contains(m, "is in use") || strings.Contains(m, " - [") {
			t.Errorf("a teardown message carries the engine's raw words: %q", m)
		}
		// The volume waits for the stopping container: said as the task still stopping beside the
		// volume still there (the teardown does not try the volume while a task of a removed
		// service is stopping on its node), or as the engine's refusal in words.
		if strings.Contains(m, "is still used by a container that is stopping") ||
			strings.Contains(m, "(its container stopping)") && strings.Contains(m, "volume "+a.stack()+"_data") {
			waited = true
		}
	}
	if !waited {
		t.Errorf("no message said the volume waits for its stopping container: the teardown never met it, so this test showed nothing")
	}
	h.assertNoResidue(a.name)
}
