package controller

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/swarm-reconciler/reconciler/spec"
)

// Backups and restores, decided. An app that converged and is stable may have one job due:
// the backup tier's backup, then its restore; a backup or restore a person asked for
// (`reconciler backup`, `reconciler restore`: a new requestedAt in the spec); a scheduled
// backup. A pass carries out at most one, whole, inside the pass (runJob), with the status
// saying Running first: a pass that finds a run still Running is the first after the process
// that ran it died.

// The triggers of a backup run.
const (
	triggerTier     = "tier"
	triggerRequest  = "request"
	triggerSchedule = "schedule"
)

// The backup tier's stages (spec.Status.BackupStage).
const (
	stageRestore = "restore"
	stageDone    = "done"
)

// backupJob is one backup or restore to carry out.
type backupJob struct {
	Restore bool
	Trigger string
	// Request is the requestedAt value the job carries out, for a request.
	Request string
	// ID is the backup to make, or to restore.
	ID string
	// Before and After are the spec's checks run around it (the backup tier's only).
	Before, After []spec.Check
	// Keep, after a backup, is how many complete backups of the app to keep (0: all).
	Keep int
	// PostHooks, set alone, are the services whose restore post-hook is owed: their pre-hook
	// ran in a restore that the process's death cut short.
	PostHooks []string
	// Retry is a restore asked of an app Failed by a restore that began to write: any end but
	// a completed restore leaves it Failed.
	Retry bool
}

// decideJobs decides for an app that converged and is stable, with d's phase and message
// what the app is when no job is due (Ready and swarm's verdict): a job when one is due,
// else d, with After no later than the schedule's next backup.
func decideJobs(w *world, d decision, s *spec.Spec, ready string) decision {
	st := d.Status
	b := s.Backup
	if b == nil {
		b = &spec.Backup{}
	}
	d = interrupted(d, w.Committed, b.Keep, w.Now, ready)
	if d.Phase == spec.PhaseFailed {
		return d
	}
	tier := s.Tier == spec.TierBackup && st.BackupStage != stageDone
	// Only what is still to be done needs the plan: a request carried out long ago does not
	// make a later release without backup labels Invalid.
	backupDue := b.RequestedAt != "" && b.RequestedAt != st.LastHandledBackupAt
	restoreDue := b.Restore != nil && b.Restore.RequestedAt != st.LastHandledRestoreAt
	if (tier || backupDue || restoreDue || b.Schedule != "") && w.BackupErr != nil {
		return d.to(spec.PhaseInvalid, w.BackupErr.Error())
	}
	if (tier || backupDue || b.Schedule != "") && !w.Backup.Enabled() {
		what := "tier backup"
		if !tier {
			what = "backup"
		}
		return d.to(spec.PhaseInvalid, fmt.Sprintf("%s: recipe %s declares no backup (no service has the label backupbot.backup=true): test it with tier install, or add the labels to the recipe", what, s.Recipe))
	}
	switch {
	case tier && st.BackupStage == stageRestore && st.LastBackup != nil && st.LastBackup.State == spec.RunCompleted:
		return d.startJob(w, backupJob{Restore: true, Trigger: triggerTier, ID: st.LastBackup.ID,
			Before: b.Checks.BeforeRestore, After: b.Checks.AfterRestore},
			ready, fmt.Sprintf("backup tier: restoring backup %s", st.LastBackup.ID))
	case tier:
		return d.startJob(w, backupJob{Trigger: triggerTier, ID: newBackupID(w, st), Before: b.Checks.BeforeBackup, Keep: b.Keep},
			ready, "backup tier: backing up")
	}
	d = d.to(spec.PhaseReady, ready)
	if restoreDue {
		id := b.Restore.ID
		if id == "" && len(w.Backups) > 0 && w.BackupsErr == nil {
			// The newest only when every backup could be read: an unreadable manifest may be
			// the newest, and restoring an older one would be a silent step back.
			id = w.Backups[len(w.Backups)-1].ID
		}
		if id == "" {
			st.LastHandledRestoreAt = b.Restore.RequestedAt
			now := w.Now
			why := fmt.Sprintf("no backup of %s to restore: make one with `reconciler backup %s`", w.App, w.App)
			if w.BackupsErr != nil {
				why = fmt.Sprintf("the backups of %s cannot all be read, so which is the newest is not known (%v): name the one to restore with `reconciler restore %s ID`", w.App, w.BackupsErr, w.App)
			}
			replaceRestore(st, &spec.BackupRun{Trigger: triggerRequest, Request: b.Restore.RequestedAt, State: spec.RunFailed,
				Started: now, Finished: &now, Message: why})
			d.Milestone = true
			if d.RestoreRetry {
				return d.to(spec.PhaseFailed, "restore not done: "+why+"; the volumes may still hold part of the restore that failed before")
			}
			return d.to(d.Phase, "restore not done: "+st.LastRestore.Message)
		}
		return d.startJob(w, backupJob{Restore: true, Trigger: triggerRequest, Request: b.Restore.RequestedAt, ID: id, Retry: d.RestoreRetry}, ready,
			fmt.Sprintf("%s; restoring backup %s as requested", ready, id))
	}
	if backupDue {
		return d.startJob(w, backupJob{Trigger: triggerRequest, Request: b.RequestedAt, ID: newBackupID(w, st), Keep: b.Keep}, ready,
			ready+"; backing up as requested")
	}
	if b.Schedule == "" {
		return d
	}
	next, err := nextBackup(b, st, w.Now)
	if err != nil {
		return d.to(spec.PhaseInvalid, err.Error())
	}
	if next.IsZero() {
		return d // a schedule that never comes (validated against, but time moves on)
	}
	if w.Now.Before(next) {
		if wait := next.Sub(w.Now) + time.Millisecond; d.After <= 0 || wait < d.After {
			d.After = wait
		}
		return d
	}
	return d.startJob(w, backupJob{Trigger: triggerSchedule, ID: newBackupID(w, st), Keep: b.Keep}, ready, ready+"; scheduled backup")
}

// newBackupID names the backup a pass begins: after the app's last one, which the status
// names, and after the newest in the store when the pass listed them (spec.NextBackupID).
func newBackupID(w *world, st *spec.Status) string {
	last := ""
	if st.LastBackup != nil {
		last = st.LastBackup.ID
	}
	if n := len(w.Backups); n > 0 && w.Backups[n-1].ID > last {
		last = w.Backups[n-1].ID
	}
	return spec.NextBackupID(w.Now, last)
}

// restoreRetried reports an app Failed by a requested restore that began to write (cut short,
// or its data not read back as stored) whose spec asks for a restore again: what the Failed
// message tells a person to do.
func restoreRetried(s *spec.Spec, st *spec.Status) bool {
	r := st.LastRestore
	return st.Phase == spec.PhaseFailed && r != nil && r.State == spec.RunFailed && r.Trigger == triggerRequest &&
		strings.HasPrefix(st.Message, "restore ") &&
		s.Backup != nil && s.Backup.Restore != nil && s.Backup.Restore.RequestedAt != st.LastHandledRestoreAt
}

// refuseRequests answers the backup and restore requests of an app in a final phase: each is
// recorded as handled and failed, saying why, so `reconciler backup|restore --wait` ends.
func refuseRequests(d decision, s *spec.Spec, now time.Time) decision {
	st, b := d.Status, s.Backup
	if b == nil {
		return d
	}
	why := fmt.Sprintf("not carried out: the app is %s (%s); fix its spec first", st.Phase, st.Message)
	refuse := func(request string) *spec.BackupRun {
		d.Milestone = true
		return &spec.BackupRun{Trigger: triggerRequest, Request: request, State: spec.RunFailed, Started: now, Finished: &now, Message: why}
	}
	if b.RequestedAt != "" && b.RequestedAt != st.LastHandledBackupAt {
		st.LastHandledBackupAt, st.LastBackup = b.RequestedAt, refuse(b.RequestedAt)
	}
	if r := b.Restore; r != nil && r.RequestedAt != st.LastHandledRestoreAt {
		st.LastHandledRestoreAt = r.RequestedAt
		replaceRestore(st, refuse(r.RequestedAt))
	}
	return d
}

// nextBackup is when b's schedule makes the app's next backup, counted from the end of its
// last backup (a requested backup that ran across the schedule's time stands for that slot:
// no second backup right after it), else its first deploy, else its attempt's start, else
// now; zero when it never will.
func nextBackup(b *spec.Backup, st *spec.Status, now time.Time) (time.Time, error) {
	sched, err := spec.ParseSchedule(b.Schedule)
	if err != nil {
		return time.Time{}, err
	}
	base := now
	switch {
	case st.LastBackup != nil && st.LastBackup.Trigger == triggerSchedule && st.LastBackup.State == spec.RunFailed &&
		(st.LastBackup.Interrupted || strings.HasPrefix(st.LastBackup.Message, backupInterrupted)): // the prefix: a status of before the field
		// The process died making its slot's backup, which kept nothing: the slot is still owed.
		return st.LastBackup.Started, nil
	case st.LastBackup != nil && st.LastBackup.Finished != nil:
		base = *st.LastBackup.Finished
	case st.LastBackup != nil:
		base = st.LastBackup.Started
	case st.FirstDeployedAt != nil:
		base = *st.FirstDeployedAt
	case st.AttemptStartedAt != nil:
		base = *st.AttemptStartedAt
	}
	return sched.Next(base), nil
}

// jobDue reports a Ready app with a backup or restore to do by now: a run its status says is
// Running (its process died), a request not carried out, a scheduled backup whose time came.
// The timers of a pass die with the process, so a resync must find these.
func jobDue(s *spec.Spec, st *spec.Status, now time.Time) bool {
	if r := st.LastBackup; r != nil && r.State == spec.RunRunning {
		return true
	}
	if r := st.LastRestore; r != nil && r.State == spec.RunRunning {
		return true
	}
	b := s.Backup
	switch {
	case b == nil:
		return false
	case b.RequestedAt != "" && b.RequestedAt != st.LastHandledBackupAt,
		b.Restore != nil && b.Restore.RequestedAt != st.LastHandledRestoreAt:
		return true
	case b.Schedule == "":
		return false
	}
	next, err := nextBackup(b, st, now)
	return err != nil || !next.IsZero() && !now.Before(next)
}

// interrupted ends the runs the status shows as Running: the process that ran them died. A
// backup found whole in the store (committed) completed; any other interrupted backup kept
// nothing (its leftovers are removed at start-up) and is made again when it is still due. An
// interrupted restore left the volumes with part of the backup: the app is Failed, saying so.
// keep is the spec's: the committed backup's pruning died with the process too.
func interrupted(d decision, committed *spec.BackupManifest, keep int, now time.Time, ready string) decision {
	st := d.Status
	if r := st.LastBackup; r != nil && r.State == spec.RunRunning {
		if committed != nil && committed.ID == r.ID {
			// Whole in the store: the process died after the commit, before saying so.
			r.Volumes, r.Files, r.Bytes = nil, committed.Files(), committed.Bytes()
			for _, v := range committed.Volumes {
				r.Volumes = append(r.Volumes, spec.VolumeRun{Name: v.Name, Paths: v.Paths, Files: len(v.Files), Bytes: v.Bytes})
			}
			d.Job, d.JobReady = &backupJob{Trigger: r.Trigger, Request: r.Request, ID: r.ID, Keep: keep}, ready
			d = finishJob(d, r, nil, now)
			d.Job = nil
		} else {
			r.State, r.Finished, r.Interrupted = spec.RunFailed, &now, true
			r.Message = backupInterrupted + "; nothing of it was kept"
		}
	}
	if r := st.LastRestore; r != nil && r.State == spec.RunRunning {
		r.State, r.Finished, r.Interrupted = spec.RunFailed, &now, true
		r.Message = fmt.Sprintf("%s %s; the volumes may hold part of it: restore it again with `reconciler restore %s %s`", restoreInterrupted, r.ID, st.App, r.ID)
		if r.Trigger == triggerTier {
			// A request to an app Failed by the tier is refused (restoreRetried): a new
			// generation is what runs the tier's restore, with its checks, again.
			r.Message = fmt.Sprintf("%s %s; the volumes may hold part of it: change the spec (a new generation), and the backup tier restores it again", restoreInterrupted, r.ID)
		}
		if r.Trigger == triggerRequest {
			st.LastHandledRestoreAt = r.Request
		}
		d = d.to(spec.PhaseFailed, "restore "+r.Message)
		if owed := owedAfter(r); len(owed) > 0 {
			r.PostHooksOwed = owed
			d.Job, d.JobReady = &backupJob{Restore: true, Trigger: r.Trigger, Request: r.Request, ID: r.ID, PostHooks: owed}, ready
		}
		return d
	}
	return d
}

// endEarlierRestore ends a restore the status shows Running when the app starts a new life:
// the process that ran it died, and the app was torn down before another looked at it. The
// volumes it wrote to are gone, and so are the containers whose post-hooks it owed: it is
// recorded as interrupted, and fails nothing of the new install (interrupted would make it
// Failed, and run those post-hooks in its new containers).
func endEarlierRestore(st *spec.Status, now time.Time) {
	r := st.LastRestore
	if r == nil {
		return
	}
	r.PostHooksOwed = nil // an earlier life's, which a retry had not reached yet
	if r.State != spec.RunRunning {
		return
	}
	r.State, r.Finished, r.Interrupted = spec.RunFailed, &now, true
	r.Message = fmt.Sprintf("interrupted: the reconciler stopped during the restore of backup %s, and the app was torn down before it ran again", r.ID)
	if r.Trigger == triggerRequest {
		st.LastHandledRestoreAt = r.Request
	}
}

// restoreInterrupted begins the message of a restore whose process died, before its ID.
const restoreInterrupted = "interrupted: the reconciler stopped during the restore of backup"

// backupInterrupted begins the message of a backup whose process died.
const backupInterrupted = "interrupted: the reconciler stopped during the backup"

// owedPostHooks are the services whose restore pre-hook a run records with no post-hook
// run after it: the post-hook runs whenever its pre-hook ran, also after the process died.
func owedPostHooks(hooks []spec.HookRun) []string {
	var owed []string
	for _, h := range hooks {
		switch h.Hook {
		case hookRestorePre:
			if !slices.Contains(owed, h.Service) {
				owed = append(owed, h.Service)
			}
		case hookRestorePost:
			if h.NotRun {
				continue // refused by its container (stopped, gone): still owed
			}
			owed = slices.DeleteFunc(owed, func(s string) bool { return s == h.Service })
		}
	}
	return owed
}

// stillOwedPostHooks are the services whose restore post-hook the app's interrupted restore
// still owes (spec.BackupRun.PostHooksOwed): no run of them has reached a container yet.
func stillOwedPostHooks(st *spec.Status) []string {
	switch st.Phase {
	case spec.PhaseInvalid, spec.PhaseDeleting, spec.PhaseDeleted, spec.PhaseExpired:
		return nil // no plan to run them by, or no containers left to run them in
	}
	if r := st.LastRestore; r != nil && r.State != spec.RunRunning {
		return r.PostHooksOwed
	}
	return nil
}

// owedAgain gives d the job of the restore post-hooks the app's interrupted restore still
// owes, unless it has a job: a pre-hook's maintenance mode may be what keeps the app from
// converging, or from the stability a restore asked again waits for.
func owedAgain(d decision) decision {
	if owed := stillOwedPostHooks(d.Status); len(owed) > 0 && d.Job == nil {
		r := d.Status.LastRestore
		d.Job = &backupJob{Restore: true, Trigger: r.Trigger, Request: r.Request, ID: r.ID, PostHooks: owed}
	}
	return d
}

// replaceRestore makes run the app's last restore. The post-hooks the run it replaces still
// owes go with it: they are owed to the containers its pre-hooks changed, not to that run.
func replaceRestore(st *spec.Status, run *spec.BackupRun) {
	if old := st.LastRestore; old != nil && old.State != spec.RunRunning {
		run.PostHooksOwed = slices.Clone(old.PostHooksOwed)
	}
	st.LastRestore = run
}

// owedAfter are the services whose restore post-hook is owed after run: those carried over
// (replaceRestore) whose post-hook it did not run, and those whose pre-hook it ran with no
// post-hook run after it (owedPostHooks).
func owedAfter(run *spec.BackupRun) []string {
	owed := owedPostHooks(run.Hooks)
	for _, s := range run.PostHooksOwed {
		ran := slices.ContainsFunc(run.Hooks, func(h spec.HookRun) bool {
			return h.Service == s && h.Hook == hookRestorePost && !h.NotRun
		})
		if !ran && !slices.Contains(owed, s) {
			owed = append(owed, s)
		}
	}
	return owed
}

// postHooksNote begins what the messages say of the post-hooks an interrupted restore owed.
const postHooksNote = "; the restore post-hooks of "

// owedPostHooksRun folds the run of the post-hooks an interrupted restore owed into the
// Failed decision that found it: they are said after the interruption, in place of what an
// earlier run of them said. Those that reached no container are tried again (owedAgain).
func owedPostHooksRun(d decision, job *backupJob, err error) decision {
	d.Job = nil
	run := d.Status.LastRestore
	note := fmt.Sprintf("%s%s, owed since, ran", postHooksNote, strings.Join(job.PostHooks, ", "))
	if err != nil {
		note = fmt.Sprintf("%s%s, owed since, failed: %v", postHooksNote, strings.Join(job.PostHooks, ", "), err)
	}
	// Those that reached no container stay owed (a post-hook run, whatever its exit, is
	// recorded after its pre-hook).
	run.PostHooksOwed = slices.DeleteFunc(owedAfter(run), func(s string) bool { return !slices.Contains(job.PostHooks, s) })
	if len(run.PostHooksOwed) > 0 {
		note += fmt.Sprintf("; %s tried again every %s", strings.Join(run.PostHooksOwed, ", "), owedRetry)
		if d.After <= 0 || d.After > owedRetry {
			d.After = owedRetry
		}
	}
	base, first, _ := strings.Cut(run.Message, postHooksNote)
	msg, _, _ := strings.Cut(d.Message, postHooksNote)
	who := strings.Join(job.PostHooks, ", ")
	if first != "" && !strings.HasPrefix(first, who+", owed since") {
		// The first run of them was of more services: what it said stays, before this run's
		// (a post-hook that failed there may have left its service in maintenance).
		first, _, _ = strings.Cut(first, postHooksNote)
		first, _, _ = strings.Cut(first, "; "+who+" tried again every")
		note = postHooksNote + first + note
	}
	// Kept in the history when it says something new, not at every try.
	d.Milestone = d.Milestone || base+note != run.Message
	run.Message = base + note
	return d.to(d.Phase, msg+note)
}

// owedRetry is how often a post-hook owed that found no container of its service is tried
// again.
const owedRetry = 10 * time.Second

// startJob records the job as Running in the status, written before the job starts, and
// hands it to runJob.
func (d decision) startJob(w *world, job backupJob, ready, msg string) decision {
	run := &spec.BackupRun{ID: job.ID, Trigger: job.Trigger, Request: job.Request, State: spec.RunRunning, Started: w.Now}
	if job.Restore {
		replaceRestore(d.Status, run)
	} else {
		d.Status.LastBackup = run
	}
	d.Job, d.JobReady, d.Persist = &job, ready, true
	if job.Trigger == triggerTier {
		phase := d.Phase
		if phase == spec.PhasePending || phase == spec.PhaseReady {
			phase = spec.PhaseDeploying
		}
		return d.to(phase, msg)
	}
	return d.to(d.Phase, msg)
}

// finishJob folds a job's end into the decision: the run's state, the request it carried
// out, the backup tier's next stage. A backup tier's failure is the app's; a requested or
// scheduled run that failed is the run's, recorded in the history, and the app stays as it is.
func finishJob(d decision, run *spec.BackupRun, err error, now time.Time) decision {
	st, job, ready := d.Status, d.Job, d.JobReady
	d.Job = nil
	run.Finished = &now
	if job.Restore {
		run.PostHooksOwed = owedAfter(run) // those carried over that this restore did not run
	}
	if job.Trigger == triggerRequest {
		if job.Restore {
			st.LastHandledRestoreAt = job.Request
		} else {
			st.LastHandledBackupAt = job.Request
		}
	}
	what := "backup " + run.ID
	if job.Restore {
		what = "restore of backup " + run.ID
	}
	if err != nil {
		run.State, run.Message = spec.RunFailed, err.Error()
		if job.Trigger == triggerTier {
			return d.to(spec.PhaseFailed, fmt.Sprintf("backup tier: %s failed: %s", what, err))
		}
		var partial partialRestore
		if errors.As(err, &partial) {
			// Like a restore cut short: the volumes hold part of the backup.
			run.Message = fmt.Sprintf("%s; the volumes may hold part of backup %s: restore it again with `reconciler restore %s %s`", err, run.ID, st.App, run.ID)
			if errors.As(err, new(damagedArchive)) {
				run.Message = fmt.Sprintf("%s; the volumes may hold part of backup %s (list the others with `reconciler backups %s`)", err, run.ID, st.App)
			}
			return d.to(spec.PhaseFailed, fmt.Sprintf("%s failed after it began to write: %s", what, run.Message))
		}
		if job.Retry {
			return d.to(spec.PhaseFailed, fmt.Sprintf("%s failed: %s; the volumes may still hold part of the restore that failed before", what, err))
		}
		d.Milestone = true
		return d.to(spec.PhaseReady, fmt.Sprintf("%s; %s failed: %s", ready, what, err))
	}
	run.State = spec.RunCompleted
	run.Message = fmt.Sprintf("%d files, %s in %d volumes", run.Files, byteSize(run.Bytes), len(run.Volumes))
	if !job.Restore {
		d.KeepBackups = job.Keep
	}
	switch {
	case job.Trigger == triggerTier && !job.Restore:
		st.BackupStage = stageRestore
		d.After = time.Millisecond // the restore is next
		d.Milestone = true
		return d.to(d.Phase, fmt.Sprintf("backup tier: backup %s done (%s); restoring it next", run.ID, run.Message))
	case job.Trigger == triggerTier:
		st.BackupStage = stageDone
		d.After = time.Millisecond
		return d.to(spec.PhaseReady, fmt.Sprintf("%s; backup tier: backup %s restored and verified (%s)", ready, run.ID, run.Message))
	}
	d.After = time.Millisecond // another job may be due
	return d.to(spec.PhaseReady, fmt.Sprintf("%s; %s done (%s)", ready, what, run.Message))
}

// byteSize writes n bytes for a person.
func byteSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
