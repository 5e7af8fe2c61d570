package manifests

import (
	"context"
	"crypto/ed25519"
	"encoding/pem"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/go-git/go-git/v5/plumbing/transport/client"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"
	cryptossh "golang.org/x/crypto/ssh"
)

// countingTransport counts the upload-pack sessions (clones and fetches) of the file:// remotes.
type countingTransport struct {
	transport.Transport
	n *atomic.Int64
}

func (c countingTransport) NewUploadPackSession(ep *transport.Endpoint, auth transport.AuthMethod) (transport.UploadPackSession, error) {
	c.n.Add(1)
	return c.Transport.NewUploadPackSession(ep, auth)
}

func countFetches(t *testing.T) *atomic.Int64 {
	var n atomic.Int64
	client.InstallProtocol("file", countingTransport{fileServer, &n})
	t.Cleanup(func() { client.InstallProtocol("file", fileServer) })
	return &n
}

func TestRemoteClonesAndFetches(t *testing.T) {
	f := newFixture(t) // the remote: <f.recipesDir>/demo
	fetches := countFetches(t)
	local := t.TempDir()
	r := &Remote{URLTemplate: "file://" + f.recipesDir + "/{recipe}"}
	ctx := context.Background()
	render := func(version string) error {
		_, err := Render(ctx, local, Request{App: "demo-app", Recipe: "demo", Version: version, Domain: "demo.example.org", Stack: "demo_example_org"})
		return err
	}

	// Ten apps of a recipe not yet here: one clone.
	var wg sync.WaitGroup
	errs := make([]error, 10)
	for i := range errs {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = r.Ensure(ctx, local, "demo", f.tagOld) }()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if n := fetches.Load(); n != 1 {
		t.Errorf("%d clones for ten apps, want 1", n)
	}
	if _, err := os.Stat(filepath.Join(local, "demo", "HEAD")); err != nil {
		t.Errorf("not a bare repository: %v", err)
	}
	if err := render(f.tagOld); err != nil {
		t.Fatal(err)
	}

	// A version already here costs no network call.
	if err := r.Ensure(ctx, local, "demo", f.tagNew); err != nil || fetches.Load() != 1 {
		t.Errorf("present version: %v, %d sessions", err, fetches.Load())
	}

	// A tag and a commit made on the remote after the clone are fetched when named.
	c4 := f.repo.commit(map[string]string{"conf.txt": "conf four"})
	f.repo.tag("1.2.0+3.0", c4, true)
	if err := r.Ensure(ctx, local, "demo", "1.2.0+3.0"); err != nil {
		t.Fatal(err)
	}
	if err := render("1.2.0+3.0"); err != nil {
		t.Fatal(err)
	}
	c5 := f.repo.commit(map[string]string{"conf.txt": "conf five"})
	if err := r.Ensure(ctx, local, "demo", c5.String()[:8]); err != nil {
		t.Fatal(err)
	}
	if err := render(c5.String()[:8]); err != nil {
		t.Fatal(err)
	}

	// A version the remote lacks too: an input error naming the remote, and no second fetch
	// for it right after.
	before := fetches.Load()
	err := r.Ensure(ctx, local, "demo", "9.9.9")
	if !errors.Is(err, ErrInput) || !strings.Contains(err.Error(), `unknown version "9.9.9"`) || !strings.Contains(err.Error(), "fetched from file://") {
		t.Fatalf("unknown version: %v", err)
	}
	if err := r.Ensure(ctx, local, "demo", "9.9.9"); err != nil || fetches.Load() != before+1 {
		t.Errorf("asked again at once: %v, %d fetches (want 1)", err, fetches.Load()-before)
	}
}

// TestRemoteFetchLeavesAWorkingCopysBranches: a recipe under --recipes that is an operator's
// clone with a working tree gets a new release of its origin when a spec names it, and its
// branches stay where they were: the origin's go to refs/remotes/origin (they were forced onto
// the local branches, the checked-out one under its working tree).
func TestRemoteFetchLeavesAWorkingCopysBranches(t *testing.T) {
	f := newFixture(t) // the origin: <f.recipesDir>/demo
	local := t.TempDir()
	wc, err := git.PlainClone(filepath.Join(local, "demo"), false, &git.CloneOptions{URL: "file://" + f.recipesDir + "/demo"})
	if err != nil {
		t.Fatal(err)
	}
	head, err := wc.Head()
	if err != nil {
		t.Fatal(err)
	}
	c4 := f.repo.commit(map[string]string{"conf.txt": "conf four"})
	f.repo.tag("1.2.0+3.0", c4, true)
	r := &Remote{URLTemplate: "file://" + f.recipesDir + "/{recipe}"}
	if err := r.Ensure(context.Background(), local, "demo", "1.2.0+3.0"); err != nil {
		t.Fatal(err)
	}
	if _, err := Render(context.Background(), local, Request{App: "demo-app", Recipe: "demo", Version: "1.2.0+3.0", Domain: "demo.example.org", Stack: "demo_example_org"}); err != nil {
		t.Fatal(err)
	}
	if ref, err := wc.Reference(head.Name(), true); err != nil || ref.Hash() != head.Hash() {
		t.Errorf("the checked-out branch %s moved: %v %v, was %s", head.Name(), ref, err, head.Hash())
	}
	if ref, err := wc.Reference(plumbing.NewRemoteReferenceName("origin", head.Name().Short()), true); err != nil || ref.Hash() != c4 {
		t.Errorf("origin's branch: %v %v, want %s", ref, err, c4)
	}
}

func TestRemoteUnreachable(t *testing.T) {
	local := t.TempDir()
	r := &Remote{URLTemplate: "http://ci:s3cret-token@127.0.0.1:1/{recipe}.git"}
	err := r.Ensure(context.Background(), local, "demo", "1.0.0")
	if err == nil || errors.Is(err, ErrInput) {
		t.Fatalf("unreachable remote: %v, want a plain (retried) error", err)
	}
	if !strings.Contains(err.Error(), "http://127.0.0.1:1/demo.git") || strings.Contains(err.Error(), "s3cret") || strings.Contains(err.Error(), "ci:") {
		t.Errorf("error %q: want the URL without its credentials", err)
	}
	if entries, _ := os.ReadDir(local); len(entries) != 0 {
		t.Errorf("a failed clone left %v", entries)
	}
	// Without a template nothing is cloned: the render says the recipe is unknown.
	if err := (&Remote{}).Ensure(context.Background(), local, "demo", "1.0.0"); err != nil {
		t.Errorf("no template: %v", err)
	}
}

func TestRedactURL(t *testing.T) {
	for in, want := range map[string]string{
		"https://user:tok@git.example.org/r.git": "https://git.example.org/r.git",
		"https://tok@git.example.org/r.git":      "https://git.example.org/r.git",
		"https://git.example.org/r.git":          "https://git.example.org/r.git",
		"file:///srv/recipes/r":                  "file:///srv/recipes/r",
		"git@git.example.org:r.git":              "git@git.example.org:r.git",
	} {
		if got := RedactURL(in); got != want {
			t.Errorf("RedactURL(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestRemoteAuth(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("git.example.org.token", "tok-123\n")
	write("other.example.org.basic", "ci:pa:ss\n")
	write("bad.example.org.basic", "no-colon\n")
	r := &Remote{Credentials: dir}
	tests := []struct {
		url, want, err string
	}{
		{"https://git.example.org/coop-cloud/x.git", "token:tok-123", ""},
		{"https://other.example.org/x.git", "ci:pa:ss", ""},
		{"https://nobody.example.org/x.git", "", ""},
		{"https://bad.example.org/x.git", "", "holds no \"user:password\""},
	}
	for _, tt := range tests {
		a, err := r.auth(tt.url)
		got := ""
		if b, ok := a.(*githttp.BasicAuth); ok {
			got = b.Username + ":" + b.Password
		}
		if got != tt.want || (tt.err == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), tt.err) {
			t.Errorf("auth(%s) = %q, %v; want %q, %q", tt.url, got, err, tt.want, tt.err)
		}
		if err != nil && (strings.Contains(err.Error(), "no-colon") || strings.Contains(err.Error(), "tok-123")) {
			t.Errorf("a credential in an error: %v", err)
		}
		if a != nil && strings.Contains(a.String(), "tok-123") {
			t.Errorf("the auth method prints its secret: %s", a)
		}
	}
	if a, _ := (&Remote{}).auth("https://git.example.org/x.git"); a != nil {
		t.Errorf("no credentials directory: %v", a)
	}
}

func TestRemoteSourceRef(t *testing.T) {
	f := newFixture(t) // the fork: <f.recipesDir>/demo
	pr := f.repo.commit(map[string]string{"conf.txt": "conf of the pull request"})
	if err := f.repo.repo.Storer.SetReference(plumbing.NewHashReference("refs/pull/7/head", pr)); err != nil {
		t.Fatal(err)
	}
	wt, _ := f.repo.repo.Worktree()
	if err := wt.Checkout(&git.CheckoutOptions{Hash: f.c2, Branch: "refs/heads/feature", Create: true}); err != nil {
		t.Fatal(err)
	}
	local := t.TempDir()
	source := "file://" + f.recipesDir + "/demo"
	dir := SourceDir(local, source)
	r := &Remote{}
	ctx := context.Background()
	for ref, want := range map[string]string{"refs/pull/7/head": pr.String(), "feature": f.c2.String()} {
		got, err := r.EnsureSource(ctx, dir, "demo", source, ref, "")
		if err != nil || got != want {
			t.Fatalf("ref %s: %q, %v; want %s", ref, got, err, want)
		}
		rd, err := Render(ctx, dir, Request{App: "demo-app", Recipe: "demo", Version: got, Domain: "demo.example.org", Stack: "demo_example_org"})
		if err != nil || !rd.Chaos || rd.Commit != want {
			t.Fatalf("render of %s: %+v, %v", ref, rd, err)
		}
	}
	if _, err := r.EnsureSource(ctx, dir, "demo", source, "refs/pull/8/head", ""); !errors.Is(err, ErrInput) || !strings.Contains(err.Error(), "not found") {
		t.Errorf("a ref the source lacks: %v", err)
	}
	if SourceDir(local, source) == SourceDir(local, source+"x") || !strings.HasPrefix(dir, filepath.Join(local, ".sources")) {
		t.Errorf("source dirs: %s", dir)
	}
	if _, err := os.Stat(filepath.Join(local, "demo")); err == nil {
		t.Error("a source's clone is mixed with the catalogue's recipes")
	}
}

func TestRemoteSSHKey(t *testing.T) {
	dir := t.TempDir()
	_, key, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	block, err := cryptossh.MarshalPrivateKey(key, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "git.example.org.ssh"), pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "bad.example.org.ssh"), []byte("not a key SECRET"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := &Remote{Credentials: dir}
	for u, user := range map[string]string{"git@git.example.org:me/r.git": "git", "ssh://deploy@git.example.org/me/r.git": "deploy"} {
		a, err := r.auth(u)
		k, ok := a.(*gitssh.PublicKeys)
		if err != nil || !ok || k.User != user {
			t.Errorf("auth(%s) = %v, %v; want the key for user %s", u, a, err, user)
		}
	}
	if _, err := r.auth("git@bad.example.org:r.git"); err == nil || strings.Contains(err.Error(), "SECRET") {
		t.Errorf("a bad key: %v", err)
	}
	for u, want := range map[string]string{"git@h.example.org:r.git": "h.example.org", "https://u:p@h.example.org:8443/r": "h.example.org", "/srv/r": ""} {
		if h, _ := hostOf(u); h != want {
			t.Errorf("hostOf(%s) = %q, want %q", u, h, want)
		}
	}
	if got := (&Remote{URLTemplate: "https://git.coopcloud.tech/coop-cloud/{recipe}.git"}).URL("custom-html"); got != "https://git.coopcloud.tech/coop-cloud/custom-html.git" {
		t.Errorf("URL = %s", got)
	}
}

// TestRemoteHungIsBounded: a remote that accepts the connection and never answers is given up
// after Timeout, saying so, and waiting on it again is worth a try (not final).
func TestRemoteHungIsBounded(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close() // held open, silent
		}
	}()
	r := &Remote{URLTemplate: "http://" + ln.Addr().String() + "/{recipe}.git", Timeout: 300 * time.Millisecond}
	err = r.Ensure(context.Background(), t.TempDir(), "demo", "1.0.0")
	var re *RemoteError
	if !errors.As(err, &re) || re.Final || !strings.Contains(err.Error(), "no answer within the fetch timeout") {
		t.Fatalf("hung remote: %v", err)
	}
}

// TestRedactUserInfo: the user info of a URL in free text goes, a password holding '@' (as
// typed, not escaped) or ':' included, and nothing of the rest of the message.
func TestRedactUserInfo(t *testing.T) {
	for in, want := range map[string]string{
		`clone "https://ci:p@ss@git.example.org/r.git": 401`:         `clone "https://git.example.org/r.git": 401`,
		"https://user:tok@git.example.org/r.git refused":             "https://git.example.org/r.git refused",
		"https://ci:a:b@c@h.example.org/x and https://h2/y, a@b.org": "https://h.example.org/x and https://h2/y, a@b.org",
		"https://git.example.org/r.git (mail ops@example.org)":       "https://git.example.org/r.git (mail ops@example.org)",
		"fetch https://user:%40x@h/r: https://t@h/r":                 "fetch https://h/r: https://h/r",
	} {
		if got := RedactUserInfo(in); got != want {
			t.Errorf("RedactUserInfo(%q) = %q, want %q", in, got, want)
		}
	}
}
