package locks

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

func openDir(t *testing.T) *Dir {
	t.Helper()
	d, err := Open(filepath.Join(t.TempDir(), "locks"))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// pathInode is the inode now at the path, in inodeOf's format.
func pathInode(t *testing.T, path string) string {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return inodeOfInfo(fi)
}

func TestOpenCreatesDir(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a", "b")
	d, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(d.Path)
	if err != nil || !fi.IsDir() {
		t.Fatalf("lock directory not created: %v", err)
	}
}

func TestTryAppHeldBySubprocessThenKilled(t *testing.T) {
	d := openDir(t)
	h, _ := startHelper(t, "app", d.Path, "ch-1.example.org")

	l, err := d.TryApp("ch-1.example.org")
	if !errors.Is(err, ErrHeld) || l != nil {
		t.Fatalf("TryApp of a held lock = %v, %v; want ErrHeld", l, err)
	}
	if !strings.Contains(err.Error(), "ch-1.example.org") || !strings.Contains(err.Error(), "app-ch-1.example.org.lock") {
		t.Errorf("error does not name the domain and lockfile: %v", err)
	}

	h.kill()
	l, err = d.TryApp("ch-1.example.org")
	if err != nil {
		t.Fatalf("TryApp right after SIGKILL of the holder: %v", err)
	}
	defer l.Release()
	if got, want := inodeOf(l.f), pathInode(t, l.Path()); got != want {
		t.Errorf("holding inode %s, path has %s", got, want)
	}
}

type acquireResult struct {
	l   *Lock
	err error
}

// startWaiter calls App in a goroutine and gives it time to open the current lockfile.
func startWaiter(d *Dir, domain string) chan acquireResult {
	done := make(chan acquireResult, 1)
	go func() {
		l, err := d.App(context.Background(), domain)
		done <- acquireResult{l, err}
	}()
	time.Sleep(5 * pollInterval)
	return done
}

func waitAcquired(t *testing.T, done chan acquireResult) *Lock {
	t.Helper()
	select {
	case r := <-done:
		if r.err != nil {
			t.Fatal(r.err)
		}
		t.Cleanup(func() { r.l.Release() })
		return r.l
	case <-time.After(10 * time.Second):
		t.Fatal("App did not acquire the lock")
	}
	return nil
}

func assertBlocked(t *testing.T, done chan acquireResult) {
	t.Helper()
	select {
	case r := <-done:
		t.Fatalf("App returned while the live lockfile is held: %+v", r)
	case <-time.After(5 * pollInterval):
	}
}

// assertLive checks the lock is on the file now at its path, and that another process
// cannot take it.
func assertLive(t *testing.T, d *Dir, l *Lock, domain string) {
	t.Helper()
	if got, atPath := inodeOf(l.f), pathInode(t, l.Path()); got != atPath {
		t.Errorf("holding inode %s, but the path has %s", got, atPath)
	}
	if err := probeFromSubprocess(t, d, domain); !errors.Is(err, ErrHeld) {
		t.Errorf("another process could take the lock we hold: %v", err)
	}
}

func TestAppWaiterFollowsUnlinkedAndRecreatedLockfile(t *testing.T) {
	d := openDir(t)
	const domain = "swap.example.org"
	h, first := startHelper(t, "app", d.Path, domain)
	done := startWaiter(d, domain)

	// The holder unlinks its file and recreates it. Either it or the waiter gets the new
	// file; the waiter must never settle for the unlinked inode.
	second := h.send("swap", "swapped")
	if second != "lost" {
		if second == first {
			t.Fatalf("helper reused inode %s", first)
		}
		assertBlocked(t, done)
		h.send("release", "released")
	}
	l := waitAcquired(t, done)
	if inodeOf(l.f) == first {
		t.Errorf("waiter holds the unlinked inode %s", first)
	}
	assertLive(t, d, l, domain)
}

func TestAppWaiterFollowsRotatedLockfile(t *testing.T) {
	d := openDir(t)
	const domain = "rotate.example.org"
	h, first := startHelper(t, "app", d.Path, domain)
	done := startWaiter(d, domain)

	// A new locked file is renamed over the path and the old one released: the waiter may
	// get the old inode's flock, and must see it is dead and wait for the new file.
	second := h.send("rotate", "rotated")
	assertBlocked(t, done)
	h.send("release", "released")
	l := waitAcquired(t, done)
	if got := inodeOf(l.f); got != second || got == first {
		t.Errorf("waiter holds %s, want the live file %s (old %s)", got, second, first)
	}
	assertLive(t, d, l, domain)
}

func TestLockOnDeadInodeIsStale(t *testing.T) {
	d := openDir(t)
	path := filepath.Join(d.Path, "app-dead.example.org.lock")
	f, err := openLockfile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	acquired, stale, err := lockIfLive(f, path)
	if acquired || !stale || err != nil {
		t.Errorf("lock on an unlinked file: acquired=%v stale=%v err=%v", acquired, stale, err)
	}
	mustWrite(t, path)
	if _, stale, _ := lockIfLive(f, path); !stale {
		t.Error("lock on a replaced file is not stale")
	}
}

// probeFromSubprocess tries a lock from a fresh process; ErrHeld if it could not take it.
func probeFromSubprocess(t *testing.T, d *Dir, domain string) error {
	t.Helper()
	cmd := helperCmd(d.Path, domain)
	out, _ := cmd.Output()
	if strings.HasPrefix(string(out), "error:") && strings.Contains(string(out), "held") {
		return ErrHeld
	}
	if strings.HasPrefix(string(out), "locked") {
		return nil
	}
	return errors.New("helper: " + string(out))
}

func TestAppWaiterFollowsReplacedLockfile(t *testing.T) {
	d := openDir(t)
	const domain = "replace.example.org"
	h, first := startHelper(t, "app", d.Path, domain)

	done := startWaiter(d, domain)
	// A new file is renamed over the path while the old one stays locked forever: the waiter
	// must move to the new, free file rather than wait on the old inode.
	second := h.send("replace", "replaced")
	l := waitAcquired(t, done)
	if got := inodeOf(l.f); got != second || got == first {
		t.Errorf("waiter holds %s, want the replacement %s (old %s)", got, second, first)
	}
	assertLive(t, d, l, domain)
}

func TestAppContextCancel(t *testing.T) {
	d := openDir(t)
	startHelper(t, "app", d.Path, "busy.example.org")
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	l, err := d.App(ctx, "busy.example.org")
	if !errors.Is(err, context.DeadlineExceeded) || l != nil {
		t.Fatalf("App = %v, %v; want DeadlineExceeded", l, err)
	}
	if time.Since(start) > 2*time.Second {
		t.Errorf("App took %v to notice the cancel", time.Since(start))
	}
	if !strings.Contains(err.Error(), "busy.example.org") {
		t.Errorf("error does not name the domain: %v", err)
	}

	ctx2, cancel2 := context.WithCancel(context.Background())
	cancel2()
	if _, err := d.App(ctx2, "free.example.org"); !errors.Is(err, context.Canceled) {
		t.Errorf("App with a cancelled context = %v", err)
	}
}

func TestAppAcquiresFreeLockAndSetsMtime(t *testing.T) {
	d := openDir(t)
	l, err := d.App(context.Background(), "a.example.org")
	if err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-3 * time.Hour)
	if err := os.Chtimes(l.Path(), old, old); err != nil {
		t.Fatal(err)
	}
	if err := l.Release(); err != nil {
		t.Fatal(err)
	}
	if err := l.Release(); err != nil {
		t.Errorf("second Release: %v", err)
	}
	before := time.Now().Add(-time.Second)
	l, err = d.TryApp("a.example.org")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	files, err := d.AppLockfiles()
	if err != nil {
		t.Fatal(err)
	}
	if mt, ok := files["a.example.org"]; !ok || mt.Before(before) {
		t.Errorf("lockfile mtime %v not set at acquisition (after %v)", mt, before)
	}
}

func TestSameProcessSecondAcquireIsHeld(t *testing.T) {
	d := openDir(t)
	l, err := d.TryApp("x.org")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.TryApp("x.org"); !errors.Is(err, ErrHeld) {
		t.Errorf("second TryApp in one process = %v, want ErrHeld", err)
	}
	l.Release()
	l2, err := d.TryApp("x.org")
	if err != nil {
		t.Fatalf("TryApp after Release: %v", err)
	}
	l2.Release()
}

func TestSpecDir(t *testing.T) {
	d := openDir(t)
	specs := filepath.Join(t.TempDir(), "specs")
	if err := os.Mkdir(specs, 0o755); err != nil {
		t.Fatal(err)
	}
	l, err := d.SpecDir(specs)
	if err != nil {
		t.Fatal(err)
	}
	base := filepath.Base(l.Path())
	if !strings.HasPrefix(base, "specs-") || !strings.HasSuffix(base, ".lock") || len(base) != len("specs-")+16+len(".lock") {
		t.Errorf("lockfile name %q", base)
	}

	// Other spellings of the same directory share the lock.
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(specs, link); err != nil {
		t.Fatal(err)
	}
	for _, other := range []string{specs, specs + "/", specs + "/../specs", link} {
		_, err := d.SpecDir(other)
		if !errors.Is(err, ErrHeld) {
			t.Errorf("SpecDir(%s) while held = %v, want ErrHeld", other, err)
			continue
		}
		for _, want := range []string{"another reconciler is running on spec directory " + specs, l.Path(), "--specs"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not contain %q", err, want)
			}
		}
	}
	// Another directory is independent.
	other, err := d.SpecDir(t.TempDir())
	if err != nil {
		t.Errorf("SpecDir of another directory: %v", err)
	} else {
		other.Release()
	}
	l.Release()
}

func TestSpecDirHeldBySubprocess(t *testing.T) {
	d := openDir(t)
	specs := t.TempDir()
	h, _ := startHelper(t, "spec", d.Path, specs)
	_, err := d.SpecDir(specs)
	if !errors.Is(err, ErrHeld) || !strings.Contains(err.Error(), specs) {
		t.Fatalf("SpecDir held by another process = %v", err)
	}
	h.kill()
	l, err := d.SpecDir(specs)
	if err != nil {
		t.Fatalf("SpecDir after the holder died: %v", err)
	}
	l.Release()
}

func TestSweepStale(t *testing.T) {
	d := openDir(t)
	startHelper(t, "app", d.Path, "held.example.org")
	for _, domain := range []string{"orphan.example.org", "kept.example.org", "orphan2.example.org"} {
		l, err := d.TryApp(domain)
		if err != nil {
			t.Fatal(err)
		}
		l.Release()
	}
	// Not app lockfiles: never touched.
	for _, name := range []string{"specs-0123456789abcdef.lock", "notes.txt", "app-.lock"} {
		if err := os.WriteFile(filepath.Join(d.Path, name), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	files, err := d.AppLockfiles()
	if err != nil {
		t.Fatal(err)
	}
	var domains []string
	for domain := range files {
		domains = append(domains, domain)
	}
	slices.Sort(domains)
	if got := strings.Join(domains, " "); got != "held.example.org kept.example.org orphan.example.org orphan2.example.org" {
		t.Errorf("AppLockfiles = %s", got)
	}

	removed, err := d.SweepStale(func(domain string) bool { return domain == "kept.example.org" })
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(removed, " "); got != "orphan.example.org orphan2.example.org" {
		t.Errorf("removed %q", got)
	}
	for name, want := range map[string]bool{
		"app-held.example.org.lock":    true,
		"app-kept.example.org.lock":    true,
		"app-orphan.example.org.lock":  false,
		"app-orphan2.example.org.lock": false,
		"specs-0123456789abcdef.lock":  true,
		"notes.txt":                    true,
		"app-.lock":                    true,
	} {
		_, err := os.Stat(filepath.Join(d.Path, name))
		if exists := err == nil; exists != want {
			t.Errorf("%s exists = %v, want %v", name, exists, want)
		}
	}
	if _, err := d.TryApp("held.example.org"); !errors.Is(err, ErrHeld) {
		t.Errorf("the held lock was disturbed: %v", err)
	}
}

func TestUnlink(t *testing.T) {
	d := openDir(t)
	l, err := d.TryApp("gone.example.org")
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Unlink(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(l.Path()); !os.IsNotExist(err) {
		t.Errorf("lockfile still there: %v", err)
	}
	if err := l.Release(); err != nil {
		t.Errorf("Release after Unlink: %v", err)
	}
	if err := l.Unlink(); err == nil {
		t.Error("Unlink of a released lock succeeded")
	}
}

func TestUnlinkLeavesSomeoneElsesFile(t *testing.T) {
	d := openDir(t)
	l, err := d.TryApp("r.example.org")
	if err != nil {
		t.Fatal(err)
	}
	// Someone breaks the protocol and replaces the file: Unlink must not remove theirs.
	if err := os.Rename(mustWrite(t, l.Path()+".x"), l.Path()); err != nil {
		t.Fatal(err)
	}
	if err := l.Unlink(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(l.Path()); err != nil {
		t.Errorf("replacement file removed: %v", err)
	}
}

func mustWrite(t *testing.T, path string) string {
	t.Helper()
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestDomainMustBeAFileNamePart(t *testing.T) {
	d := openDir(t)
	for _, domain := range []string{"", "../x", "a/b", ".hidden", "a\x00b", strings.Repeat("a", 241)} {
		if _, err := d.TryApp(domain); err == nil || errors.Is(err, ErrHeld) {
			t.Errorf("TryApp(%q) = %v", domain, err)
		}
		if _, err := d.App(context.Background(), domain); err == nil {
			t.Errorf("App(%q) accepted", domain)
		}
	}
}

func TestLockfileIsCloseOnExec(t *testing.T) {
	d := openDir(t)
	l, err := d.TryApp("cloexec.example.org")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	info, err := os.ReadFile("/proc/self/fdinfo/" + strconv.Itoa(int(l.f.Fd())))
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("no /proc fdinfo (CI is set, so this is a failure: CI runs on Linux): %v", err)
		}
		t.Skipf("no /proc fdinfo: %v", err)
	}
	for _, line := range strings.Split(string(info), "\n") {
		if v, ok := strings.CutPrefix(line, "flags:"); ok {
			flags, err := strconv.ParseUint(strings.TrimSpace(v), 8, 64)
			if err != nil {
				t.Fatal(err)
			}
			if flags&0o2000000 == 0 {
				t.Errorf("lockfile fd flags %o lack O_CLOEXEC", flags)
			}
			return
		}
	}
	t.Fatalf("no flags in fdinfo: %s", info)
}

// TestSpecDirThroughAMovedLink: the spec directory is a link a tool points elsewhere (ln -sfn,
// git-sync). A second reconciler given the same link after it moved resolves it to another
// directory; it is refused all the same, naming the link, until the first releases its lock.
func TestSpecDirThroughAMovedLink(t *testing.T) {
	d := openDir(t)
	root := t.TempDir()
	r1, r2 := filepath.Join(root, "r1"), filepath.Join(root, "r2")
	for _, dir := range []string{r1, r2} {
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	link := filepath.Join(root, "specs")
	if err := os.Symlink(r1, link); err != nil {
		t.Fatal(err)
	}
	first, err := d.SpecDir(link)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(r2, link+".new"); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(link+".new", link); err != nil {
		t.Fatal(err)
	}
	_, err = d.SpecDir(link)
	if !errors.Is(err, ErrHeld) || !strings.Contains(err.Error(), "through the link "+link) {
		t.Fatalf("SpecDir(%s) after the link moved, while the first holds it: %v, want ErrHeld naming the link", link, err)
	}
	// The refused attempt holds nothing: r2 itself is free, and so is the link once released.
	direct, err := d.SpecDir(r2)
	if err != nil {
		t.Fatalf("SpecDir(%s) after a refused attempt through the link: %v", r2, err)
	}
	direct.Release()
	if err := first.Release(); err != nil {
		t.Fatal(err)
	}
	second, err := d.SpecDir(link)
	if err != nil {
		t.Fatalf("SpecDir(%s) once the first released: %v", link, err)
	}
	second.Release()
}
