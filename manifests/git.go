package manifests

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/cache"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/storage/filesystem"
)

// shortLen is the length of the abbreviated commit hash in Revision and the chaos-version label.
const shortLen = 7

// knownTagsInErrors is how many of the newest tags an unknown-version error lists.
const knownTagsInErrors = 10

var hexRevision = regexp.MustCompile(`^[0-9a-f]{7,40}$`)

// revision is a recipe version resolved to a commit. It holds the hash, not the go-git object:
// objects read through a shared Repository must not be used once its lock is released.
type revision struct {
	commit plumbing.Hash
	chaos  bool // named by a commit hash rather than a tag
}

// recipeDir returns recipesDir/recipe, refusing any name that could leave recipesDir.
// spec already rejects path-like names; this guards callers that skip spec.
func recipeDir(recipesDir, recipe string) (string, error) {
	if recipe == "" || recipe == "." || recipe == ".." || filepath.Clean(recipe) != recipe ||
		strings.ContainsAny(recipe, `/\`) || filepath.IsAbs(recipe) {
		return "", fmt.Errorf("%w: recipe name %q is not a plain folder name: use the name of a folder under %s",
			ErrInput, recipe, recipesDir)
	}
	dir := filepath.Join(recipesDir, recipe)
	if rel, err := filepath.Rel(recipesDir, dir); err != nil || rel != recipe {
		return "", fmt.Errorf("%w: recipe name %q leaves %s", ErrInput, recipe, recipesDir)
	}
	return dir, nil
}

// openRecipe opens the git repository of a recipe at dir (= recipeDir(recipesDir, recipe)).
// The Repository is not safe for concurrent use: see repoCache, which keeps it.
func openRecipe(recipesDir, recipe, dir string) (*git.Repository, error) {
	// DetectDotGit stays false: a plain folder inside some other repository must not be taken
	// for that repository.
	repo, err := git.PlainOpenWithOptions(dir, &git.PlainOpenOptions{})
	if err != nil {
		if errors.Is(err, git.ErrRepositoryNotExists) || errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%w: unknown recipe %q: no git repository at %s; clone the recipe into the recipes directory %s, or run the reconciler with --recipe-url to clone recipes on first use",
				ErrInput, recipe, dir, recipesDir)
		}
		return nil, fmt.Errorf("open recipe repository %s: %w", dir, err)
	}
	// PlainOpen gives every Repository a 96 MiB object cache. A kept repository fills it over
	// time with the blobs of every version exported, so put the same storage behind a small
	// one: only the tag and commit objects read on each render need to stay cached.
	if fsStore, ok := repo.Storer.(*filesystem.Storage); ok {
		st := filesystem.NewStorage(fsStore.Filesystem(), cache.NewObjectLRU(repoObjectCache))
		var small *git.Repository
		if w, werr := repo.Worktree(); werr == nil {
			small, err = git.Open(st, w.Filesystem)
		} else {
			small, err = git.Open(st, nil) // a bare repository
		}
		if err != nil {
			return nil, fmt.Errorf("open recipe repository %s: %w", dir, err)
		}
		repo = small
	}
	return repo, nil
}

// resolveVersion finds the commit a version names: a tag (annotated or lightweight) first,
// else a full or abbreviated (>= 7 hex digits) commit hash. Branch names are refused on purpose:
// a deploy must name something that does not move.
func resolveVersion(repo *git.Repository, version string) (revision, error) {
	if version == "" {
		return revision{}, fmt.Errorf("%w: empty version: name a release tag or a commit", ErrInput)
	}
	if !plausibleRefName(version) {
		return revision{}, fmt.Errorf("%w: version %q cannot name a git tag or commit", ErrInput, version)
	}
	ref, err := repo.Reference(plumbing.NewTagReferenceName(version), true)
	switch {
	case err == nil:
		c, err := peelToCommit(repo, ref.Hash())
		if err != nil {
			return revision{}, fmt.Errorf("tag %s: %w", version, err)
		}
		return revision{commit: c.Hash}, nil
	case !errors.Is(err, plumbing.ErrReferenceNotFound):
		return revision{}, fmt.Errorf("look up tag %s: %w", version, err)
	}
	if prefix := strings.ToLower(version); hexRevision.MatchString(prefix) {
		// Only a commit whose hash starts with what was given is a commit deploy, and only one:
		// git rev-parse refuses a short hash two commits share, and so do we, rather than take
		// whichever the pack lists first.
		commits, err := commitsWithPrefix(repo, prefix)
		switch {
		case err != nil:
			return revision{}, fmt.Errorf("commit %s: %w", version, err)
		case len(commits) == 1:
			return revision{commit: commits[0], chaos: true}, nil
		case len(commits) > 1:
			names := make([]string, len(commits))
			for i, c := range commits {
				names[i] = c.String()
			}
			slices.Sort(names)
			return revision{}, fmt.Errorf("version %s is ambiguous: commits %s all start with it; give more of the hash", version, strings.Join(names, ", "))
		}
	}
	return revision{}, unknownVersion(repo, version)
}

// commitsWithPrefix lists the commits whose hash starts with prefix (lower-case hex, 7 to 40
// digits): through the storage's prefix index where it has one (packs and loose objects),
// else by walking every commit.
func commitsWithPrefix(repo *git.Repository, prefix string) ([]plumbing.Hash, error) {
	var candidates []plumbing.Hash
	if st, ok := repo.Storer.(interface {
		HashesWithPrefix(prefix []byte) ([]plumbing.Hash, error)
	}); ok {
		b, err := hex.DecodeString(prefix[:len(prefix)&^1])
		if err != nil {
			return nil, err
		}
		if candidates, err = st.HashesWithPrefix(b); err != nil {
			return nil, err
		}
	} else {
		iter, err := repo.CommitObjects()
		if err != nil {
			return nil, err
		}
		err = iter.ForEach(func(c *object.Commit) error {
			candidates = append(candidates, c.Hash)
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	var out []plumbing.Hash
	for _, h := range candidates {
		if !strings.HasPrefix(h.String(), prefix) || slices.Contains(out, h) {
			continue
		}
		if _, err := repo.CommitObject(h); err == nil {
			out = append(out, h)
		}
	}
	return out, nil
}

// plausibleRefName rejects what git's check-ref-format would, so that a version from a spec
// file can never address anything but refs/tags/<version> in the repository's storage.
func plausibleRefName(v string) bool {
	if strings.HasPrefix(v, "-") || strings.HasPrefix(v, "/") || strings.HasSuffix(v, "/") ||
		strings.HasSuffix(v, ".") || strings.HasSuffix(v, ".lock") || strings.Contains(v, "..") ||
		strings.Contains(v, "//") || strings.Contains(v, "@{") || v == "@" {
		return false
	}
	for _, r := range v {
		if r < 0x20 || r == 0x7f || strings.ContainsRune(" ~^:?*[\\", r) {
			return false
		}
	}
	for part := range strings.SplitSeq(v, "/") {
		if strings.HasPrefix(part, ".") {
			return false
		}
	}
	return true
}

// peelToCommit follows (possibly nested) annotated tags down to the commit.
func peelToCommit(repo *git.Repository, h plumbing.Hash) (*object.Commit, error) {
	for range 10 {
		tag, err := repo.TagObject(h)
		if errors.Is(err, plumbing.ErrObjectNotFound) {
			// A lightweight tag, which git lets point at any object. One at a tree or a blob
			// is the recipe's mistake, not a missing object a later fetch could bring.
			if o, err := repo.Storer.EncodedObject(plumbing.AnyObject, h); err == nil && o.Type() != plumbing.CommitObject {
				return nil, fmt.Errorf("%w: tag points at a %s, not a commit: tag the release's commit instead", ErrInput, o.Type())
			}
			return repo.CommitObject(h)
		}
		if err != nil {
			return nil, err
		}
		if tag.TargetType == plumbing.CommitObject {
			return tag.Commit()
		}
		if tag.TargetType != plumbing.TagObject {
			return nil, fmt.Errorf("%w: tag points at a %s, not a commit: tag the release's commit instead", ErrInput, tag.TargetType)
		}
		h = tag.Target
	}
	return nil, fmt.Errorf("%w: tag nesting too deep", ErrInput)
}

// unknownVersionError is a version that names no tag and no commit of the repository.
type unknownVersionError struct{ error }

func (e unknownVersionError) Unwrap() error { return e.error }

func unknownVersion(repo *git.Repository, version string) error {
	return unknownVersionError{unknownVersionMessage(repo, version)}
}

func unknownVersionMessage(repo *git.Repository, version string) error {
	tags, err := releaseTags(repo)
	if err != nil {
		return fmt.Errorf("%w: unknown version %q (listing tags failed: %v)", ErrInput, version, err)
	}
	if len(tags) == 0 {
		return fmt.Errorf("%w: unknown version %q: the recipe has no release tags; name a commit hash (at least 7 hex digits)",
			ErrInput, version)
	}
	shown := tags
	more := ""
	if len(shown) > knownTagsInErrors {
		shown = shown[len(shown)-knownTagsInErrors:]
		more = fmt.Sprintf(" (newest %d of %d)", knownTagsInErrors, len(tags))
	}
	return fmt.Errorf("%w: unknown version %q: use a release tag or a commit hash (at least 7 hex digits); known tags%s: %s",
		ErrInput, version, more, strings.Join(shown, ", "))
}

// Bounds of a recipe's tree at one version, checked while it is exported: a recipe is compose
// files, an env sample and a few configs, not a dataset.
const (
	MaxTreeFiles = 20000
	MaxTreeBytes = 256 << 20
)

// exportTree writes the files of a commit into dir (an empty private directory). Nothing of the
// repository's working tree or index is read or written, so a dirty checkout does not matter and
// exports of different commits cannot interfere. It must run under the repository's lock.
func exportTree(ctx context.Context, c *object.Commit, dir string) error {
	tree, err := c.Tree()
	if err != nil {
		return fmt.Errorf("read tree of %s: %w", c.Hash, err)
	}
	type link struct{ path, target string }
	var links []link
	var files, bytes int64
	err = tree.Files().ForEach(func(f *object.File) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		files, bytes = files+1, bytes+f.Size
		if files > MaxTreeFiles || bytes > MaxTreeBytes {
			return fmt.Errorf("%w: the recipe at %s has more than %d files or %d MiB: it is not a recipe this reconciler deploys", ErrInput, c.Hash, MaxTreeFiles, MaxTreeBytes>>20)
		}
		dst, err := inside(dir, f.Name)
		if err != nil {
			return err
		}
		switch f.Mode {
		case filemode.Regular, filemode.Deprecated, filemode.Executable:
		case filemode.Symlink:
			target, err := f.Contents()
			if err != nil {
				return fmt.Errorf("read symlink %s: %w", f.Name, err)
			}
			links = append(links, link{dst, target})
			return nil
		default:
			return nil // submodules and the like: not recipe content
		}
		// Read-only: the export is shared by every render of the commit (see treeCache).
		perm := os.FileMode(0o444)
		if f.Mode == filemode.Executable {
			perm = 0o555
		}
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		return writeBlob(f, dst, perm)
	})
	if err != nil {
		return fmt.Errorf("export %s: %w", c.Hash, err)
	}
	// Symlinks last, and only relative ones without "..": those cannot lead out of the export
	// however they chain, so a recipe cannot make a config out of a file of the host.
	for _, l := range links {
		if !safeLinkTarget(l.target) {
			continue
		}
		if err := os.MkdirAll(filepath.Dir(l.path), 0o755); err != nil {
			return err
		}
		if err := os.Symlink(l.target, l.path); err != nil {
			return fmt.Errorf("export symlink %s: %w", l.path, err)
		}
	}
	return nil
}

func writeBlob(f *object.File, dst string, perm os.FileMode) error {
	r, err := f.Reader()
	if err != nil {
		return fmt.Errorf("read %s: %w", f.Name, err)
	}
	defer r.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, r); err != nil {
		out.Close()
		return fmt.Errorf("write %s: %w", f.Name, err)
	}
	return out.Close()
}

// inside joins a slash-separated relative path to root and refuses results outside root.
func inside(root, rel string) (string, error) {
	p := filepath.Join(root, filepath.FromSlash(rel))
	r, err := filepath.Rel(root, p)
	if err != nil || r == ".." || strings.HasPrefix(r, ".."+string(filepath.Separator)) || filepath.IsAbs(rel) {
		return "", fmt.Errorf("%w: path %q leaves the recipe", ErrInput, rel)
	}
	return p, nil
}

func safeLinkTarget(target string) bool {
	if target == "" || filepath.IsAbs(target) || strings.HasPrefix(target, "/") {
		return false
	}
	for _, part := range strings.FieldsFunc(target, func(r rune) bool { return r == '/' || r == filepath.Separator }) {
		if part == ".." {
			return false
		}
	}
	return true
}

func shortHash(h string) string {
	if len(h) > shortLen {
		return h[:shortLen]
	}
	return h
}
