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

func statusCmd(o *options) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:     "status [APP]",
		Short:   "Show apps and their phases from the status files",
		Example: "  reconciler status\n  reconciler status ch-1a2b3c -o json",
		Args:    cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var all []*spec.Status
			if len(args) == 1 {
				st, err := spec.ReadStatus(o.status, args[0])
				if err != nil {
					return fmt.Errorf("no status for app %s in %s: %w", args[0], o.status, err)
				}
				all = []*spec.Status{st}
			} else {
				var err error
				if all, err = spec.ListStatus(o.status); err != nil {
					return err
				}
			}
			out := cmd.OutOrStdout()
			if output == "json" {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				if len(args) == 1 {
					return enc.Encode(all[0])
				}
				return enc.Encode(all)
			}
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "APP\tRECIPE\tVERSION\tTIER\tPHASE\tAGE\tMESSAGE")
			for _, st := range all {
				age := "-"
				if st.FirstDeployedAt != nil {
					age = time.Since(*st.FirstDeployedAt).Round(time.Second).String()
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", st.App, st.Recipe, st.Version, st.Tier, st.Phase, age, oneLine(st.Message, 100))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "table", "table or json")
	return cmd
}

func oneLine(s string, n int) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > n {
		return s[:n-1] + "…"
	}
	return s
}

// Exit codes of wait, as kubectl wait and CI scripts expect them.
const (
	exitReached = 0
	exitFailed  = 1
	exitTimeout = 2
)

func waitCmd(o *options) *cobra.Command {
	var forWhat string
	cmd := &cobra.Command{
		Use:   "wait APP --for ready|deleted",
		Short: "Wait until the status describes the current spec and reaches a phase",
		Long: "Exit 0 when reached, 1 when the app is Failed, Invalid or Expired (its message is printed),\n" +
			"2 on timeout. Only a status whose observedGeneration matches the spec file counts.",
		Example: "  reconciler wait ch-1a2b3c --for ready --timeout 15m",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return waitFor(cmd, o, args[0], forWhat, false)
		},
	}
	cmd.Flags().StringVar(&forWhat, "for", "ready", "ready or deleted")
	cmd.Flags().DurationVar(&o.timeout, "timeout", 10*time.Minute, "give up after this long (exit 2)")
	return cmd
}

// waitFor polls the status file of app until it reaches what, printing each phase change
// when verbose.
func waitFor(cmd *cobra.Command, o *options, app, what string, verbose bool) error {
	if what != "ready" && what != "deleted" {
		return fmt.Errorf("--for %q: use ready or deleted", what)
	}
	deadline := time.Now().Add(o.timeout)
	var last *spec.Status
	lastPhase := spec.Phase("")
	for {
		d, err := spec.Load(o.specs, app, o.defaults())
		if err != nil {
			return err
		}
		st, err := spec.ReadStatus(o.status, app)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		current := st != nil && d != nil && st.ObservedGeneration == d.Generation
		if st != nil {
			last = st
			if verbose && st.Phase != lastPhase && (current || what == "deleted") {
				fmt.Fprintf(cmd.OutOrStdout(), "%s\t%s\t%s\n", st.UpdatedAt.Format(time.RFC3339), st.Phase, st.Message)
				lastPhase = st.Phase
			}
		}
		switch {
		case what == "ready" && current && st.Phase == spec.PhaseReady:
			return nil
		case what == "ready" && current && (st.Phase == spec.PhaseFailed || st.Phase == spec.PhaseInvalid || st.Phase == spec.PhaseExpired):
			return &exitError{code: exitFailed, err: fmt.Errorf("%s is %s: %s", app, st.Phase, st.Message)}
		case what == "deleted" && d == nil && (st == nil || st.Phase == spec.PhaseDeleted):
			return nil
		}
		if time.Now().After(deadline) {
			why := "no reconciler has written a status for it yet"
			switch {
			case what == "ready" && d == nil:
				why = "no spec file for it in " + o.specs
			case what == "deleted" && d != nil:
				why = "its spec file still exists in " + o.specs
			case last != nil && what == "ready" && !current:
				why = "no reconciler has updated its status for the current spec (is one running on " + o.specs + "?)"
			case last != nil:
				why = fmt.Sprintf("last phase %s: %s", last.Phase, last.Message)
			}
			return &exitError{code: exitTimeout, err: fmt.Errorf("timed out after %s waiting for %s to be %s: %s", o.timeout, app, what, why)}
		}
		select {
		case <-cmd.Context().Done():
			return cmd.Context().Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func validateCmd(o *options) *cobra.Command {
	return &cobra.Command{
		Use:     "validate FILE...",
		Short:   "Check spec files; exit non-zero with file, line and reason for each bad one",
		Example: "  reconciler validate specs/*.yml",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			bad := 0
			for _, path := range args {
				if _, _, err := readSpec(path, o.defaults()); err != nil {
					fmt.Fprintln(cmd.ErrOrStderr(), err)
					bad++
					continue
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

func applyCmd(o *options) *cobra.Command {
	var wait bool
	cmd := &cobra.Command{
		Use:     "apply FILE",
		Short:   "Validate a spec and place it atomically in the spec directory",
		Example: "  reconciler apply ch-1a2b3c.yml --wait --timeout 15m",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path := args[0]
			_, app, err := readSpec(path, o.defaults())
			if err != nil {
				return err
			}
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			if err := spec.Place(o.specs, app, data); err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "%s applied (generation %s)\n", app, spec.Generation(data))
			if !wait {
				return nil
			}
			return waitFor(cmd, o, app, "ready", true)
		},
	}
	cmd.Flags().BoolVar(&wait, "wait", false, "wait until Ready (exit codes as wait)")
	cmd.Flags().DurationVar(&o.timeout, "timeout", 10*time.Minute, "with --wait: give up after this long (exit 2)")
	return cmd
}

func deleteCmd(o *options) *cobra.Command {
	var wait bool
	cmd := &cobra.Command{
		Use:     "delete APP",
		Short:   "Delete an app's spec: the reconciler tears the app down",
		Example: "  reconciler delete ch-1a2b3c --wait",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			app := args[0]
			if err := spec.ValidateAppName(app); err != nil {
				return err
			}
			if err := spec.Unplace(o.specs, app); err != nil {
				return err
			}
			if !wait {
				return nil
			}
			return waitFor(cmd, o, app, "deleted", true)
		},
	}
	cmd.Flags().BoolVar(&wait, "wait", false, "wait until Deleted (exit codes as wait)")
	cmd.Flags().DurationVar(&o.timeout, "timeout", 10*time.Minute, "with --wait: give up after this long (exit 2)")
	return cmd
}
