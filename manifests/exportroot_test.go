package manifests

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// holdRootEnv makes the test binary a child that makes its export root, prints its path and
// waits to be killed.
const holdRootEnv = "MANIFESTS_TEST_HOLD_ROOT"

func holdRoot() {
	dir, err := root.get()
	if err != nil {
		os.Stderr.WriteString(err.Error() + "\n")
		os.Exit(2)
	}
	os.Stdout.WriteString(dir + "\n")
	select {}
}

// readOnlyTree makes a tree as exportCommit leaves one: a file in a directory without write
// permission, which os.RemoveAll alone cannot empty (as a user other than root).
func readOnlyTree(t *testing.T, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "compose.yml"), []byte("services: {}\n"), 0o444); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o500); err != nil {
		t.Fatal(err)
	}
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

func TestSweepRemovesOnlyWhatNoLiveProcessUses(t *testing.T) {
	tmp := privateTmp(t)
	now := time.Now()
	at := func(p string, age time.Duration) {
		t.Helper()
		if err := os.Chtimes(p, now.Add(-age), now.Add(-age)); err != nil {
			t.Fatal(err)
		}
	}

	// A root whose process ended: nobody holds its lock.
	dead := filepath.Join(tmp, rootPrefix+"dead")
	readOnlyTree(t, filepath.Join(dead, "abc-1"))
	// A root of a live process: its lock held (an open file description of its own, as another
	// process's would be).
	live := filepath.Join(tmp, rootPrefix+"live")
	readOnlyTree(t, filepath.Join(live, "abc-1"))
	lock, err := lockDir(live)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	// One that a sweep killed half-way left empty.
	half := filepath.Join(tmp, rootPrefix+"half")
	if err := os.Mkdir(half, 0o700); err != nil {
		t.Fatal(err)
	}
	// Roots being made: one for a moment, one left by a process killed while making it.
	stagingNew, stagingOld := filepath.Join(tmp, stagingPrefix+"new"), filepath.Join(tmp, stagingPrefix+"old")
	for _, d := range []string{stagingNew, stagingOld} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	at(stagingOld, 2*stagingMaxAge)
	// Trees of older versions, in the temporary directory itself: one in use for all we know.
	legacyNew, legacyOld := filepath.Join(tmp, treePrefix+"abc-new"), filepath.Join(tmp, treePrefix+"abc-old")
	readOnlyTree(t, legacyNew)
	readOnlyTree(t, legacyOld)
	at(legacyNew, treeMaxAge)
	at(legacyOld, 2*treeMaxAge+time.Minute)
	// Not ours at all.
	other := filepath.Join(tmp, "swarm-reconciler-other")
	if err := os.Mkdir(other, 0o700); err != nil {
		t.Fatal(err)
	}

	own, err := root.get()
	if err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]bool{dead: false, live: true, half: false, stagingNew: true, stagingOld: false,
		legacyNew: true, legacyOld: false, other: true, own: true} {
		if exists(p) != want {
			t.Errorf("%s: exists %v after the sweep, want %v", filepath.Base(p), !want, want)
		}
	}
	if filepath.Dir(own) != tmp || !strings.HasPrefix(filepath.Base(own), rootPrefix) {
		t.Errorf("own root %s", own)
	}
	// The own root's lock is held: another process's sweep leaves it.
	sweepRoots(tmp, "", now)
	if !exists(own) {
		t.Error("a live root was swept")
	}
	Cleanup()
	if exists(own) {
		t.Error("Cleanup left the export root")
	}
	removeTree(live)
	removeTree(legacyNew)
}

func TestExportRootOfAKilledProcessIsSwept(t *testing.T) {
	tmp := privateTmp(t)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), holdRootEnv+"=1", "TMPDIR="+tmp)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("child's root: %v", err)
	}
	dir := strings.TrimSpace(line)
	if filepath.Dir(dir) != tmp {
		t.Fatalf("child's root %q is not in %s", dir, tmp)
	}
	sweepRoots(tmp, "", time.Now())
	if !exists(dir) {
		t.Fatal("the root of a live process was swept")
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	if !exists(dir) {
		t.Fatal("the killed child's root went by itself: the test proves nothing")
	}
	if _, err := root.get(); err != nil { // the first export of this process sweeps
		t.Fatal(err)
	}
	if exists(dir) {
		t.Errorf("the root of a killed process is left: %s", dir)
	}
}

// TestSweepLeavesOtherUsers: a directory of another user that carries our prefix is left alone,
// also by a sweep running as root (nor is anything below it chmodded: a symlink swapped in
// there could point anywhere).
func TestSweepLeavesOtherUsers(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") != "" {
			t.Fatal("CI runs the unit tests as root: this test needs it to make another user's directory")
		}
		t.Skip("needs root to make a directory of another user")
	}
	tmp := privateTmp(t)
	old := time.Now().Add(-3 * treeMaxAge)
	var theirs []string
	for _, name := range []string{treePrefix + "someone", rootPrefix + "someone", stagingPrefix + "someone"} {
		p := filepath.Join(tmp, name)
		if err := os.MkdirAll(filepath.Join(p, "sub"), 0o755); err != nil {
			t.Fatal(err)
		}
		for _, q := range []string{filepath.Join(p, "sub"), p} {
			if err := os.Chown(q, 4242, 4242); err != nil {
				t.Fatal(err)
			}
			if err := os.Chtimes(q, old, old); err != nil {
				t.Fatal(err)
			}
		}
		theirs = append(theirs, p)
	}
	sweepRoots(tmp, "", time.Now())
	for _, p := range theirs {
		if !exists(p) {
			t.Errorf("%s of uid 4242 was removed", filepath.Base(p))
		}
	}
}
