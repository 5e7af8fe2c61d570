package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/swarm-reconciler/reconciler/spec"
)

func backupCmd(o *options) *cobra.Command {
	var (
		wait    bool
		timeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "backup APP",
		Short: "Ask the reconciler for one backup of an app now",
		Long: "backup records a request in the spec file of APP (backup.requestedAt, written atomically as\n" +
			"apply writes); the reconciler carries it out once, on the recipe's backup-bot-two labels, and\n" +
			"reports it in the status's lastBackup. With --wait it waits for that backup and exits 0 when\n" +
			"it completed, 1 when it failed (its message is printed), 2 on timeout, 3 when it could not wait\n" +
			"(the status directory missing or unreadable).",
		Example: "  reconciler backup ch-1a2b3c --wait\n" +
			"  reconciler backups ch-1a2b3c",
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: completeApps(o),
		RunE: func(cmd *cobra.Command, args []string) error {
			return request(cmd, o, args[0], false, "", wait, timeout)
		},
	}
	cmd.Flags().BoolVar(&wait, "wait", false, "wait until the backup is done (exit 0), failed (1) or the timeout passed (2); 3: could not wait")
	cmd.Flags().DurationVar(&timeout, "timeout", 30*time.Minute, "with --wait: give up after this long (exit 2)")
	return cmd
}

func restoreCmd(o *options) *cobra.Command {
	var (
		wait    bool
		timeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "restore APP [BACKUP-ID]",
		Short: "Ask the reconciler to restore a backup of an app (the newest by default)",
		Long: "restore records a request in the spec file of APP (backup.restore), for BACKUP-ID or, without\n" +
			"it, the newest complete backup; the reconciler carries it out once: the recipe's restore hooks,\n" +
			"each volume written back through the container that mounts it, every restored file read back\n" +
			"and compared with the backup's manifest. The status's lastRestore reports it. With --wait it\n" +
			"exits 0 when the restore completed, 1 when it failed, 2 on timeout, 3 when it could not wait.",
		Example: "  reconciler restore ch-1a2b3c --wait\n" +
			"  reconciler restore ch-1a2b3c 20261201T100000.000Z --wait",
		Args:              cobra.RangeArgs(1, 2),
		ValidArgsFunction: completeApps(o),
		RunE: func(cmd *cobra.Command, args []string) error {
			id := ""
			if len(args) == 2 {
				id = args[1]
				if !spec.ValidBackupID(id) {
					return fmt.Errorf("%q is not a backup ID: `reconciler backups %s` lists them", id, args[0])
				}
				if _, err := (spec.BackupStore{Dir: o.backups}).Manifest(args[0], id); err != nil {
					return fmt.Errorf("%w (--backups %s)", err, o.backups)
				}
			}
			return request(cmd, o, args[0], true, id, wait, timeout)
		},
	}
	cmd.Flags().BoolVar(&wait, "wait", false, "wait until the restore is done (exit 0), failed (1) or the timeout passed (2); 3: could not wait")
	cmd.Flags().DurationVar(&timeout, "timeout", 30*time.Minute, "with --wait: give up after this long (exit 2)")
	return cmd
}

// request records the request and, with wait, polls the status until it was carried out.
func request(cmd *cobra.Command, o *options, app string, restore bool, id string, wait bool, timeout time.Duration) error {
	if err := spec.ValidateAppName(app); err != nil {
		return err
	}
	token := time.Now().UTC().Format(time.RFC3339Nano)
	gen, err := spec.Request(o.specs, app, restore, id, token, o.defaults(), o.deployed)
	if err != nil {
		return err
	}
	what := "backup"
	if restore {
		what = "restore"
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "%s of %s requested (requestedAt %s, generation %s)\n", what, app, token, gen)
	if !wait {
		return nil
	}
	// Recorded, as apply --wait applies before it waits; a wait that cannot run is wait's 3,
	// not the 1 that says the backup failed.
	if err := statusDirToWaitOn(o); err != nil {
		return &exitError{code: exitNoWait, err: err}
	}
	deadline := time.Now().Add(timeout)
	for {
		st, err := spec.ReadStatus(o.status, app)
		var broken error
		switch {
		case errors.Is(err, spec.ErrNotStatus):
			// Not a status (cut short by another tool, edited by hand): the reconciler writes
			// the live state over it, so it is waited out as a missing one is.
			broken, st = err, nil
		case err != nil && !errors.Is(err, fs.ErrNotExist):
			return &exitError{code: exitNoWait, err: err}
		}
		if st != nil {
			// The token is this request's alone, so a status that handled it ends the wait
			// whatever spec it describes since; a final phase only when of the request's spec.
			handled, run := st.LastHandledBackupAt, st.LastBackup
			if restore {
				handled, run = st.LastHandledRestoreAt, st.LastRestore
			}
			out := st.Outcome(what, token)
			switch {
			case out != nil && out.State == spec.RunCompleted:
				// Recorded as it ended, whatever runs (of later requests too) followed it.
				fmt.Fprintf(cmd.OutOrStdout(), "%s %s completed: %s\n", what, out.ID, out.Message)
				return nil
			case out != nil:
				return &exitError{code: exitFailed, err: fmt.Errorf("%s %s of %s failed: %s", what, out.ID, app, out.Message)}
			case handled == token && run != nil && run.Request != token:
				// Another run (a scheduled backup) followed the request's before this read.
				return requestOutcome(cmd, o, app, token, run)
			case handled == token && run != nil && run.State == spec.RunCompleted:
				fmt.Fprintf(cmd.OutOrStdout(), "%s %s completed: %s\n", what, run.ID, run.Message)
				return nil
			case handled == token && run != nil:
				return &exitError{code: exitFailed, err: fmt.Errorf("%s %s of %s failed: %s", what, run.ID, app, run.Message)}
			case st.ObservedGeneration == gen && st.Phase.Final():
				return &exitError{code: exitFailed, err: fmt.Errorf("%s is %s: %s", app, st.Phase, st.Message)}
			}
		}
		if why := requestGone(o, app, restore, token); why != "" && !requestTaken(o, app, restore, token) {
			return &exitError{code: exitFailed, err: fmt.Errorf("the %s of %s was not carried out: %s", what, app, why)}
		}
		if time.Now().After(deadline) {
			last := "no status of the spec with the request yet: is a reconciler running on " + o.specs + "?"
			if st != nil && st.ObservedGeneration == gen {
				last = fmt.Sprintf("%s: %s", st.Phase, st.Message)
			}
			if broken != nil {
				last = fmt.Sprintf("%v (no reconciler replaced it)", broken)
			}
			return &exitError{code: exitTimeout, err: fmt.Errorf("timed out after %s waiting for the %s of %s; last seen: %s", timeout, what, app, last)}
		}
		select {
		case <-cmd.Context().Done():
			return cmd.Context().Err()
		case <-time.After(waitPoll):
		}
	}
}

// requestGone says why a request that no status handled yet never will be: its spec was
// deleted, or replaced by one without it (an apply of another file); "" while it stands.
func requestGone(o *options, app string, restore bool, token string) string {
	d, err := spec.LoadApp(o.specs, app, o.defaults())
	switch {
	case err != nil || d != nil && d.Spec == nil:
		return "" // unreadable or invalid for now: the status will say
	case d == nil:
		return "its spec was deleted before the request was carried out"
	}
	b := d.Spec.Backup
	asked := b != nil && b.RequestedAt == token
	if restore {
		asked = b != nil && b.Restore != nil && b.Restore.RequestedAt == token
	}
	if asked {
		return ""
	}
	what := "backup"
	if restore {
		what = "restore"
	}
	return fmt.Sprintf("its spec was replaced by one without the request (an apply meanwhile?): ask again with reconciler %s %s", what, app)
}

// requestTaken reports, from a status read after the spec, whether the reconciler took the
// request up (its run under way, or handled): a spec replaced since does not undo it, and the
// wait goes on for its end.
func requestTaken(o *options, app string, restore bool, token string) bool {
	st, err := spec.ReadStatus(o.status, app)
	if err != nil {
		return false
	}
	handled, run := st.LastHandledBackupAt, st.LastBackup
	if restore {
		handled, run = st.LastHandledRestoreAt, st.LastRestore
	}
	// A run of the request that ended without handling it (the process died during it) is
	// not carried out again once the spec no longer asks: only one under way counts.
	what := "backup"
	if restore {
		what = "restore"
	}
	return handled == token || st.Outcome(what, token) != nil || run != nil && run.Request == token && run.State == spec.RunRunning
}

// requestOutcome judges a requested backup whose run the status no longer shows (a later run
// took its place in lastBackup): it completed if the store holds the backup made for it (its
// manifest names the request).
func requestOutcome(cmd *cobra.Command, o *options, app, token string, later *spec.BackupRun) error {
	list, err := spec.BackupStore{Dir: o.backups}.List(app)
	for _, m := range list {
		if m.Trigger == "request" && m.Request == token {
			fmt.Fprintf(cmd.OutOrStdout(), "backup %s completed: %d files, %d bytes (a %s run, %s, followed it)\n", m.ID, m.Files(), m.Bytes(), later.Trigger, later.ID)
			return nil
		}
	}
	if err != nil {
		return fmt.Errorf("the backup of %s was carried out and a %s run followed it; its outcome is read from the store, which cannot be listed: %w", app, later.Trigger, err)
	}
	return &exitError{code: exitFailed, err: fmt.Errorf("the backup of %s was carried out but is not in %s: it failed (a %s run, %s, followed it; `reconciler status %s` shows the history)", app, o.backups, later.Trigger, later.ID, app)}
}

func backupsCmd(o *options) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "backups [APP]",
		Short: "List the complete backups in the backup directory",
		Long: "backups lists the complete backups of APP, or of every app, oldest first: ID, trigger,\n" +
			"recipe version, volumes, files and size. Backups outlive their apps: teardown, ttl expiry and\n" +
			"the orphan sweep never remove them; a spec's backup.keep prunes the oldest. -o json prints the\n" +
			"manifests.",
		Example: "  reconciler backups\n" +
			"  reconciler backups ch-1a2b3c -o json",
		Args:              cobra.MaximumNArgs(1),
		ValidArgsFunction: completeApps(o),
		RunE: func(cmd *cobra.Command, args []string) error {
			if output != "table" && output != "json" {
				return fmt.Errorf("-o %q: use table or json", output)
			}
			store := spec.BackupStore{Dir: o.backups}
			apps := args
			if len(apps) == 0 {
				var err error
				if apps, err = store.Apps(); err != nil {
					return err
				}
			}
			all := []*spec.BackupManifest{}
			var errs []error
			for _, app := range apps {
				list, err := store.List(app)
				if err != nil {
					errs = append(errs, err)
				}
				all = append(all, list...)
			}
			if output == "json" {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				if err := enc.Encode(all); err != nil {
					return err
				}
				return errors.Join(errs...)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "APP\tID\tTRIGGER\tVERSION\tVOLUMES\tFILES\tBYTES")
			for _, m := range all {
				var vols []string
				for _, v := range m.Volumes {
					vols = append(vols, v.Name)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%d\n", m.App, m.ID, m.Trigger, m.Version, strings.Join(vols, ","), m.Files(), m.Bytes())
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			if len(all) == 0 && len(errs) == 0 {
				fmt.Fprintf(os.Stderr, "no backups in %s\n", o.backups)
			}
			return errors.Join(errs...)
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "table", "table or json")
	return cmd
}
