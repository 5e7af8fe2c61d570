package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"github.com/spf13/cobra"

	"github.com/swarm-reconciler/reconciler/controller"
	"github.com/swarm-reconciler/reconciler/manifests"
	"github.com/swarm-reconciler/reconciler/spec"
)

func diffCmd(o *options) *cobra.Command {
	return &cobra.Command{
		Use:   "diff SPEC",
		Short: "Show what reconciling a spec would change in the swarm (desired against live)",
		Long: "Prints one line per change (+ create, ~ update, - remove), with a field diff for updates\n" +
			"(\"- live, + desired\"; a service changed by hand shows what was changed). Exit 0 when the\n" +
			"swarm matches the spec, 1 when it differs, and above 1 when the diff could not be made (the\n" +
			"spec, the recipe or the engine), as kubectl diff does. Nothing is written.",
		Example: "  reconciler diff specs/ch-1a2b3c.yml --recipes ./recipes",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path := args[0]
			f, diffs, err := diffOf(cmd.Context(), o, path)
			if err != nil {
				// Not 1: a CI check reading 1 as "changes pending" must not take a broken
				// setup for drift.
				return &exitError{code: exitDiffFailed, err: err}
			}
			app := f.app
			out := cmd.OutOrStdout()
			for _, d := range diffs {
				sign := "~"
				switch {
				case strings.HasPrefix(string(d.Action.Kind), "create"):
					sign = "+"
				case strings.HasPrefix(string(d.Action.Kind), "remove"):
					sign = "-"
				}
				fmt.Fprintf(out, "%s %s (%s)\n", sign, d.Action.String(), app)
				if d.Detail != "" {
					for _, line := range strings.Split(strings.TrimRight(d.Detail, "\n"), "\n") {
						fmt.Fprintf(out, "    %s\n", line)
					}
				}
			}
			if len(diffs) > 0 {
				return &exitError{code: 1, err: fmt.Errorf("%s: %d changes pending", app, len(diffs))}
			}
			return nil
		},
	}
}

// exitDiffFailed is diff's exit code when no diff could be made.
const exitDiffFailed = 2

func diffOf(ctx context.Context, o *options, path string) (specFile, []controller.Difference, error) {
	f, err := readDeployedSpec(path, o)
	if err != nil {
		return f, nil, err
	}
	engine, err := newEngine()
	if err != nil {
		return f, nil, err
	}
	defer engine.Close()
	defer manifests.Cleanup()
	r := &controller.Reconciler{Engine: engine, RecipesDir: o.recipes, StatusDir: o.status, Remote: o.remote(), Owner: o.ownerOf(o.specs),
		Now: time.Now, Log: logr.Discard()}
	diffs, err := r.Diff(ctx, desiredOf(f, path))
	return f, diffs, err
}

// desiredOf is a spec file as the reconciler reads it: with its overlays, and the generation
// they are part of. Without them a diff renders what the reconciler does not deploy, and
// shows the overlays' changes as changes to undo.
func desiredOf(f specFile, path string) *spec.Desired {
	return &spec.Desired{App: f.app, Path: path, Generation: spec.GenerationWith(f.data, f.overlays), Spec: f.spec, Overlays: f.overlays}
}
