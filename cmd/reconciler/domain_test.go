package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/swarm-reconciler/reconciler/spec"
)

// A spec that leaves its domain to the default is compared with what runs under the domain
// its status records; a spec that sets one keeps it.
func TestReadDeployedSpecTakesTheRecordedDomain(t *testing.T) {
	for _, tc := range []struct {
		name, body, recorded, want string
	}{
		{"default, deployed under the daemon's suffix", "recipe: custom-html\nversion: 1.0.0\n", "web.ci.example.org", "web.ci.example.org"},
		{"default, never deployed", "recipe: custom-html\nversion: 1.0.0\n", "", "web"},
		{"set in the file", "recipe: custom-html\nversion: 1.0.0\ndomain: web.example.com\n", "web.ci.example.org", "web.example.com"},
		{"set to what the default would be", "recipe: custom-html\nversion: 1.0.0\ndomain: web\n", "web.ci.example.org", "web"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := &options{specs: t.TempDir(), status: t.TempDir()}
			path := filepath.Join(o.specs, "web.yml")
			if err := os.WriteFile(path, []byte(tc.body), 0o644); err != nil {
				t.Fatal(err)
			}
			if tc.recorded != "" {
				if err := spec.WriteStatus(o.status, &spec.Status{App: "web", Phase: spec.PhaseReady, Domain: tc.recorded}); err != nil {
					t.Fatal(err)
				}
			}
			f, err := readDeployedSpec(path, o)
			if err != nil {
				t.Fatal(err)
			}
			if f.spec.Domain != tc.want {
				t.Errorf("domain %q, want %q", f.spec.Domain, tc.want)
			}
		})
	}
}

// A status that cannot be read is said, not taken for "never deployed": that would show a move.
func TestReadDeployedSpecBrokenStatus(t *testing.T) {
	o := &options{specs: t.TempDir(), status: t.TempDir()}
	path := filepath.Join(o.specs, "web.yml")
	if err := os.WriteFile(path, []byte("recipe: custom-html\nversion: 1.0.0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(o.status, "web.json"), []byte("not json"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := readDeployedSpec(path, o); err == nil || !strings.Contains(err.Error(), "set domain in the spec") {
		t.Fatalf("err = %v, want one that says what to do", err)
	}
}
