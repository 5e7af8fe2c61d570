package manifests

import (
	"errors"
	"strings"
	"testing"

	"github.com/go-git/go-git/v5/plumbing"
)

// TestTagNotAtACommitIsInvalid: a release tag that points at a tree or a blob (git allows
// it, lightweight or annotated) names nothing deployable, whatever is fetched later: an
// input error saying so (the spec goes Invalid), not an error retried until the timeout.
func TestTagNotAtACommitIsInvalid(t *testing.T) {
	r := newTestRepo(t, t.TempDir(), "recipe")
	head := r.commit(map[string]string{"compose.yml": "services: {}\n"})
	c, err := r.repo.CommitObject(head)
	if err != nil {
		t.Fatal(err)
	}
	f, err := c.File("compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name      string
		target    plumbing.Hash
		annotated bool
	}{
		{"tree-light", c.TreeHash, false}, {"tree-annotated", c.TreeHash, true},
		{"blob-light", f.Hash, false}, {"blob-annotated", f.Hash, true},
	} {
		r.tag(tc.name, tc.target, tc.annotated)
		_, err := resolveVersion(r.repo, tc.name)
		if !errors.Is(err, ErrInput) || !strings.Contains(err.Error(), "not a commit") {
			t.Errorf("tag %s: %v, want an input error saying it points at no commit", tc.name, err)
		}
	}
	if _, err := resolveVersion(r.repo, head.String()); err != nil {
		t.Fatalf("the commit itself: %v", err)
	}
}
