package manifests

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/go-git/go-billy/v5/osfs"
	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/cache"
	"github.com/go-git/go-git/v5/plumbing/storer"
	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/go-git/go-git/v5/plumbing/transport/client"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	"github.com/go-git/go-git/v5/plumbing/transport/server"
	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"
	"github.com/go-git/go-git/v5/storage/filesystem"
	"golang.org/x/sync/singleflight"
)

// fileServer serves file:// remotes in process, not through the git-upload-pack binary go-git
// runs by default (the reconciler needs no git installed), from bare repositories and from a
// working tree's .git alike (go-git's own loader finds no refs in the latter).
var fileServer = server.NewServer(localLoader{})

func init() { client.InstallProtocol("file", fileServer) }

type localLoader struct{}

func (localLoader) Load(ep *transport.Endpoint) (storer.Storer, error) {
	dir := gitDir(ep.Path)
	if _, err := os.Stat(filepath.Join(dir, "config")); err != nil {
		return nil, transport.ErrRepositoryNotFound
	}
	return filesystem.NewStorage(osfs.New(dir), cache.NewObjectLRUDefault()), nil
}

// DefaultFetchTimeout bounds one clone or fetch when Remote.Timeout is zero.
const DefaultFetchTimeout = 2 * time.Minute

// refetchAfter is how long a version that a fetch did not bring stays unknown before a pass may
// fetch for it again: a tag pushed a moment after the spec naming it is found by a later pass,
// and a spec that names a version no remote has does not fetch on every pass.
const refetchAfter = 10 * time.Second

// Remote brings recipes from their git remotes into the recipes directory: a recipe missing
// there is cloned (bare: nothing reads a worktree) from URLTemplate, and a version the local
// repository lacks is fetched from the repository's origin. A version already present costs no
// network call. Concurrent needs of one repository make one clone or fetch, which holds the
// repository's lock, so a render of the same recipe waits for it rather than reading half of it.
type Remote struct {
	// URLTemplate is a recipe's clone URL, {recipe} standing for its name, e.g.
	// https://git.coopcloud.tech/coop-cloud/{recipe}.git; "" clones nothing.
	URLTemplate string
	// Timeout bounds one clone or fetch; zero is DefaultFetchTimeout.
	Timeout time.Duration
	// Credentials is a directory of per-host credentials (--git-credentials): <host>.ssh holds
	// an SSH private key (checked against known_hosts in the directory when there is one, else
	// ~/.ssh/known_hosts), <host>.token a token (sent as HTTP basic auth's password, as Gitea,
	// Forgejo, GitLab and GitHub take it), <host>.basic "user:password". Values are read per
	// clone or fetch and never printed.
	Credentials string

	group   singleflight.Group
	mu      sync.Mutex
	fetched map[string]time.Time // dir + "\x00" + version -> when a fetch for it ended
}

// URL is the clone URL of recipe.
func (r *Remote) URL(recipe string) string {
	return strings.ReplaceAll(r.URLTemplate, "{recipe}", recipe)
}

// Ensure makes recipe's repository exist under recipesDir and hold version ("" for none),
// cloning or fetching when needed. It returns an input error (ErrInput) when the remote has no
// such version either, and a plain error when the remote could not be reached; nil also when
// there is nothing it can do (no template, no origin): the render then says what is missing.
func (r *Remote) Ensure(ctx context.Context, recipesDir, recipe, version string) error {
	if r == nil {
		return nil
	}
	dir, err := recipeDir(recipesDir, recipe)
	if err != nil {
		return err
	}
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		if r.URLTemplate == "" {
			return nil
		}
		if _, err, _ := r.group.Do("clone\x00"+dir, func() (any, error) { return nil, r.clone(ctx, recipesDir, recipe, dir, r.URL(recipe)) }); err != nil {
			return err
		}
	}
	if version == "" || !plausibleRefName(version) || r.has(ctx, recipesDir, recipe, version) == nil {
		return nil
	}
	key := dir + "\x00" + version
	r.mu.Lock()
	last, seen := r.fetched[key]
	r.mu.Unlock()
	if seen && time.Since(last) < refetchAfter {
		return nil
	}
	origin, err, _ := r.group.Do("fetch\x00"+dir, func() (any, error) { return r.fetch(ctx, recipesDir, recipe) })
	if err != nil {
		return err
	}
	r.mu.Lock()
	if r.fetched == nil {
		r.fetched = map[string]time.Time{}
	}
	r.fetched[key] = time.Now()
	r.mu.Unlock()
	if err := r.has(ctx, recipesDir, recipe, version); err != nil && origin != "" {
		if errors.As(err, new(unknownVersionError)) {
			return fmt.Errorf("%w (fetched from %s just now: it has no such tag or commit either)", err, origin)
		}
		return fmt.Errorf("%w (fetched from %s just now)", err, origin)
	}
	return nil
}

// SourceDir is where the recipes of a per-app source (a spec's source: URL) are kept: under
// recipesDir, in a folder of their own per URL, never mixed with the catalogue's repository of
// the same recipe name.
func SourceDir(recipesDir, source string) string {
	sum := sha256.Sum256([]byte(source))
	return filepath.Join(recipesDir, ".sources", hex.EncodeToString(sum[:8]))
}

// EnsureSource is Ensure for an app whose recipe comes from source (a fork, a pull request's
// repository), kept in sourceDir (SourceDir): cloned on first use; with ref (a branch, or a ref
// such as refs/pull/123/head) and no version, ref is fetched and the commit it points at is
// returned as the version to deploy; with a version, it is fetched when missing, as Ensure does.
func (r *Remote) EnsureSource(ctx context.Context, sourceDir, recipe, source, ref, version string) (string, error) {
	dir, err := recipeDir(sourceDir, recipe)
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		if _, err, _ := r.group.Do("clone\x00"+dir, func() (any, error) { return nil, r.clone(ctx, sourceDir, recipe, dir, source) }); err != nil {
			return "", err
		}
	}
	if ref == "" {
		return version, r.Ensure(ctx, sourceDir, recipe, version)
	}
	if version != "" {
		// The commit the ref was resolved to earlier (a spec's attempt pins it): here already,
		// or on a branch or tag, or fetched with the ref, which may still point at it or at a
		// commit after it (a pull request's head is on no branch).
		if r.Ensure(ctx, sourceDir, recipe, version) == nil {
			return version, nil
		}
		if _, err := r.EnsureSource(ctx, sourceDir, recipe, source, ref, ""); err != nil {
			return "", err
		}
		if r.has(ctx, sourceDir, recipe, version) != nil {
			return "", fmt.Errorf("%w: commit %s, which ref %s of %s pointed at when the app's attempt began, is gone from it (force-pushed?): change the spec (a new attempt) to deploy what the ref points at now",
				ErrInput, version, ref, RedactURL(source))
		}
		return version, nil
	}
	full := ref
	if !strings.HasPrefix(ref, "refs/") {
		full = "refs/heads/" + ref
	}
	v, err, _ := r.group.Do("ref\x00"+dir+"\x00"+full, func() (any, error) {
		// The fetch's errors are kept out of with, which would take them for a stale
		// repository and fetch again; the resolve, on a repository that may not yet index the
		// new pack, is retried by with on a fresh one.
		var fetchErr error
		err := repos.with(ctx, sourceDir, recipe, func(repo *git.Repository, _ string) error {
			auth, err := r.auth(source)
			if err != nil {
				fetchErr = err
				return nil
			}
			fctx, cancel := context.WithTimeout(ctx, r.timeout())
			defer cancel()
			err = repo.FetchContext(fctx, &git.FetchOptions{
				Auth: auth, RemoteName: git.DefaultRemoteName, Force: true,
				RefSpecs: []config.RefSpec{config.RefSpec("+" + full + ":" + full)},
			})
			switch {
			case err == nil || errors.Is(err, git.NoErrAlreadyUpToDate):
			case strings.Contains(err.Error(), "couldn't find remote ref"):
				fetchErr = fmt.Errorf("%w: ref %s not found in %s", ErrInput, ref, RedactURL(source))
			default:
				fetchErr = remoteError("fetch", source, err, fctx)
			}
			return nil
		})
		if err == nil {
			err = fetchErr
		}
		if err != nil {
			return "", err
		}
		var commit string
		err = repos.with(ctx, sourceDir, recipe, func(repo *git.Repository, _ string) error {
			h, err := repo.ResolveRevision(plumbing.Revision(full))
			if err != nil {
				return fmt.Errorf("%w: ref %s of %s: %v", ErrInput, ref, RedactURL(source), err)
			}
			commit = h.String()
			return nil
		})
		return commit, err
	})
	if err != nil {
		return "", err
	}
	return v.(string), nil
}

// has reports whether the repository resolves version: nil, or resolveVersion's error.
func (r *Remote) has(ctx context.Context, recipesDir, recipe, version string) error {
	return repos.with(ctx, recipesDir, recipe, func(repo *git.Repository, _ string) error {
		_, err := resolveVersion(repo, version)
		return err
	})
}

func (r *Remote) timeout() time.Duration {
	if r.Timeout > 0 {
		return r.Timeout
	}
	return DefaultFetchTimeout
}

// clone clones recipe into dir through a temporary directory beside it, renamed into place
// whole: a clone cut short leaves no repository that looks complete.
func (r *Remote) clone(ctx context.Context, recipesDir, recipe, dir, u string) error {
	if err := os.MkdirAll(recipesDir, 0o755); err != nil {
		return fmt.Errorf("clone %s: %w", RedactURL(u), err)
	}
	tmp, err := os.MkdirTemp(recipesDir, "."+recipe+".clone-")
	if err != nil {
		return fmt.Errorf("clone %s: %w", RedactURL(u), err)
	}
	defer os.RemoveAll(tmp)
	ctx, cancel := context.WithTimeout(ctx, r.timeout())
	defer cancel()
	auth, err := r.auth(u)
	if err != nil {
		return err
	}
	_, err = git.PlainCloneContext(ctx, tmp, true, &git.CloneOptions{URL: u, Tags: git.AllTags, Auth: auth})
	if err != nil {
		return remoteError("clone", u, err, ctx)
	}
	recordFetch(tmp, "clone", nil)
	if err := os.Rename(tmp, dir); err != nil {
		if _, serr := os.Stat(dir); serr == nil {
			return nil // another process cloned it meanwhile
		}
		return fmt.Errorf("clone %s into %s: %w", RedactURL(u), dir, err)
	}
	return nil
}

// fetchRecord is what `reconciler recipes` shows of a repository's last clone or fetch, kept
// in the repository's folder.
type fetchRecord struct {
	Op    string    `json:"op"`
	At    time.Time `json:"at"`
	Error string    `json:"error,omitempty"`
}

const fetchRecordFile = "swarm-reconciler-fetch.json"

// recordFetch writes the record of a clone or fetch into gitDir; a failure to write it only
// loses the record.
func recordFetch(gitDir, op string, err error) {
	rec := fetchRecord{Op: op, At: time.Now().UTC()}
	if err != nil {
		rec.Error = err.Error()
	}
	data, _ := json.Marshal(rec)
	_ = os.WriteFile(filepath.Join(gitDir, fetchRecordFile), data, 0o644)
}

// RecipeSource is what `reconciler recipes` lists of a recipe under the recipes directory.
type RecipeSource struct {
	Recipe string `json:"recipe"`
	// Source is its origin's URL without credentials; "" for a repository without one.
	Source string `json:"source"`
	// LastFetch, LastOp and LastError describe the last clone or fetch by a reconciler.
	LastFetch *time.Time `json:"lastFetch,omitempty"`
	LastOp    string     `json:"lastOp,omitempty"`
	LastError string     `json:"lastError,omitempty"`
	// Tags are its newest release tags, newest last.
	Tags []string `json:"tags"`
	// Err says why the repository could not be read.
	Err string `json:"error,omitempty"`
}

// Sources lists the recipes under recipesDir: every folder holding a git repository.
func Sources(recipesDir string) ([]RecipeSource, error) {
	entries, err := os.ReadDir(recipesDir)
	if err != nil {
		return nil, fmt.Errorf("list recipes in %s: %w", recipesDir, err)
	}
	var out []RecipeSource
	for _, e := range entries {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		src := RecipeSource{Recipe: e.Name(), Tags: []string{}}
		err := repos.with(context.Background(), recipesDir, e.Name(), func(repo *git.Repository, dir string) error {
			if remote, err := repo.Remote(git.DefaultRemoteName); err == nil && len(remote.Config().URLs) > 0 {
				src.Source = RedactURL(remote.Config().URLs[0])
			}
			tags, err := releaseTags(repo)
			if err != nil {
				return err
			}
			src.Tags = tags[max(0, len(tags)-5):]
			for _, p := range []string{filepath.Join(dir, fetchRecordFile), filepath.Join(dir, ".git", fetchRecordFile)} {
				var rec fetchRecord
				if data, err := os.ReadFile(p); err == nil && json.Unmarshal(data, &rec) == nil {
					src.LastFetch, src.LastOp, src.LastError = &rec.At, rec.Op, rec.Error
				}
			}
			return nil
		})
		if err != nil {
			src.Err = err.Error()
		}
		out = append(out, src)
	}
	return out, nil
}

// fetch fetches every branch and tag of the repository's origin, holding its lock, and returns
// the origin's URL (without credentials); "" when it has no origin.
func (r *Remote) fetch(ctx context.Context, recipesDir, recipe string) (any, error) {
	ctx, cancel := context.WithTimeout(ctx, r.timeout())
	defer cancel()
	var origin string
	var fetchErr error
	err := repos.with(ctx, recipesDir, recipe, func(repo *git.Repository, dir string) error {
		remote, err := repo.Remote(git.DefaultRemoteName)
		if errors.Is(err, git.ErrRemoteNotFound) {
			return nil
		} else if err != nil {
			return err
		}
		u := remote.Config().URLs[0]
		origin = RedactURL(u)
		auth, err := r.auth(u)
		if err != nil {
			return err
		}
		// The origin's branches are the local ones of a bare clone (the reconciler's own), and
		// remote-tracking ones of an operator's clone with a working tree, whose checked-out
		// branch and unpushed commits a fetch must not move (git refuses to fetch into the
		// current branch of such a repository).
		branches := config.RefSpec("+refs/heads/*:refs/heads/*")
		if _, err := repo.Worktree(); !errors.Is(err, git.ErrIsBareRepository) {
			branches = config.RefSpec("+refs/heads/*:refs/remotes/" + git.DefaultRemoteName + "/*")
		}
		err = repo.FetchContext(ctx, &git.FetchOptions{
			Auth:       auth,
			RemoteName: git.DefaultRemoteName,
			RefSpecs:   []config.RefSpec{branches},
			Tags:       git.AllTags,
			Force:      true,
		})
		if err != nil && !errors.Is(err, git.NoErrAlreadyUpToDate) {
			// Not returned to with, which would take it for a stale repository and fetch again.
			fetchErr = remoteError("fetch", u, err, ctx)
		}
		recordFetch(gitDir(dir), "fetch", fetchErr)
		return nil
	})
	if err == nil {
		err = fetchErr
	}
	return origin, err
}

// RemoteError is a clone or fetch that failed: the remote's words, its URL without
// credentials, and whether waiting could help (Final: the remote refused or has no such
// repository; otherwise it did not answer, and a later try may succeed).
type RemoteError struct {
	Op, URL, Msg string
	Final        bool
}

func (e *RemoteError) Error() string { return fmt.Sprintf("%s %s: %s", e.Op, e.URL, e.Msg) }

// remoteError says what went wrong with the remote at u, in the remote's words, without u's
// credentials.
func remoteError(op, u string, err error, ctx context.Context) error {
	e := &RemoteError{Op: op, URL: RedactURL(u), Msg: RedactUserInfo(strings.ReplaceAll(err.Error(), u, RedactURL(u)))}
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		e.Msg = "no answer within the fetch timeout (--fetch-timeout): " + e.Msg
	case errors.Is(err, transport.ErrAuthenticationRequired):
		e.Msg, e.Final = "authentication required: give the reconciler credentials for this remote", true
	case errors.Is(err, transport.ErrAuthorizationFailed):
		e.Msg, e.Final = "authorization failed: the credentials given are refused", true
	case errors.Is(err, transport.ErrRepositoryNotFound):
		e.Msg, e.Final = "repository not found: check --recipe-url and the recipe's name", true
	}
	return e
}

// auth is the credentials for u's host from the Credentials directory; nil for none.
func (r *Remote) auth(u string) (transport.AuthMethod, error) {
	if r.Credentials == "" {
		return nil, nil
	}
	host, user := hostOf(u)
	if host == "" || strings.ContainsAny(host, `/\`) || strings.HasPrefix(host, ".") {
		return nil, nil
	}
	if key := filepath.Join(r.Credentials, host+".ssh"); fileExists(key) {
		if user == "" {
			user = "git"
		}
		auth, err := gitssh.NewPublicKeysFromFile(user, key, "")
		if err != nil {
			return nil, fmt.Errorf("credentials for %s: the SSH key %s cannot be read (a private key without a passphrase)", host, key)
		}
		if kh := filepath.Join(r.Credentials, "known_hosts"); fileExists(kh) {
			if auth.HostKeyCallback, err = gitssh.NewKnownHostsCallback(kh); err != nil {
				return nil, fmt.Errorf("credentials: %s: %w", kh, err)
			}
		}
		return auth, nil
	}
	if data, err := os.ReadFile(filepath.Join(r.Credentials, host+".token")); err == nil {
		return &githttp.BasicAuth{Username: "token", Password: strings.TrimSpace(string(data))}, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("credentials for %s: %w", host, err)
	}
	if data, err := os.ReadFile(filepath.Join(r.Credentials, host+".basic")); err == nil {
		user, pass, ok := strings.Cut(strings.TrimSpace(string(data)), ":")
		if !ok {
			return nil, fmt.Errorf("credentials for %s: %s holds no \"user:password\"", host, filepath.Join(r.Credentials, host+".basic"))
		}
		return &githttp.BasicAuth{Username: user, Password: pass}, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("credentials for %s: %w", host, err)
	}
	return nil, nil
}

// hostOf is the host of a git URL (scp-like git@host:path too), and its user if it names one.
func hostOf(u string) (host, user string) {
	if !strings.Contains(u, "://") {
		if at, rest, ok := strings.Cut(u, "@"); ok {
			h, _, _ := strings.Cut(rest, ":")
			return h, at
		}
		return "", ""
	}
	p, err := url.Parse(u)
	if err != nil {
		return "", ""
	}
	return p.Hostname(), p.User.Username()
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// gitDir is where a repository's git files are: dir itself when bare, else dir/.git.
func gitDir(dir string) string {
	if fi, err := os.Stat(filepath.Join(dir, ".git")); err == nil && fi.IsDir() {
		return filepath.Join(dir, ".git")
	}
	return dir
}

// userInfo matches the user info of the URLs in a message (the transport's own errors print
// them, a password masked or not): up to the last '@' before the host's end, as url.Parse
// reads it, so a password typed with '@' in it goes whole.
var userInfo = regexp.MustCompile(`([a-zA-Z][a-zA-Z0-9+.-]*://)[^/\s"]+@`)

// RedactUserInfo is text with the user info of every URL in it taken out: for text that is not
// one URL alone (a message, a URL with a placeholder url.Parse refuses).
func RedactUserInfo(text string) string { return userInfo.ReplaceAllString(text, "$1") }

// RedactURL is u without its user info (a token or password): URLs are printed this way only.
func RedactURL(u string) string {
	p, err := url.Parse(u)
	if err != nil || p.User == nil {
		return u
	}
	p.User = nil
	return p.String()
}
