package controller

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/swarm-reconciler/reconciler/manifests"
	"github.com/swarm-reconciler/reconciler/spec"
)

// TestDecideJobs is the table of decideJobs: which backup or restore a converged, stable app
// runs in a pass, and what the status says meanwhile.
func TestDecideJobs(t *testing.T) {
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	earlier := now.Add(-time.Hour)
	monthAgo := now.AddDate(0, -1, 0)
	plan := &manifests.BackupPlan{Services: []manifests.BackupService{{Name: "app"}}}
	done := func(id string) *spec.BackupRun {
		return &spec.BackupRun{ID: id, Trigger: triggerTier, State: spec.RunCompleted, Started: earlier}
	}
	running := func(id, trigger string) *spec.BackupRun {
		return &spec.BackupRun{ID: id, Trigger: trigger, State: spec.RunRunning, Started: earlier}
	}
	tests := []struct {
		name      string
		spec      spec.Spec
		st        spec.Status
		phase     spec.Phase // the phase before decideJobs; "" is Ready
		plan      *manifests.BackupPlan
		planErr   error
		backups   []*spec.BackupManifest
		committed *spec.BackupManifest

		wantPhase   spec.Phase
		wantJob     string // "backup tier", "restore request 20261201T...", "" for none
		wantAfter   time.Duration
		wantMessage string
	}{
		{name: "install tier without backups: Ready, nothing to run", spec: spec.Spec{Tier: spec.TierInstall},
			wantPhase: spec.PhaseReady},
		{name: "backup tier, first: a backup with its checks, still Deploying", spec: spec.Spec{Tier: spec.TierBackup,
			Backup: &spec.Backup{Keep: 2, Checks: spec.BackupChecks{BeforeBackup: []spec.Check{{Service: "app", Run: "true"}}}}}, phase: spec.PhasePending,
			wantPhase: spec.PhaseDeploying, wantJob: "backup tier " + spec.NewBackupID(now) + " 1 checks keep 2", wantMessage: "backup tier: backing up"},
		{name: "backup tier, backed up: its restore", spec: spec.Spec{Tier: spec.TierBackup}, phase: spec.PhaseDeploying,
			st:        spec.Status{BackupStage: stageRestore, LastBackup: done("20261201T090000.000Z")},
			wantPhase: spec.PhaseDeploying, wantJob: "restore tier 20261201T090000.000Z"},
		{name: "backup tier done: Ready", spec: spec.Spec{Tier: spec.TierBackup},
			st: spec.Status{BackupStage: stageDone, LastBackup: done("20261201T090000.000Z")}, wantPhase: spec.PhaseReady},
		{name: "a recipe without backup labels cannot have the tier", spec: spec.Spec{Tier: spec.TierBackup, Recipe: "r"}, plan: &manifests.BackupPlan{},
			wantPhase: spec.PhaseInvalid, wantMessage: "recipe r declares no backup"},
		{name: "labels that mean nothing are Invalid", spec: spec.Spec{Tier: spec.TierBackup}, planErr: errors.New("label x"),
			wantPhase: spec.PhaseInvalid, wantMessage: "label x"},
		{name: "a new request: one backup", spec: spec.Spec{Backup: &spec.Backup{RequestedAt: "r2"}}, st: spec.Status{LastHandledBackupAt: "r1"},
			wantPhase: spec.PhaseReady, wantJob: "backup request " + spec.NewBackupID(now)},
		{name: "an app deployed a month ago, far past its timeout: a request is still a backup", spec: spec.Spec{Timeout: spec.Duration{Duration: time.Minute}, Backup: &spec.Backup{RequestedAt: "r9"}},
			st:        spec.Status{AttemptStartedAt: &monthAgo, FirstDeployedAt: &monthAgo},
			wantPhase: spec.PhaseReady, wantJob: "backup request " + spec.NewBackupID(now)},
		{name: "no backup in the status, a later one in the store (a clock set back): the new ID follows the store's", spec: spec.Spec{Backup: &spec.Backup{RequestedAt: "r2"}},
			backups:   []*spec.BackupManifest{{ID: "20261201T110000.000Z"}},
			wantPhase: spec.PhaseReady, wantJob: "backup request 20261201T110000.001Z"},
		{name: "a handled request: nothing", spec: spec.Spec{Backup: &spec.Backup{RequestedAt: "r1"}}, st: spec.Status{LastHandledBackupAt: "r1"},
			wantPhase: spec.PhaseReady},
		{name: "a restore of the newest backup", spec: spec.Spec{Backup: &spec.Backup{Restore: &spec.RestoreRequest{RequestedAt: "q"}}},
			backups:   []*spec.BackupManifest{{ID: "20261201T080000.000Z"}, {ID: "20261201T090000.000Z"}},
			wantPhase: spec.PhaseReady, wantJob: "restore request 20261201T090000.000Z"},
		{name: "a restore with nothing to restore: the run fails, the app stays", spec: spec.Spec{Backup: &spec.Backup{Restore: &spec.RestoreRequest{RequestedAt: "q"}}},
			wantPhase: spec.PhaseReady, wantMessage: "restore not done: no backup of a to restore"},
		{name: "a schedule not yet due: come back at its next time", spec: spec.Spec{Backup: &spec.Backup{Schedule: "@every 2h"}},
			st:        spec.Status{LastBackup: &spec.BackupRun{ID: "x", State: spec.RunCompleted, Started: earlier}},
			wantPhase: spec.PhaseReady, wantAfter: time.Hour + time.Millisecond},
		{name: "a schedule due", spec: spec.Spec{Backup: &spec.Backup{Schedule: "@every 30m"}},
			st:        spec.Status{LastBackup: &spec.BackupRun{ID: "x", State: spec.RunCompleted, Started: earlier}},
			wantPhase: spec.PhaseReady, wantJob: "backup schedule " + spec.NewBackupID(now)},
		{name: "a schedule counts from the first deploy", spec: spec.Spec{Backup: &spec.Backup{Schedule: "@every 2h"}},
			st:        spec.Status{FirstDeployedAt: &earlier},
			wantPhase: spec.PhaseReady, wantAfter: time.Hour + time.Millisecond},
		{name: "a restore cut short: Failed, saying so", spec: spec.Spec{Tier: spec.TierBackup},
			st:        spec.Status{BackupStage: stageRestore, LastBackup: done("20261201T090000.000Z"), LastRestore: running("20261201T090000.000Z", triggerTier)},
			wantPhase: spec.PhaseFailed, wantMessage: "restore interrupted: the reconciler stopped during the restore of backup 20261201T090000.000Z"},
		{name: "a backup cut short before its commit: made again", spec: spec.Spec{Tier: spec.TierBackup}, phase: spec.PhaseDeploying,
			st:        spec.Status{LastBackup: running("20261201T090000.000Z", triggerTier)},
			wantPhase: spec.PhaseDeploying, wantJob: "backup tier " + spec.NewBackupID(now)},
		{name: "a backup cut short after its commit: completed, then restored", spec: spec.Spec{Tier: spec.TierBackup}, phase: spec.PhaseDeploying,
			st:        spec.Status{LastBackup: running("20261201T090000.000Z", triggerTier)},
			committed: &spec.BackupManifest{ID: "20261201T090000.000Z"},
			wantPhase: spec.PhaseDeploying, wantJob: "restore tier 20261201T090000.000Z"},
		{name: "a requested backup cut short after its commit: handled, not made again", spec: spec.Spec{Backup: &spec.Backup{RequestedAt: "r1"}},
			st:        spec.Status{LastBackup: &spec.BackupRun{ID: "20261201T090000.000Z", Trigger: triggerRequest, Request: "r1", State: spec.RunRunning}},
			committed: &spec.BackupManifest{ID: "20261201T090000.000Z"},
			wantPhase: spec.PhaseReady},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := tt.st
			st.App = "a"
			w := &world{App: "a", Now: now, Backup: plan, BackupErr: tt.planErr, Backups: tt.backups, Committed: tt.committed}
			if tt.plan != nil {
				w.Backup = tt.plan
			}
			phase := tt.phase
			if phase == "" {
				phase = spec.PhaseReady
			}
			d := decideJobs(w, decision{Status: &st, Phase: phase, Message: "1/1 services converged"}, &tt.spec, "1/1 services converged")
			if d.Phase != tt.wantPhase {
				t.Errorf("phase %s, want %s (%s)", d.Phase, tt.wantPhase, d.Message)
			}
			job := ""
			if d.Job != nil {
				kind := "backup"
				if d.Job.Restore {
					kind = "restore"
				}
				job = kind + " " + d.Job.Trigger + " " + d.Job.ID
				if n := len(d.Job.Before) + len(d.Job.After); n > 0 || d.Job.Keep > 0 {
					job += fmt.Sprintf(" %d checks keep %d", n, d.Job.Keep)
				}
				if !d.Persist {
					t.Error("a job whose Running status is not written first")
				}
			}
			if job != tt.wantJob {
				t.Errorf("job %q, want %q", job, tt.wantJob)
			}
			if d.Job != nil && d.Job.Trigger != triggerTier && (d.Job.Before != nil || d.Job.After != nil) {
				t.Errorf("the spec's checks run around a %s run: %+v", d.Job.Trigger, d.Job)
			}
			if tt.wantAfter != 0 && d.After != tt.wantAfter {
				t.Errorf("after %v, want %v", d.After, tt.wantAfter)
			}
			if !strings.Contains(d.Message, tt.wantMessage) {
				t.Errorf("message %q lacks %q", d.Message, tt.wantMessage)
			}
		})
	}
}

// TestRebase: an archive entry of the engine, named from the base name of the path asked for,
// named by its path in the volume; what is not under that path has none.
func TestRebase(t *testing.T) {
	tests := []struct {
		name, base, p string
		want          string // "" for none
	}{
		{"data", "data", "", ""}, // the volume's root itself
		{"data/", "data", "", ""},
		{"data/a", "data", "", "a"},
		{"./data/sub/b", "data", "", "sub/b"},
		{"backup.sql", "backup.sql", "backup.sql", "backup.sql"},
		{"b", "b", "a/b", "a/b"},
		{"b/c/", "b", "a/b", "a/b/c"},
		{"database/x", "data", "", ""},
		{"other", "data", "", ""},
		{"data/../../etc/passwd", "data", "", ""},
	}
	for _, tt := range tests {
		got, ok := rebase(tt.name, tt.base, tt.p)
		if got != tt.want || ok != (tt.want != "") {
			t.Errorf("rebase(%q, %q, %q) = %q, %v; want %q", tt.name, tt.base, tt.p, got, ok, tt.want)
		}
	}
}
