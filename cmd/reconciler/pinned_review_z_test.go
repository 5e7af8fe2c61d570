package main

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"

	"github.com/swarm-reconciler/reconciler/manifests"
)

// TestDeployedPullRequestCommitNotOnABranch: a pull request's commit is reachable from
// refs/pull/N/head only, never from a branch. The status names it (sourceCommit). render,
// diff and secret insert with a --recipes whose clone of the source lacks that commit
// (another machine's, a fresh or pruned one) must fetch the ref to find it: Ensure fetches
// branches and tags only (review Z6).
func TestDeployedPullRequestCommitNotOnABranch(t *testing.T) {
	e := newCLIEnv(t)
	defer manifests.Cleanup()
	fork := filepath.Join(t.TempDir(), "sec")
	secretRecipe(t, filepath.Dir(fork))
	repo, err := git.PlainOpen(fork)
	if err != nil {
		t.Fatal(err)
	}
	head, err := repo.Head()
	if err != nil {
		t.Fatal(err)
	}
	const ref = "refs/pull/1/head"
	pr := pointRef(t, fork, ref, map[string]string{"plain.txt": "from the pull request"})
	// The pull request's commit is on no branch of the fork: the branch stays where it was.
	if err := repo.Storer.SetReference(plumbing.NewHashReference(head.Name(), head.Hash())); err != nil {
		t.Fatal(err)
	}
	path, _ := deployedFromRef(t, e, fork, ref, pr)
	// The CLI's --recipes has no clone of the source yet (e.files is fresh).
	_, stderr, code, err := e.run(context.Background(), "render", path)
	if code != 0 {
		t.Errorf("render of an app running a pull request's commit (the ref still points there): exit %d %v\n%s", code, err, stderr)
	}
	o := &options{specs: e.specs, status: e.status, recipes: t.TempDir()}
	if _, err := secretToInsert(context.Background(), o, "s1", "api_key", ""); err != nil {
		t.Errorf("secret insert: %v", err)
	}
}
