package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
)

// BenchmarkBackupThroughput measures a backup and a restore of a volume holding one file of
// E2E_BACKUP_MIB MiB (default 1024) of random bytes (E2E_BACKUP_DATA=text: of SQL lines) against `docker cp` of the same path out of and into the
// same container, in the same run, round by round: the reconciler's time is its run's
// started..finished in the status (the request's round trip through the spec file is not
// counted), docker cp's the command's wall time. A restore includes its mandatory read-back
// verification. It also samples the reconciler's RSS every 20ms and reports the peak above
// its idle RSS before the round.
//
//	go test ./e2e/ -run '^$' -bench BackupThroughput -benchtime 1x -timeout 30m
func BenchmarkBackupThroughput(b *testing.B) {
	mib := 1024
	if v := os.Getenv("E2E_BACKUP_MIB"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			b.Fatalf("E2E_BACKUP_MIB=%q: want a positive number", v)
		}
		mib = n
	}
	needShellImage(b)
	h := startHarness(b)
	makeEchoRecipe(b, h, "e2e-backup-bench", "", fmt.Sprintf(`services:
  app:
    image: %s
    environment:
      - MESSAGE=bench
      - PORT=8080
    volumes:
      - big:/big
    deploy:
      labels:
        - "coop-cloud.${STACK_NAME}.version=%s"
        - "backupbot.backup=true"
volumes:
  big:
`, shellImage, miniRelease), nil)
	a := h.newApp("bkbench")
	h.waitPhase(a.name, h.writeSpec(a.name, a.specOf("e2e-backup-bench", miniRelease, "timeout: 20m")), "Ready")
	ctx := context.Background()
	list, err := suite.docker.ContainerList(ctx, container.ListOptions{Filters: filters.NewArgs(filters.Arg("label", "com.docker.swarm.service.name="+a.stack()+"_app"))})
	if err != nil || len(list) != 1 {
		b.Fatalf("the app's container: %v (%d found)", err, len(list))
	}
	cid := list[0].ID
	fill := []string{"exec", cid, "dd", "if=/dev/urandom", "of=/big/blob", "bs=1M", "count=" + strconv.Itoa(mib)}
	if os.Getenv("E2E_BACKUP_DATA") == "text" {
		// A database dump's shape: lines of SQL, which compress well.
		fill = []string{"exec", cid, "sh", "-c", fmt.Sprintf(`i=0; while [ $i -lt 2000 ]; do echo "INSERT INTO posts (id, author, title) VALUES ($i, 'user$((i %% 97))', 'Title $i $RANDOM');"; i=$((i+1)); done > /big/blob; while [ $(stat -c %%s /big/blob) -lt %d ]; do cat /big/blob /big/blob > /big/next; mv /big/next /big/blob; done; head -c %d /big/blob > /big/next; mv /big/next /big/blob`, mib<<20, mib<<20)}
	}
	if out, err := exec.Command("docker", fill...).CombinedOutput(); err != nil {
		b.Fatalf("fill the volume: %v\n%s", err, out)
	}
	tmp := b.TempDir()
	size := float64(mib) / 1024 // GiB

	var cpOut, cpIn, backup, restore, restoreWrites, peakBackup, peakRestore []float64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for round := 0; round < 3; round++ {
			dst := filepath.Join(tmp, fmt.Sprint(round))
			took := timed(b, "docker", "cp", cid+":/big/blob", dst)
			cpOut = append(cpOut, size/took.Seconds())
			took = timed(b, "docker", "cp", dst, cid+":/big/blob")
			cpIn = append(cpIn, size/took.Seconds())
			os.Remove(dst)

			idle := rssKiB(b, h.proc.Process.Pid)
			stop := sampleRSS(h.proc.Process.Pid)
			if r := h.cli(20*time.Minute, "backup", a.name, "--wait", "--timeout", "20m"); r.code != 0 {
				b.Fatalf("backup: %s", r)
			}
			peakBackup = append(peakBackup, float64(stop()-idle)/1024)
			run := lastRun(b, h, a.name, "lastBackup")
			backup = append(backup, size/run.Seconds())

			idle = rssKiB(b, h.proc.Process.Pid)
			stop = sampleRSS(h.proc.Process.Pid)
			if r := h.cli(20*time.Minute, "restore", a.name, "--wait", "--timeout", "20m"); r.code != 0 {
				b.Fatalf("restore: %s", r)
			}
			peakRestore = append(peakRestore, float64(stop()-idle)/1024)
			run = lastRun(b, h, a.name, "lastRestore")
			restore = append(restore, size/run.Seconds())
			if w := restoreWrite(b, h); w > 0 {
				restoreWrites = append(restoreWrites, size/w.Seconds())
			}
		}
	}
	b.StopTimer()
	b.ReportMetric(median(backup), "backup-GiB/s")
	b.ReportMetric(median(cpOut), "docker-cp-out-GiB/s")
	b.ReportMetric(median(backup)/median(cpOut), "backup-vs-cp")
	b.ReportMetric(median(restore), "restore-GiB/s")
	b.ReportMetric(median(cpIn), "docker-cp-in-GiB/s")
	b.ReportMetric(median(restore)/median(cpIn), "restore-vs-cp")
	b.ReportMetric(median(restoreWrites)/median(cpIn), "restore-write-vs-cp")
	b.ReportMetric(maxOf(peakBackup), "backup-peak-RSS-MiB")
	b.ReportMetric(maxOf(peakRestore), "restore-peak-RSS-MiB")
	b.Logf("%d MiB; GiB/s per round: backup %v, docker cp out %v, restore (with verification) %v, its write alone %v, docker cp in %v; RSS above idle, MiB: backup %v, restore %v",
		mib, backup, cpOut, restore, restoreWrites, cpIn, peakBackup, peakRestore)
}

// restoreWrite is how long the last restore took to write its volume, before its read-back:
// from the log's "backup job" line of the restore to its "write volume" step.
func restoreWrite(b *testing.B, h *harness) time.Duration {
	b.Helper()
	var start, end time.Time
	for _, line := range h.recLogSince(0) {
		at, err := time.Parse(time.RFC3339Nano, strings.SplitN(line, "\t", 2)[0])
		switch {
		case err != nil:
		case strings.Contains(line, "\tbackup job\t") && strings.Contains(line, `"restore": true`):
			start = at
		case strings.Contains(line, "\tbackup step\t") && strings.Contains(line, "write volume"):
			end = at
		}
	}
	return end.Sub(start)
}

func timed(b *testing.B, name string, args ...string) time.Duration {
	b.Helper()
	start := time.Now()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		b.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	return time.Since(start)
}

// lastRun is how long the status's lastBackup or lastRestore took.
func lastRun(b *testing.B, h *harness, app, field string) time.Duration {
	b.Helper()
	raw, err := os.ReadFile(h.statusPath(app))
	if err != nil {
		b.Fatal(err)
	}
	var st map[string]json.RawMessage
	if err := json.Unmarshal(raw, &st); err != nil {
		b.Fatal(err)
	}
	var run struct {
		State    string    `json:"state"`
		Started  time.Time `json:"started"`
		Finished time.Time `json:"finished"`
	}
	if err := json.Unmarshal(st[field], &run); err != nil || run.State != "Completed" {
		b.Fatalf("%s: %v %s", field, err, st[field])
	}
	return run.Finished.Sub(run.Started)
}

// rssKiB is the resident set of process pid.
func rssKiB(b *testing.B, pid int) int {
	b.Helper()
	n, err := readRSS(pid)
	if err != nil {
		b.Fatal(err)
	}
	return n
}

func readRSS(pid int) (int, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), "VmRSS:"); ok {
			return strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}

// sampleRSS samples pid's RSS every 20ms until the returned function is called, which
// returns the peak in KiB.
func sampleRSS(pid int) func() int {
	var (
		mu   sync.Mutex
		peak int
		done = make(chan struct{})
	)
	go func() {
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			if n, err := readRSS(pid); err == nil {
				mu.Lock()
				peak = max(peak, n)
				mu.Unlock()
			}
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() int {
		close(done)
		mu.Lock()
		defer mu.Unlock()
		return peak
	}
}
