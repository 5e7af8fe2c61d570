package controller

import (
	"context"
	"io"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"

	"github.com/swarm-reconciler/reconciler/spec"
)

// hangingArchive is the fake backup engine whose volume reads hang until their context ends
// (a large volume, a slow disk), when armed.
type hangingArchive struct {
	*fakeBackup
	hang atomic.Bool
}

func (h *hangingArchive) CopyFromContainer(ctx context.Context, cid, src string) (io.ReadCloser, container.PathStat, error) {
	if h.hang.Load() {
		<-ctx.Done()
		return nil, container.PathStat{}, ctx.Err()
	}
	return h.fakeBackup.CopyFromContainer(ctx, cid, src)
}

// TestOnceTimeoutLeavesABackupJobRunning: `reconciler once --timeout` ending while a backup
// tier's backup runs is the process stopping, not the job failing: the job is left Running
// (the next process says it was interrupted and makes it again), not recorded as Failed "not
// done within the spec's timeout", which makes the app Failed, final for its generation.
func TestOnceTimeoutLeavesABackupJobRunning(t *testing.T) {
	f, fb := newBackupFixture(t, nil)
	h := &hangingArchive{fakeBackup: fb}
	f.r.BackupEngine = h
	f.writeSpec("a", backupTierSpec)
	seed(f, fb)
	killedAt(f, "read volume") // an earlier process died in the backup: the next pass makes it again
	h.hang.Store(true)

	c := &Controller{R: f.r, Workers: 1}
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond) // once --timeout 300ms
	defer cancel()
	_, unsettled, _ := c.RunOnce(ctx)
	st, err := spec.ReadStatus(f.r.StatusDir, "a")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("unsettled %v; phase %s: %s; lastBackup %+v", unsettled, st.Phase, st.Message, st.LastBackup)
	if !slices.Contains(unsettled, "a") {
		t.Errorf("unsettled %v: the app whose backup the timeout cut short is not named (once would exit 0 on a %s app)", unsettled, st.Phase)
	}
	if st.Phase == spec.PhaseFailed || strings.Contains(st.Message, "spec's timeout") ||
		st.LastBackup == nil || st.LastBackup.State != spec.RunRunning {
		t.Errorf("once's --timeout during a backup: phase %s: %q; lastBackup %+v; want the job left Running, the app not Failed",
			st.Phase, st.Message, st.LastBackup)
	}
}

// TestRunOnceAgainJudgesFailedApps: `reconciler once` exits 1 "if any app is Failed or
// Invalid" (README, DESIGN), judging the apps RunOnce returns. A second once over the same
// specs (a CI job retried) must still see the app that the first one left Invalid or Failed:
// it is the same app, the same spec, the same verdict.
func TestRunOnceAgainJudgesFailedApps(t *testing.T) {
	f := newFixture(t)
	f.writeSpec("bad", "recipe: nosuchrecipe\nversion: 1.0.0+1\n")
	f.writeSpec("good", "recipe: echo\nversion: 1.0.0+1\nminReady: 0s\n")
	c := &Controller{R: f.r, Workers: 2}
	for run := 1; run <= 2; run++ {
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
		apps, unsettled, err := c.RunOnce(ctx)
		cancel()
		st, _ := spec.ReadStatus(f.r.StatusDir, "bad")
		t.Logf("once #%d: apps %v, unsettled %v, err %v; bad is %s", run, apps, unsettled, err, st.Phase)
		if st.Phase != spec.PhaseInvalid {
			t.Fatalf("once #%d: bad is %s, want Invalid", run, st.Phase)
		}
		if !slices.Contains(apps, "bad") {
			t.Errorf("once #%d: apps %v: the Invalid app is not among them, so `reconciler once` exits 0 with an Invalid app", run, apps)
		}
	}
}
