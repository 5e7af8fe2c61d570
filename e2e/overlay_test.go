package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/swarm-reconciler/reconciler/spec"
)

// desiredGeneration is the generation the reconciler gives app's spec as it is now on disk,
// overlays included.
func desiredGeneration(t testing.TB, h *harness, app string) string {
	t.Helper()
	d, err := spec.Load(h.specs, app, spec.Defaults{DomainSuffix: domainSuffix})
	if err != nil || d == nil {
		t.Fatalf("load spec %s: %v", app, err)
	}
	return d.Generation
}

// statusOverlays reads the overlays the status lists.
func statusOverlays(t testing.TB, s appStatus) []spec.OverlayRef {
	t.Helper()
	var full struct {
		Overlays []spec.OverlayRef `json:"overlays"`
	}
	if err := json.Unmarshal(s.raw, &full); err != nil {
		t.Fatal(err)
	}
	return full.Overlays
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// TestOverlays: a CI's overlay file adds a host-mode port and an env value to a recipe that has
// neither: the app answers on that port with that value, the status lists the overlay's hash;
// editing the overlay file (not the spec) upgrades the app in place. Overlays that leave the
// spec directory, are missing, do not parse or break the compose schema are each Invalid with
// a message naming the overlay, and nothing of theirs is deployed, the other app untouched.
func TestOverlays(t *testing.T) {
	t.Parallel()
	h := startHarness(t)
	makeEchoRecipe(t, h, "ov-echo", "", `services:
  app:
    image: `+echoImage+`
    environment:
      MESSAGE: from the recipe
`, nil)
	a := h.newApp("e2e-overlay")
	overlayPath := filepath.Join(h.specs, "overlays", a.name+".ci.yml")
	writeOverlay := func(message string) []byte {
		t.Helper()
		body := []byte(fmt.Sprintf("services:\n  app:\n    environment:\n      MESSAGE: %s\n    ports:\n      - {target: 8080, published: %d, mode: host}\n", message, a.port))
		if err := os.MkdirAll(filepath.Dir(overlayPath), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(overlayPath, body, 0o644); err != nil {
			t.Fatal(err)
		}
		return body
	}
	first := writeOverlay("from the overlay")
	h.writeSpec(a.name, []byte("recipe: ov-echo\nversion: "+miniRelease+"\ntimeout: 2m\noverlays:\n  - file: overlays/"+a.name+".ci.yml\n"))
	s := h.waitPhase(a.name, desiredGeneration(t, h, a.name), "Ready")
	if code, body, err := httpGet(a.port, "/"); err != nil || code != 200 || !strings.Contains(body, "from the overlay") {
		t.Fatalf("GET :%d/ = %d %q %v, want the overlay's MESSAGE on the overlay's port", a.port, code, body, err)
	}
	want := []spec.OverlayRef{{Name: "overlays/" + a.name + ".ci.yml", SHA256: sha256Hex(first)}}
	if got := statusOverlays(t, s); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("status overlays %v, want %v", got, want)
	}
	before := h.indexes(a.name)
	svcBefore := a.appService(t)

	// Editing the overlay file alone upgrades the app in place.
	second := writeOverlay("edited overlay")
	s = h.waitPhase(a.name, desiredGeneration(t, h, a.name), "Ready")
	if code, body, err := httpGet(a.port, "/"); err != nil || code != 200 || !strings.Contains(body, "edited overlay") {
		t.Fatalf("after editing the overlay: GET :%d/ = %d %q %v", a.port, code, body, err)
	}
	if got := statusOverlays(t, s); len(got) != 1 || got[0].SHA256 != sha256Hex(second) {
		t.Errorf("status overlays %v, want the edited file's hash %s", got, sha256Hex(second))
	}
	after := h.indexes(a.name)
	svcAfter := a.appService(t)
	if len(after) != len(before) || s.Deploys != 2 || svcAfter.ID != svcBefore.ID || svcAfter.Version.Index <= svcBefore.Version.Index {
		t.Errorf("not an upgrade in place: services %v -> %v, service %s@%d -> %s@%d, deploys %d",
			before, after, svcBefore.ID, svcBefore.Version.Index, svcAfter.ID, svcAfter.Version.Index, s.Deploys)
	}

	outside := filepath.Join(filepath.Dir(h.specs), "outside.yml")
	if err := os.WriteFile(outside, []byte("services: {}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(h.specs, "overlays", "bad-yaml.yml"), []byte("services:\n  app: [\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(h.specs, "overlays", "bad-schema.yml"), []byte("services:\n  app:\n    deploy:\n      replicaz: 2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(h.specs, "overlays", "sock.yml"), []byte("services:\n  app:\n    volumes: [\"/var/run/docker.sock:/var/run/docker.sock\"]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(h.specs, "overlays", "link-out.yml")); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, overlay, want string }{
		{"leaves", "../outside.yml", "leaves the spec directory"},
		{"symlink", "overlays/link-out.yml", "outside the spec directory"},
		{"missing", "overlays/none.yml", "no such file"},
		{"yaml", "overlays/bad-yaml.yml", "overlay overlays/bad-yaml.yml does not parse"},
		{"schema", "overlays/bad-schema.yml", "overlay overlays/bad-schema.yml, line 3:"},
		// The deploy policy judges the merged result.
		{"policy", "overlays/sock.yml", "the baseline policy denies: service app: volumes:"},
	} {
		b := h.newApp("e2e-ovbad-" + tc.name)
		h.writeSpec(b.name, []byte("recipe: ov-echo\nversion: "+miniRelease+"\noverlays:\n  - file: "+tc.overlay+"\n"))
		st := h.waitPhase(b.name, desiredGeneration(t, h, b.name), "Invalid")
		if !strings.Contains(st.Message, tc.want) {
			t.Errorf("%s: message %q, want it to say %q", tc.name, st.Message, tc.want)
		}
		if left := h.residue(b.name); len(left) > 0 {
			t.Errorf("%s: deployed %v", tc.name, left)
		}
	}
	if got := h.indexes(a.name); fmt.Sprint(got) != fmt.Sprint(after) {
		t.Errorf("the good app's services changed while the others were Invalid: %v -> %v", after, got)
	}
}
