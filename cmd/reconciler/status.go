package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/swarm-reconciler/reconciler/manifests"
	"github.com/swarm-reconciler/reconciler/spec"
)

func statusCmd(o *options) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "status [APP]",
		Short: "Show apps and their phases from the status files",
		Long: "status prints one line per status file: app, recipe, version, tier, phase, age (since\n" +
			"the first deploy) and message. -o wide adds the domain, stack, number of deploys, the\n" +
			"observed spec generation and when the status was last written; -o json prints the status\n" +
			"files themselves (an array, or one object for APP). Phases are coloured on a terminal\n" +
			"(set NO_COLOR to turn that off).",
		Example: "  reconciler status\n" +
			"  reconciler status -o wide\n" +
			"  reconciler status ch-1a2b3c -o json",
		Args:              cobra.MaximumNArgs(1),
		ValidArgsFunction: completeApps(o),
		RunE: func(cmd *cobra.Command, args []string) error {
			if output != "table" && output != "wide" && output != "json" {
				return fmt.Errorf("-o %q: use table, wide or json", output)
			}
			var (
				all     []*spec.Status
				listErr error
			)
			if len(args) == 1 {
				st, err := readOneStatus(o, args[0])
				if err != nil {
					return err
				}
				all = []*spec.Status{st}
			} else {
				all, listErr = spec.ListStatus(o.status)
				if listErr != nil && all == nil {
					if errors.Is(listErr, fs.ErrNotExist) {
						return fmt.Errorf("%w: pass --status DIR (or set RECONCILER_STATUS) as given to reconciler run", listErr)
					}
					return listErr
				}
			}
			out := cmd.OutOrStdout()
			if output == "json" {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				var err error
				if len(args) == 1 {
					err = enc.Encode(all[0])
				} else {
					if all == nil {
						all = []*spec.Status{}
					}
					err = enc.Encode(all)
				}
				return errors.Join(err, listErr)
			}
			if len(all) == 0 && listErr == nil {
				fmt.Fprintf(cmd.ErrOrStderr(), "No apps: no status files in %s.\n", o.status)
				return nil
			}
			t := statusTable(all, output == "wide", time.Now())
			return errors.Join(t.write(out, colourOutput(out)), listErr)
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "table", "table, wide or json")
	_ = cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{"table", "wide", "json"}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

// readOneStatus reads the status of app, saying why there is none.
func readOneStatus(o *options, app string) (*spec.Status, error) {
	st, err := spec.ReadStatus(o.status, app)
	if err == nil {
		return st, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	if d, lerr := spec.Load(o.specs, app, o.defaults()); lerr == nil && d != nil {
		return nil, fmt.Errorf("no status for app %s in %s yet: its spec %s exists, but no reconciler has reported on it (is reconciler run running with --specs %s --status %s?)",
			app, o.status, d.Path, o.specs, o.status)
	}
	return nil, fmt.Errorf("no status for app %s in %s, and no spec for it in %s: check the name with reconciler status, or the --status and --specs directories",
		app, o.status, o.specs)
}

// statusTable is the table of reconciler status: app, recipe, version, tier, phase, age and
// message; wide adds domain, stack, deploys, the observed generation and the last update.
func statusTable(all []*spec.Status, wide bool, now time.Time) *table {
	t := &table{header: []string{"APP", "RECIPE", "VERSION", "TIER", "PHASE", "AGE"}}
	if wide {
		t.header = append(t.header, "DOMAIN", "STACK", "DEPLOYS", "GENERATION", "UPDATED")
	}
	t.header = append(t.header, "MESSAGE")
	t.colour = func(col int, cell string) string {
		if col == 4 {
			return phaseColour(spec.Phase(cell))
		}
		return ""
	}
	for _, st := range all {
		tier := string(st.Tier)
		if tier == "" && st.Recipe != "" {
			tier = string(spec.TierInstall)
		}
		row := []string{st.App, orDash(st.Recipe), orDash(st.Version), orDash(tier), orDash(string(st.Phase)), age(st, now)}
		if wide {
			updated := "-"
			if !st.UpdatedAt.IsZero() {
				updated = humanAge(now.Sub(st.UpdatedAt)) + " ago"
			}
			row = append(row, orDash(st.Domain), orDash(st.Stack), fmt.Sprint(st.Deploys),
				orDash(short(strings.TrimPrefix(st.ObservedGeneration, "sha256:"), 12)), updated)
			row = append(row, oneLine(st.Message, 0))
		} else {
			row = append(row, oneLine(st.Message, 80))
		}
		t.add(row...)
	}
	return t
}

// age is how long the app has existed: since its first deploy, or its first recorded phase.
func age(st *spec.Status, now time.Time) string {
	if since, ok := st.Since(); ok {
		return humanAge(now.Sub(since))
	}
	return "-"
}

// Exit codes of wait, as kubectl wait and CI scripts expect them.
const (
	exitReached = 0
	exitFailed  = 1
	exitTimeout = 2
	// exitNoWait is wait's code when it could not wait at all (a flag, an argument, a
	// directory): not 1, which says the app failed.
	exitNoWait = 3
)

func waitCmd(o *options) *cobra.Command {
	var (
		forWhat string
		timeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "wait APP --for ready|deleted",
		Short: "Wait until the status describes the current spec and reaches a phase",
		Long: "wait polls the status file of APP. Only a status whose observedGeneration matches the\n" +
			"spec file now in the spec directory counts, so an old Ready never satisfies it.\n\n" +
			"Exit codes:\n" +
			"  0  reached: Ready for --for ready; Deleted (or no status left) for --for deleted\n" +
			"  1  the app is Failed, Invalid or Expired for the current spec (its message is printed);\n" +
			"     for ready, also Suspended (suspend: true: the reconciler leaves it as it is), or its\n" +
			"     spec deleted while waiting\n" +
			"  2  timed out; the message says what was seen last, or that no reconciler updated the\n" +
			"     status (wait itself changes nothing: without a running reconciler it times out)\n" +
			"  3  could not wait: a usage error, or the spec or status directory missing",
		Example: "  reconciler wait ch-1a2b3c --for ready --timeout 15m\n" +
			"  reconciler wait ch-1a2b3c --for deleted",
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: completeApps(o),
		RunE: func(cmd *cobra.Command, args []string) error {
			return waitFor(cmd, o, args[0], forWhat, timeout, false)
		},
	}
	cmd.Flags().StringVar(&forWhat, "for", "ready", "ready or deleted")
	_ = cmd.RegisterFlagCompletionFunc("for", cobra.FixedCompletions([]string{"ready", "deleted"}, cobra.ShellCompDirectiveNoFileComp))
	cmd.Flags().DurationVar(&timeout, "timeout", 10*time.Minute, "give up after this long (exit 2)")
	return cmd
}

// waitPoll is how often wait reads the spec and status files.
const waitPoll = 100 * time.Millisecond

// waitFor polls the status file of app until it reaches what. With verbose it prints one
// line per phase change (time, phase, message) to stdout: for ready, of statuses describing
// the current spec; for deleted, of the teardown.
func waitFor(cmd *cobra.Command, o *options, app, what string, timeout time.Duration, verbose bool) error {
	if what != "ready" && what != "deleted" {
		return fmt.Errorf("--for %q: use ready or deleted", what)
	}
	if err := spec.ValidateAppName(app); err != nil {
		return err
	}
	if _, err := os.Stat(o.specs); err != nil {
		return fmt.Errorf("spec directory: %w: pass --specs DIR (or set RECONCILER_SPECS) as given to reconciler run", err)
	}
	if err := statusDirToWaitOn(o); err != nil {
		return err
	}
	start := time.Now()
	deadline := start.Add(timeout)
	var (
		last    *spec.Status
		printed string // generation and phase of the last line printed
		hadSpec bool
		broken  error // the status file is not a status: the reconciler replaces it
	)
	for {
		d, err := spec.Load(o.specs, app, o.defaults())
		if err != nil {
			return err
		}
		if what == "ready" && d == nil && hadSpec {
			return &exitError{code: exitFailed, err: fmt.Errorf("the spec of %s was deleted while waiting for it to be ready", app)}
		}
		hadSpec = hadSpec || d != nil
		st, err := spec.ReadStatus(o.status, app)
		broken = nil
		switch {
		case errors.Is(err, spec.ErrNotStatus):
			// Cut short by another tool, or edited by hand: the reconciler writes the live
			// state over it on the app's next pass, so it is waited out like a missing one.
			broken, st = err, nil
		case err != nil && !errors.Is(err, fs.ErrNotExist):
			return err
		}
		current := st != nil && d != nil && d.Generation != "" && st.ObservedGeneration == d.Generation
		if st != nil {
			last = st
			show := current
			if what == "deleted" {
				show = d == nil && (st.Phase == spec.PhaseDeleting || st.Phase == spec.PhaseDeleted)
			}
			if key := st.ObservedGeneration + " " + string(st.Phase); verbose && show && key != printed {
				fmt.Fprintf(cmd.OutOrStdout(), "%s  %-9s  %s\n", st.UpdatedAt.Local().Format(time.RFC3339), st.Phase, oneLine(st.Message, 0))
				printed = key
			}
		}
		switch {
		case what == "ready" && current && st.Phase == spec.PhaseReady:
			return nil
		case what == "ready" && current && (st.Phase == spec.PhaseFailed || st.Phase == spec.PhaseInvalid || st.Phase == spec.PhaseExpired):
			return &exitError{code: exitFailed, err: fmt.Errorf("%s is %s: %s", app, st.Phase, st.Message)}
		case what == "ready" && current && st.Phase == spec.PhaseSuspended:
			// Settled for this spec: the reconciler leaves a suspended app as it is, so it
			// turns Ready only with a new spec.
			return &exitError{code: exitFailed, err: fmt.Errorf("%s is Suspended: %s; it turns Ready only once its spec no longer says suspend: true", app, st.Message)}
		case what == "deleted" && d == nil && broken == nil && (st == nil || st.Phase == spec.PhaseDeleted):
			return nil
		}
		if !time.Now().Before(deadline) {
			var why string
			if broken != nil {
				why = fmt.Sprintf("%v (no reconciler replaced it; `reconciler status %s` shows it once one has)", broken, app)
			} else {
				why = whyNotYet(o, app, what, d, last, current, start)
			}
			return &exitError{code: exitTimeout, err: fmt.Errorf("timed out after %s waiting for %s to be %s: %s",
				timeout, app, what, why)}
		}
		select {
		case <-cmd.Context().Done():
			return cmd.Context().Err()
		case <-time.After(min(waitPoll, time.Until(deadline)+time.Millisecond)):
		}
	}
}

// statusDirToWaitOn refuses a wait on a status directory that is not there. No status file
// counts as deleted: in a directory that is not the reconciler's, every app would look deleted
// at once; and for ready (or a backup), a wrong --status would sit out the whole timeout. The
// reconciler makes the directory when it starts.
func statusDirToWaitOn(o *options) error {
	if fi, err := os.Stat(o.status); err != nil {
		return fmt.Errorf("status directory: %w: pass --status DIR (or set RECONCILER_STATUS) as given to reconciler run", err)
	} else if !fi.IsDir() {
		return fmt.Errorf("status directory: %s is not a directory: pass --status DIR (or set RECONCILER_STATUS) as given to reconciler run", o.status)
	}
	return nil
}

// waitExit is the error of apply --wait and delete --wait, which exit as wait does: a wait that
// could not run is wait's 3, not the 1 that says the app failed.
func waitExit(err error) error {
	var ee *exitError
	if err == nil || errors.As(err, &ee) {
		return err
	}
	return &exitError{code: exitNoWait, err: err}
}

// whyNotYet explains a timed-out wait from what was seen last.
func whyNotYet(o *options, app, what string, d *spec.Desired, last *spec.Status, current bool, start time.Time) string {
	running := fmt.Sprintf("is reconciler run running with --specs %s --status %s?", o.specs, o.status)
	if what == "deleted" {
		switch {
		case d != nil:
			return fmt.Sprintf("its spec %s still exists (reconciler delete %s removes it)", d.Path, app)
		case last.Phase == spec.PhaseDeleting:
			return "the teardown is still going on: " + last.Message
		}
		return fmt.Sprintf("no reconciler updated its status since the spec was deleted (it still says %s, written %s): %s",
			last.Phase, last.UpdatedAt.Local().Format(time.RFC3339), running)
	}
	switch {
	case d == nil:
		return fmt.Sprintf("there is no spec for it in %s (reconciler apply FILE places one)", o.specs)
	case last == nil:
		return fmt.Sprintf("no reconciler updated the status: there is no status file for it in %s; %s", o.status, running)
	case !current && !last.UpdatedAt.After(start):
		return fmt.Sprintf("no reconciler updated the status for the current spec (generation %s; the status, written %s, describes %s): %s",
			short(d.Generation, 19), last.UpdatedAt.Local().Format(time.RFC3339), orDash(short(last.ObservedGeneration, 19)), running)
	case !current:
		return fmt.Sprintf("the status does not describe the current spec %s yet (it describes %s: %s %s)",
			short(d.Generation, 19), orDash(short(last.ObservedGeneration, 19)), last.Phase, last.Message)
	}
	return fmt.Sprintf("it is still %s: %s", last.Phase, last.Message)
}

func validateCmd(o *options) *cobra.Command {
	return &cobra.Command{
		Use:   "validate FILE...",
		Short: "Check spec files; exit non-zero with file, line and reason for each bad one",
		Long: "validate checks each spec file. With --policy (or RECONCILER_POLICY) it also renders the\n" +
			"recipe at the spec's version (--recipes) and checks its services against that deploy\n" +
			"policy, as the reconciler would before creating anything. A spec with overlays is\n" +
			"always rendered: its overlays must load and merge with the recipe's compose files.",
		Example: "  reconciler validate specs/*.yml\n" +
			"  reconciler validate --policy restricted --recipes ./recipes specs/ch-1a2b3c.yml",
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			bad := 0
			withPolicy := cmd.Flags().Changed("policy")
			defer manifests.Cleanup()
			for _, path := range args {
				f, err := readSpec(path, o.defaults())
				if err != nil {
					fmt.Fprintln(cmd.ErrOrStderr(), err)
					bad++
					continue
				}
				if withPolicy || len(f.overlays) > 0 {
					if denied, err := validateRender(cmd, o, f, path, withPolicy); err != nil || denied {
						if err != nil {
							fmt.Fprintf(cmd.ErrOrStderr(), "%s: %v\n", path, err)
						}
						bad++
						continue
					}
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s: ok\n", path)
			}
			if bad > 0 {
				return &exitError{code: 1, err: fmt.Errorf("%d of %d spec files are invalid", bad, len(args))}
			}
			return nil
		},
	}
}

// validateRender renders f's recipe with its overlays merged and, with policy, checks its
// services against the deploy policy, printing what it denies and warns of; denied says
// whether it denies anything.
func validateRender(cmd *cobra.Command, o *options, f specFile, path string, policy bool) (denied bool, err error) {
	stack, err := spec.StackName(f.spec.Domain)
	if err != nil {
		return false, err
	}
	dir, version, err := o.fetchRecipe(cmd.Context(), f.spec, "") // a file to apply: its ref as it is now
	if err != nil {
		return false, err
	}
	r, err := manifests.Render(cmd.Context(), dir, manifests.Request{
		App: f.app, Recipe: f.spec.Recipe, Version: version, Domain: f.spec.Domain, Stack: stack, Env: f.spec.Env,
		Overlays: manifests.OverlaysOf(f.overlays),
	})
	if err != nil {
		return false, err
	}
	services, err := r.Services(cmd.Context(), manifests.PlaceholderResolver())
	if err != nil || !policy {
		return false, err
	}
	rep, err := checkPolicy(o, r, services, cmd.ErrOrStderr(), path)
	return len(rep.Denied) > 0, err
}

func applyCmd(o *options) *cobra.Command {
	var (
		wait    bool
		timeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "apply FILE",
		Short: "Validate a spec and place it atomically in the spec directory",
		Long: "apply checks FILE as the reconciler would (the app name is the file's base name), then\n" +
			"writes it as <specs>/<app>.yml through a temporary file and a rename, so a reconciler never\n" +
			"reads half a file. With --wait it then prints one line per phase change (time, phase,\n" +
			"message) and exits as wait --for ready does: 0 Ready, 1 Failed/Invalid/Expired, 2 timeout,\n" +
			"3 could not wait (the status directory missing or unreadable).",
		Example: "  reconciler apply ch-1a2b3c.yml\n" +
			"  reconciler apply ch-1a2b3c.yml --wait --timeout 15m",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path := args[0]
			// Overlay files are read where the reconciler reads them: in the spec directory.
			f, err := readSpecIn(path, o.defaults(), o.specs)
			if err != nil {
				return err
			}
			app, data := f.app, f.data
			if err := spec.Place(o.specs, app, data); err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "%s applied: %s (generation %s)\n", app, filepath.Join(o.specs, app+".yml"), spec.GenerationWith(data, f.overlays))
			if !wait {
				return nil
			}
			return waitExit(waitFor(cmd, o, app, "ready", timeout, true))
		},
	}
	cmd.Flags().BoolVar(&wait, "wait", false, "wait until Ready, printing each phase change (exit codes as wait)")
	cmd.Flags().DurationVar(&timeout, "timeout", 10*time.Minute, "with --wait: give up after this long (exit 2)")
	return cmd
}

func deleteCmd(o *options) *cobra.Command {
	var (
		wait    bool
		timeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "delete APP",
		Short: "Delete an app's spec: the reconciler tears the app down",
		Long: "delete removes the spec file(s) of APP; the reconciler then removes everything of the app\n" +
			"and writes the phase Deleted once nothing is left. With --wait it prints one line per phase\n" +
			"change and exits as wait --for deleted does: 0 once Deleted, 2 on timeout, 3 could not wait.",
		Example: "  reconciler delete ch-1a2b3c\n" +
			"  reconciler delete ch-1a2b3c --wait --timeout 10m",
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: completeApps(o),
		RunE: func(cmd *cobra.Command, args []string) error {
			app := args[0]
			if err := spec.ValidateAppName(app); err != nil {
				return err
			}
			d, err := spec.Load(o.specs, app, o.defaults())
			if err != nil {
				return fmt.Errorf("%w: pass --specs DIR (or set RECONCILER_SPECS) as given to reconciler run", err)
			}
			if err := spec.Unplace(o.specs, app); err != nil {
				return err
			}
			if d != nil {
				fmt.Fprintf(cmd.ErrOrStderr(), "%s deleted: %s removed\n", app, d.Path)
			} else {
				fmt.Fprintf(cmd.ErrOrStderr(), "%s: no spec in %s (already deleted)\n", app, o.specs)
			}
			if !wait {
				return nil
			}
			return waitExit(waitFor(cmd, o, app, "deleted", timeout, true))
		},
	}
	cmd.Flags().BoolVar(&wait, "wait", false, "wait until Deleted, printing each phase change (exit codes as wait)")
	cmd.Flags().DurationVar(&timeout, "timeout", 10*time.Minute, "with --wait: give up after this long (exit 2)")
	return cmd
}
