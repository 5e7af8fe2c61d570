package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/api/types/swarm"
)

// The engine-restart helpers: stop the local dockerd the way an operator's `systemctl stop
// docker` or a crash would, and start it again the way scripts/swarm-up does. A test that uses
// them stops the engine under every test of the run: it must be a serial top-level test (no
// t.Parallel in it or its subtests), so no other test of this binary runs meanwhile.

// dockerdProc is the live dockerd: its pid and command line.
type dockerdProc struct {
	pid  int
	args []string
}

// findDockerd returns the one live (not zombie) process named dockerd, read from /proc as
// scripts/swarm-up does.
func findDockerd() (dockerdProc, error) {
	comms, err := filepath.Glob("/proc/[0-9]*/comm")
	if err != nil {
		return dockerdProc{}, err
	}
	var found []dockerdProc
	for _, comm := range comms {
		b, err := os.ReadFile(comm)
		if err != nil || strings.TrimSpace(string(b)) != "dockerd" {
			continue
		}
		dir := filepath.Dir(comm)
		pid, err := strconv.Atoi(filepath.Base(dir))
		if err != nil || procZombieOrGone(pid) {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join(dir, "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00")
		found = append(found, dockerdProc{pid: pid, args: args})
	}
	switch len(found) {
	case 0:
		return dockerdProc{}, errors.New("no dockerd process on this host (the engine must run here, as scripts/swarm-up starts it)")
	case 1:
		return found[0], nil
	default:
		return dockerdProc{}, fmt.Errorf("%d dockerd processes on this host: %v", len(found), found)
	}
}

// procZombieOrGone reports whether pid has exited (gone, or a zombie nobody reaped).
func procZombieOrGone(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return true
	}
	for line := range strings.Lines(string(b)) {
		if state, ok := strings.CutPrefix(line, "State:"); ok {
			return strings.HasPrefix(strings.TrimSpace(state), "Z")
		}
	}
	return false
}

// asRoot runs a command as root: directly when the suite is root, through `sudo -n` as
// scripts/swarm-up does otherwise.
func asRoot(ctx context.Context, name string, args ...string) *exec.Cmd {
	if os.Geteuid() == 0 {
		return exec.CommandContext(ctx, name, args...)
	}
	return exec.CommandContext(ctx, "sudo", append([]string{"-n", name}, args...)...)
}

// stopDockerd sends SIGTERM to dockerd and waits until the process has exited (dockerd stops
// its containers first). It registers a cleanup that starts dockerd again with the same command
// line and waits for a healthy swarm, whatever happened to the test meanwhile.
func stopDockerd(t testing.TB) dockerdProc {
	t.Helper()
	d, err := findDockerd()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := startDockerd(d); err != nil {
			t.Errorf("restoring dockerd in cleanup: %v", err)
		}
	})
	t.Logf("stopping dockerd (pid %d): %s", d.pid, strings.Join(d.args, " "))
	if out, err := asRoot(context.Background(), "kill", "-TERM", strconv.Itoa(d.pid)).CombinedOutput(); err != nil {
		t.Fatalf("kill -TERM %d: %v %s", d.pid, err, out)
	}
	if err := poll(context.Background(), 90*time.Second, func() (bool, error) {
		return procZombieOrGone(d.pid), nil
	}); err != nil {
		t.Fatalf("dockerd (pid %d) did not exit after SIGTERM: %v", d.pid, err)
	}
	return d
}

// startDockerd starts dockerd with d's command line, detached and logging where
// scripts/swarm-up logs, unless an engine already answers; then it waits until the swarm is
// healthy again (engineHealthy).
func startDockerd(d dockerdProc) error {
	ctx := context.Background()
	if _, err := suite.docker.Ping(ctx); err != nil {
		logDir := os.Getenv("SWARM_UP_LOGDIR")
		if logDir == "" {
			logDir = "/var/log/swarm-up"
		}
		quoted := make([]string, len(d.args))
		for i, a := range d.args {
			quoted[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		// As scripts/swarm-up: nohup in the background of a shell that exits at once, so dockerd
		// is nobody's child here and outlives the test binary.
		script := fmt.Sprintf("mkdir -p '%s' && nohup %s >>'%s/dockerd.log' 2>&1 &", logDir, strings.Join(quoted, " "), logDir)
		cmd := asRoot(ctx, "sh", "-c", script)
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("start dockerd: %v %s", err, out)
		}
	}
	return engineHealthy(ctx, 2*time.Minute)
}

// engineHealthy waits until the engine answers, this node is an active swarm manager with
// control, and every node is ready and active.
func engineHealthy(ctx context.Context, within time.Duration) error {
	return poll(ctx, within, func() (bool, error) {
		if _, err := suite.docker.Ping(ctx); err != nil {
			return false, err
		}
		info, err := suite.docker.Info(ctx)
		if err != nil {
			return false, err
		}
		if info.Swarm.LocalNodeState != swarm.LocalNodeStateActive || !info.Swarm.ControlAvailable {
			return false, fmt.Errorf("swarm state %q, control available %v", info.Swarm.LocalNodeState, info.Swarm.ControlAvailable)
		}
		nodes, err := suite.docker.NodeList(ctx, swarm.NodeListOptions{})
		if err != nil {
			return false, err
		}
		for _, n := range nodes {
			if n.Status.State != swarm.NodeStateReady || n.Spec.Availability != swarm.NodeAvailabilityActive {
				return false, fmt.Errorf("node %s: %s, %s", n.Description.Hostname, n.Status.State, n.Spec.Availability)
			}
		}
		return true, nil
	})
}
