package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"

	"github.com/swarm-reconciler/reconciler/manifests"
	"github.com/swarm-reconciler/reconciler/spec"
)

// pointRef points ref of the repository in dir at its HEAD after committing files (none: HEAD
// as it is), and returns that commit.
func pointRef(t *testing.T, dir, ref string, files map[string]string) string {
	t.Helper()
	repo, err := git.PlainOpen(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) > 0 {
		commitFiles(t, repo, dir, "pushed later", files)
	}
	head, err := repo.Head()
	if err != nil {
		t.Fatal(err)
	}
	if err := repo.Storer.SetReference(plumbing.NewHashReference(plumbing.ReferenceName(ref), head.Hash())); err != nil {
		t.Fatal(err)
	}
	return head.Hash().String()
}

// deployedFromRef writes app s1's spec, following ref of the fork, into the spec directory,
// and its status as the reconciler leaves it with commit deployed (waiting for a secret). It
// returns the spec's path and body.
func deployedFromRef(t *testing.T, e *cliEnv, fork, ref, commit string) (path, body string) {
	t.Helper()
	body = "recipe: sec\nsource: file://" + fork + "\nref: " + ref + "\ndomain: s1.example.org\n"
	path = filepath.Join(e.specs, "s1.yml")
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	st := &spec.Status{App: "s1", ObservedGeneration: spec.Generation([]byte(body)), Phase: spec.PhaseDeploying,
		Message: "waiting for secret api_key", Recipe: "sec", Domain: "s1.example.org", Stack: "s1_example_org",
		SourceCommit: commit, UpdatedAt: time.Now()}
	if err := spec.WriteStatus(e.status, st); err != nil {
		t.Fatal(err)
	}
	return path, body
}

// TestCommandsUseTheDeployedCommitOfARef: an app whose spec follows a ref (a pull request's
// head) runs the commit the ref pointed at when its attempt began, until the spec changes;
// render, diff's render and secret insert must read the recipe at that commit, not at where
// the ref points now. Otherwise a push to the pull request that moves a secret's version makes
// `secret insert` create a secret the running attempt does not wait for (it waits on), and
// render show objects the reconciler will not deploy.
func TestCommandsUseTheDeployedCommitOfARef(t *testing.T) {
	e := newCLIEnv(t)
	defer manifests.Cleanup()
	fork := filepath.Join(t.TempDir(), "sec")
	secretRecipe(t, filepath.Dir(fork))
	const ref = "refs/pull/1/head"
	deployed := pointRef(t, fork, ref, nil)
	path, body := deployedFromRef(t, e, fork, ref, deployed)
	// The pull request moves on: api_key's version is v2 there.
	moved := pointRef(t, fork, ref, map[string]string{
		".env.sample": "SECRET_DB_PASSWORD_VERSION=v1\nSECRET_API_KEY_VERSION=v2 # generate=false\n",
	})

	o := &options{specs: e.specs, status: e.status, recipes: e.files}
	g, err := secretToInsert(context.Background(), o, "s1", "api_key", "")
	if err != nil || g.Name != "s1_example_org_api_key_v1" {
		t.Fatalf("secret to insert for the deployed commit: %v, %v; want s1_example_org_api_key_v1", g, err)
	}
	stdout, stderr, code, err := e.run(context.Background(), "render", path)
	if code != 0 {
		t.Fatalf("render: exit %d %v\n%s", code, err, stderr)
	}
	var out struct{ Revision string }
	if err := json.Unmarshal([]byte(stdout), &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.Revision, deployed[:7]) {
		t.Errorf("render: revision %q, want the deployed commit %s (the ref is at %s now)", out.Revision, deployed[:7], moved[:7])
	}

	// A new spec is a new attempt, which resolves the ref again.
	body += "env:\n  X: \"1\"\n"
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	g, err = secretToInsert(context.Background(), o, "s1", "api_key", "")
	if err != nil || g.Name != "s1_example_org_api_key_v2" {
		t.Fatalf("secret to insert for a new spec: %v, %v; want s1_example_org_api_key_v2 (the ref's commit now)", g, err)
	}
}
