package spec

import "testing"

// TestDeployedCommit: a spec that follows a ref renders the commit its attempt began with for
// as long as it is that attempt (the generation the status observed, or one that only adds a
// request), and the ref's commit of the day for a new attempt.
func TestDeployedCommit(t *testing.T) {
	desired := func(body string) *Desired {
		t.Helper()
		s, err := Parse("a.yml", "a", []byte(body), Defaults{DomainSuffix: "example.org"})
		if err != nil {
			t.Fatal(err)
		}
		return &Desired{App: "a", Generation: Generation([]byte(body)), Spec: s}
	}
	const (
		ref     = "recipe: echo\nsource: file:///forks/echo\nref: refs/pull/1/head\n"
		request = ref + "backup: {requestedAt: r1}\n"
		edited  = ref + "env:\n  X: \"1\"\n"
		tagged  = "recipe: echo\nversion: 1.0.0\n"
	)
	status := func(body string, phase Phase, commit string) *Status {
		d := desired(body)
		return &Status{App: "a", ObservedGeneration: d.Generation, AttemptKey: d.AttemptKey(), Phase: phase, SourceCommit: commit}
	}
	for _, tc := range []struct {
		name string
		d    *Desired
		prev *Status
		want string
	}{
		{"the generation deployed", desired(ref), status(ref, PhaseReady, "c1"), "c1"},
		{"a request added", desired(request), status(ref, PhaseReady, "c1"), "c1"},
		{"a request added to an invalid spec", desired(request), status(ref, PhaseInvalid, "c1"), ""},
		{"a new attempt", desired(edited), status(ref, PhaseReady, "c1"), ""},
		{"no status", desired(ref), nil, ""},
		{"no commit recorded", desired(ref), status(ref, PhaseDeploying, ""), ""},
		{"no ref", desired(tagged), status(tagged, PhaseReady, "c1"), ""},
		{"deleted, the same spec applied again", desired(ref), status(ref, PhaseDeleted, "c1"), ""},
	} {
		if got := tc.d.DeployedCommit(tc.prev); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}
