package locks

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestHelperProcess is not a test: it is the lock-holding subprocess the other tests start.
// It takes a lock, prints "locked <inode>", then obeys commands from stdin:
//
//	swap     unlink the lockfile, recreate and try to lock it, release the old:
//	         "swapped <inode>", or "swapped lost" when the waiter took the new file first
//	rotate   rename a new locked file over the lockfile, release the old: "rotated <inode>"
//	replace  rename a new file over the lockfile, keeping the old one locked: "replaced <inode>"
//	release  release every lock it holds: "released"
//
// and holds whatever it holds until stdin closes or it is killed.
func TestHelperProcess(t *testing.T) {
	mode := os.Getenv("LOCKS_HELPER")
	if mode == "" {
		return
	}
	args := os.Args
	for len(args) > 0 && args[0] != "--" {
		args = args[1:]
	}
	if len(args) != 3 {
		fmt.Println("usage: -- DIR NAME")
		os.Exit(2)
	}
	d := &Dir{Path: args[1]}
	var (
		held []*Lock
		l    *Lock
		err  error
	)
	switch mode {
	case "app":
		l, err = d.TryApp(args[2])
	case "spec":
		l, err = d.SpecDir(args[2])
	}
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(3)
	}
	held = append(held, l)
	fmt.Println("locked", inodeOf(l.f))
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		switch in.Text() {
		case "swap":
			// Unlink and recreate, as a careless tool would: whoever opens the path first
			// after the unlink owns the new file.
			old := held[len(held)-1]
			if err := os.Remove(old.Path()); err != nil {
				fmt.Println("error:", err)
				os.Exit(3)
			}
			n, err := d.TryApp(args[2])
			old.Release()
			if err != nil {
				fmt.Println("swapped lost")
				continue
			}
			held = append(held, n)
			fmt.Println("swapped", inodeOf(n.f))
		case "rotate":
			// Atomically put a new, locked file at the path, then release the old one.
			old := held[len(held)-1]
			tmp := old.Path() + ".new"
			f, err := openLockfile(tmp)
			if err == nil {
				if ok, ferr := flockNB(f); !ok || ferr != nil {
					err = fmt.Errorf("lock %s: %v", tmp, ferr)
				}
			}
			if err == nil {
				err = os.Rename(tmp, old.Path())
			}
			if err != nil {
				fmt.Println("error:", err)
				os.Exit(3)
			}
			old.Release()
			held = append(held, &Lock{path: old.Path(), f: f})
			fmt.Println("rotated", inodeOf(f))
		case "replace":
			path := held[len(held)-1].Path()
			tmp := path + ".new"
			if err := os.WriteFile(tmp, nil, 0o644); err != nil {
				fmt.Println("error:", err)
				os.Exit(3)
			}
			if err := os.Rename(tmp, path); err != nil {
				fmt.Println("error:", err)
				os.Exit(3)
			}
			fi, _ := os.Stat(path)
			fmt.Println("replaced", inodeOfInfo(fi))
		case "release":
			for _, l := range held {
				l.Release()
			}
			fmt.Println("released")
		}
	}
	os.Exit(0)
}

// helper is a running TestHelperProcess.
type helper struct {
	t     *testing.T
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan string
}

// helperCmd is a one-shot helper: it tries the app lock, prints the outcome and exits.
func helperCmd(dir, domain string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "--", dir, domain)
	cmd.Env = append(os.Environ(), "LOCKS_HELPER=app")
	return cmd
}

// startHelper starts a subprocess holding a lock of the given mode ("app" or "spec") on name
// in dir, and waits until it holds it. It returns the inode it locked.
func startHelper(t *testing.T, mode, dir, name string) (*helper, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "--", dir, name)
	cmd.Env = append(os.Environ(), "LOCKS_HELPER="+mode)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	h := &helper{t: t, cmd: cmd, stdin: stdin, lines: make(chan string, 16)}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			h.lines <- sc.Text()
		}
		close(h.lines)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return h, h.expect("locked")
}

// expect waits for the helper's next line, which must start with word; it returns the rest.
func (h *helper) expect(word string) string {
	h.t.Helper()
	select {
	case line, ok := <-h.lines:
		if !ok {
			h.t.Fatalf("helper exited while we waited for %q", word)
		}
		rest, found := strings.CutPrefix(line, word)
		if !found {
			h.t.Fatalf("helper said %q, want %q", line, word)
		}
		return strings.TrimSpace(rest)
	case <-time.After(10 * time.Second):
		h.t.Fatalf("helper did not say %q", word)
	}
	return ""
}

func (h *helper) send(cmd, reply string) string {
	h.t.Helper()
	if _, err := fmt.Fprintln(h.stdin, cmd); err != nil {
		h.t.Fatal(err)
	}
	return h.expect(reply)
}

// kill SIGKILLs the helper and reaps it: the kernel has dropped its flocks when this returns.
func (h *helper) kill() {
	h.t.Helper()
	if err := h.cmd.Process.Kill(); err != nil {
		h.t.Fatal(err)
	}
	_ = h.cmd.Wait()
}

func inodeOf(f *os.File) string {
	fi, err := f.Stat()
	if err != nil {
		return "?"
	}
	return inodeOfInfo(fi)
}
