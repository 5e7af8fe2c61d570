package manifests

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// TestRemoteTagAtATreeSaysSo: a release tag of the remote at a tree is an input error that
// says so; Ensure, which fetches once more before giving up, must not add that the remote
// has "no such tag": it has the tag, pointing at no commit.
func TestRemoteTagAtATreeSaysSo(t *testing.T) {
	f := newFixture(t)
	c, err := f.repo.repo.CommitObject(f.repo.commit(map[string]string{"conf.txt": "x"}))
	if err != nil {
		t.Fatal(err)
	}
	f.repo.tag("2.0.0+1", c.TreeHash, false)
	r := &Remote{URLTemplate: "file://" + f.recipesDir + "/{recipe}"}
	err = r.Ensure(context.Background(), t.TempDir(), "demo", "2.0.0+1")
	t.Log(err)
	if !errors.Is(err, ErrInput) || !strings.Contains(err.Error(), "not a commit") {
		t.Fatalf("%v, want an input error saying the tag is at no commit", err)
	}
	if strings.Contains(err.Error(), "no such tag") {
		t.Errorf("%v: says the remote has no such tag, which it has", err)
	}
}
