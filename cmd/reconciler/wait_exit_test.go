package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/swarm-reconciler/reconciler/spec"
)

// TestApplyDeleteWaitCouldNotWaitIsNotFailed: apply --wait and delete --wait exit as wait
// does; when the wait itself cannot run (here: --status names a file, not a directory) that
// is wait's 3, not the 1 a CI script reads as "the app is Failed/Invalid".
func TestApplyDeleteWaitCouldNotWaitIsNotFailed(t *testing.T) {
	e := newCLIEnv(t)
	path, _ := e.specFile("ch-5", body)
	notADir := filepath.Join(e.files, "status-is-a-file")
	if err := os.WriteFile(notADir, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	e.status = notADir
	for _, args := range [][]string{
		{"wait", "ch-5", "--timeout", "2s"},
		{"apply", path, "--wait", "--timeout", "2s"},
		{"delete", "ch-5", "--wait", "--timeout", "2s"},
	} {
		_, _, code, err := e.run(context.Background(), args...)
		if code != exitNoWait || err == nil {
			t.Errorf("%v with --status naming a file: exit %d (%v); want %d (could not wait), not 1 (Failed)", args, code, err, exitNoWait)
		}
	}
}

// TestWaitRidesOutAStatusThatIsNotAStatus: a status file that is not a status (cut short by
// another tool, edited by hand) is replaced by the reconciler with the live state (README), so
// wait keeps polling instead of giving up at once.
func TestWaitRidesOutAStatusThatIsNotAStatus(t *testing.T) {
	e := newCLIEnv(t)
	path, gen := e.specFile("ch-6", body)
	if _, _, code, err := e.run(context.Background(), "apply", path); code != 0 {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(e.status, "ch-6.json"), []byte(`{"app": "ch-6", "pha`), 0o644); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		time.Sleep(5 * waitPoll)
		e.writeStatus("ch-6", gen, spec.PhaseReady, "up")
	}()
	start := time.Now()
	_, _, code, err := e.run(context.Background(), "wait", "ch-6", "--timeout", "20s")
	<-done
	if code != exitReached {
		t.Errorf("wait with a broken status file the reconciler then replaces: exit %d after %s (%v); want 0", code, time.Since(start).Round(time.Millisecond), err)
	}
	// Never replaced: the timeout says what was wrong with it.
	if err := os.WriteFile(filepath.Join(e.status, "ch-6.json"), []byte(`not json`), 0o644); err != nil {
		t.Fatal(err)
	}
	_, _, code, err = e.run(context.Background(), "wait", "ch-6", "--timeout", "500ms")
	if code != exitTimeout || err == nil || !strings.Contains(err.Error(), "not a status file") {
		t.Errorf("wait with a broken status file never replaced: exit %d (%v); want 2 naming the broken file", code, err)
	}
}

// TestWaitForReadyWithoutStatusDir: wait --for ready (and apply --wait) against a status
// directory that is not there (a wrong --status, RECONCILER_STATUS unset) exits 3 at once,
// as wait --help says ("the spec or status directory missing"), instead of sitting out its
// whole timeout to exit 2.
func TestWaitForReadyWithoutStatusDir(t *testing.T) {
	e := newCLIEnv(t)
	path, _ := e.specFile("ch-7", body)
	e.status = filepath.Join(e.files, "no-such-status")
	for _, args := range [][]string{{"wait", "ch-7", "--timeout", "3s"}, {"apply", path, "--wait", "--timeout", "3s"}} {
		start := time.Now()
		_, _, code, err := e.run(context.Background(), args...)
		if code != exitNoWait || err == nil || !strings.Contains(err.Error(), "pass --status DIR") || time.Since(start) > 2*time.Second {
			t.Errorf("%v, no status directory: exit %d after %s (%v); want %d at once saying to pass --status", args, code, time.Since(start).Round(time.Millisecond), err, exitNoWait)
		}
	}
}

// TestWaitForDeletedIsNotFooledByABrokenStatus: a status file that is not a status is not "no
// status left": wait --for deleted goes on waiting for the reconciler's word.
func TestWaitForDeletedIsNotFooledByABrokenStatus(t *testing.T) {
	e := newCLIEnv(t)
	if err := os.WriteFile(filepath.Join(e.status, "ch-8.json"), []byte(`{"app":`), 0o644); err != nil {
		t.Fatal(err)
	}
	_, _, code, err := e.run(context.Background(), "wait", "ch-8", "--for", "deleted", "--timeout", "500ms")
	if code != exitTimeout || err == nil || !strings.Contains(err.Error(), "not a status file") {
		t.Errorf("wait --for deleted, broken status file: exit %d (%v); want 2 naming the broken file", code, err)
	}
}

// TestBackupWaitRidesOutAStatusThatIsNotAStatus: backup --wait, like wait, waits out a status
// file that is not a status (the reconciler replaces it) instead of exiting 1, "failed".
func TestBackupWaitRidesOutAStatusThatIsNotAStatus(t *testing.T) {
	e := newCLIEnv(t)
	path, _ := e.specFile("ch-9", body)
	if _, _, code, err := e.run(context.Background(), "apply", path); code != 0 {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(e.status, "ch-9.json"), []byte(`{"app": "ch-9", "pha`), 0o644); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		token := ""
		for deadline := time.Now().Add(10 * time.Second); token == "" && time.Now().Before(deadline); {
			time.Sleep(waitPoll)
			if d, err := spec.LoadApp(e.specs, "ch-9", spec.Defaults{}); err == nil && d != nil && d.Spec != nil && d.Spec.Backup != nil {
				token = d.Spec.Backup.RequestedAt
			}
		}
		time.Sleep(3 * waitPoll)
		now := time.Now()
		st := &spec.Status{App: "ch-9", ObservedGeneration: "sha256:x", Phase: spec.PhaseReady, UpdatedAt: now, LastHandledBackupAt: token,
			LastBackup: &spec.BackupRun{ID: "20261203T100000.000Z", Trigger: "request", Request: token, State: spec.RunCompleted, Started: now, Finished: &now, Message: "2 files"}}
		_ = spec.WriteStatus(e.status, st)
	}()
	stdout, _, code, err := e.run(context.Background(), "backup", "ch-9", "--wait", "--timeout", "20s")
	<-done
	if code != 0 || !strings.Contains(stdout, "completed: 2 files") {
		t.Errorf("backup --wait with a broken status file the reconciler then replaces: exit %d (%v), %q; want 0, completed", code, err, stdout)
	}
}

// TestBackupRestoreWaitCouldNotWaitIsNotFailed: backup --wait and restore --wait exit as wait
// does when the wait cannot run (no status directory, or a file in its place): 3 at once, not
// 1 ("the backup failed") and not the whole 30-minute timeout's 2. The request is recorded
// either way, as apply --wait applies before it waits.
func TestBackupRestoreWaitCouldNotWaitIsNotFailed(t *testing.T) {
	e := newCLIEnv(t)
	path, _ := e.specFile("ch-10", body)
	if _, _, code, err := e.run(context.Background(), "apply", path); code != 0 {
		t.Fatal(err)
	}
	notADir := filepath.Join(e.files, "status-is-a-file")
	if err := os.WriteFile(notADir, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, status := range []string{filepath.Join(e.files, "no-such-status"), notADir} {
		e.status = status
		for _, args := range [][]string{
			{"backup", "ch-10", "--wait", "--timeout", "3s"},
			{"restore", "ch-10", "--wait", "--timeout", "3s"},
		} {
			start := time.Now()
			_, _, code, err := e.run(context.Background(), args...)
			if code != exitNoWait || err == nil || !strings.Contains(err.Error(), "pass --status DIR") || time.Since(start) > 2*time.Second {
				t.Errorf("%v with --status %s: exit %d after %s (%v); want %d at once saying to pass --status",
					args, filepath.Base(status), code, time.Since(start).Round(time.Millisecond), err, exitNoWait)
			}
		}
	}
	d, err := spec.LoadApp(e.specs, "ch-10", spec.Defaults{})
	if err != nil || d == nil || d.Spec.Backup == nil || d.Spec.Backup.RequestedAt == "" || d.Spec.Backup.Restore == nil {
		t.Errorf("the requests were not recorded before the wait: %+v, %v", d, err)
	}
}
