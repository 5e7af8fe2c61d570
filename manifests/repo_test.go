package manifests

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// testRepo is a recipe repository made at test time under a recipes directory.
type testRepo struct {
	t    testing.TB
	dir  string
	repo *git.Repository
	when time.Time
}

func newTestRepo(t testing.TB, recipesDir, name string) *testRepo {
	t.Helper()
	dir := filepath.Join(recipesDir, name)
	repo, err := git.PlainInit(dir, false)
	if err != nil {
		t.Fatalf("git init %s: %v", dir, err)
	}
	return &testRepo{t: t, dir: dir, repo: repo, when: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)}
}

func (r *testRepo) sig() *object.Signature {
	r.when = r.when.Add(time.Minute)
	return &object.Signature{Name: "test", Email: "test@example.org", When: r.when}
}

// write puts files into the working tree; an empty content removes the file.
func (r *testRepo) write(files map[string]string) {
	r.t.Helper()
	for name, content := range files {
		p := filepath.Join(r.dir, filepath.FromSlash(name))
		if content == "" {
			if err := os.Remove(p); err != nil && !os.IsNotExist(err) {
				r.t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			r.t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			r.t.Fatal(err)
		}
	}
}

// commit writes files, stages everything (deletions too) and commits.
func (r *testRepo) commit(files map[string]string) plumbing.Hash {
	r.t.Helper()
	r.write(files)
	wt, err := r.repo.Worktree()
	if err != nil {
		r.t.Fatal(err)
	}
	if err := wt.AddWithOptions(&git.AddOptions{All: true}); err != nil {
		r.t.Fatalf("git add: %v", err)
	}
	h, err := wt.Commit("test commit", &git.CommitOptions{Author: r.sig(), AllowEmptyCommits: true})
	if err != nil {
		r.t.Fatalf("git commit: %v", err)
	}
	return h
}

// tag makes an annotated tag (or a lightweight one) at h.
func (r *testRepo) tag(name string, h plumbing.Hash, annotated bool) {
	r.t.Helper()
	var opts *git.CreateTagOptions
	if annotated {
		opts = &git.CreateTagOptions{Tagger: r.sig(), Message: "release " + name}
	}
	if _, err := r.repo.CreateTag(name, h, opts); err != nil {
		r.t.Fatalf("git tag %s: %v", name, err)
	}
}

// copyTree copies a plain folder (the shared conformance recipes are read-only) into dst.
func copyTree(t testing.TB, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, 0o644)
	})
	if err != nil {
		t.Fatalf("copy %s: %v", src, err)
	}
}

// TestAmbiguousShortHash: a short hash two commits share is refused, naming both, as git
// rev-parse refuses it, not resolved to whichever the storage lists first; more of the hash
// picks one.
func TestAmbiguousShortHash(t *testing.T) {
	r := newTestRepo(t, t.TempDir(), "r")
	base, err := r.repo.CommitObject(r.commit(map[string]string{"compose.yml": "services: {}\n"}))
	if err != nil {
		t.Fatal(err)
	}
	// Commits of the same tree that differ in their message, until two share 7 hex digits
	// (about 16,000 tries: a birthday collision of 28 bits).
	encode := func(i int) plumbing.EncodedObject {
		c := &object.Commit{Author: base.Author, Committer: base.Committer, TreeHash: base.TreeHash, Message: fmt.Sprintf("try %d\n", i)}
		obj := r.repo.Storer.NewEncodedObject()
		if err := c.Encode(obj); err != nil {
			t.Fatal(err)
		}
		return obj
	}
	seen := map[string]int{}
	var a, b plumbing.EncodedObject
	for i := 0; a == nil; i++ {
		obj := encode(i)
		p := obj.Hash().String()[:7]
		if j, ok := seen[p]; ok {
			a, b = encode(j), obj
		}
		seen[p] = i
	}
	for _, obj := range []plumbing.EncodedObject{a, b} {
		if _, err := r.repo.Storer.SetEncodedObject(obj); err != nil {
			t.Fatal(err)
		}
	}
	short := a.Hash().String()[:7]
	_, err = resolveVersion(r.repo, short)
	if err == nil || !strings.Contains(err.Error(), "is ambiguous") || !strings.Contains(err.Error(), a.Hash().String()) || !strings.Contains(err.Error(), b.Hash().String()) {
		t.Fatalf("version %s, shared by %s and %s: %v, want refused as ambiguous naming both", short, a.Hash(), b.Hash(), err)
	}
	rev, err := resolveVersion(r.repo, a.Hash().String()[:12])
	if err != nil || rev.commit != a.Hash() || !rev.chaos {
		t.Fatalf("12 digits of %s: %+v, %v", a.Hash(), rev, err)
	}
}
