package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	"github.com/spf13/cobra"

	"github.com/swarm-reconciler/reconciler/controller"
	"github.com/swarm-reconciler/reconciler/locks"
	"github.com/swarm-reconciler/reconciler/manifests"
	"github.com/swarm-reconciler/reconciler/spec"
)

// faultKillEnv makes the process SIGKILL itself right after its Nth change to the swarm, for
// crash-safety tests that kill at every step in turn. Unset in production.
const faultKillEnv = "RECONCILER_FAULT_KILL_AFTER_STEPS"

func loopFlags(cmd *cobra.Command, o *options) {
	f := cmd.Flags()
	f.DurationVar(&o.resync, "resync", 30*time.Second, "period of the full resync (events can be missed)")
	f.IntVar(&o.workers, "workers", 4, "apps reconciled at once")
	f.DurationVar(&o.retention, "status-retention", time.Hour, "how long a Deleted status file stays")
	f.StringVar(&o.metricsAddr, "metrics-addr", "", "serve Prometheus metrics and health on this address")
}

func runCmd(o *options) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "run",
		Short:   "Reconcile continuously until stopped",
		Example: `  reconciler run --specs ./specs --status ./status --recipes ./recipes --domain-suffix ci.example.org`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			c, log, release, err := setup(o, o.specs)
			if err != nil {
				return err
			}
			defer release()
			if o.metricsAddr != "" {
				if err := serveMetrics(ctx, o.metricsAddr, o.registry, c, o.engine, log); err != nil {
					return err
				}
			}
			log.Info("reconciling", "specs", o.specs, "status", o.status, "recipes", o.recipes, "resync", o.resync.String())
			return c.Run(ctx)
		},
	}
	loopFlags(cmd, o)
	return cmd
}

func onceCmd(o *options) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "once",
		Short:   "Reconcile every app until it settles, then exit; non-zero if any app is Failed or Invalid",
		Example: `  reconciler once --specs ./specs --status ./status --recipes ./recipes`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return pass(cmd.Context(), o, o.specs)
		},
	}
	loopFlags(cmd, o)
	return cmd
}

func janitorCmd(o *options) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "janitor",
		Short: "Tear down everything this reconciler owns that no running reconciler holds, then exit",
		Long: "janitor is the orphan sweep against an empty desired set, run once: for a host where no\n" +
			"reconciler is running. Objects without the swarm-reconciler.app label are never touched.",
		Example: `  reconciler janitor --status ./status`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			empty, err := os.MkdirTemp("", "reconciler-janitor-")
			if err != nil {
				return err
			}
			defer os.RemoveAll(empty)
			o.janitor = true
			return pass(cmd.Context(), o, empty)
		},
	}
	loopFlags(cmd, o)
	return cmd
}

// pass runs one full reconcile pass over specDir and turns the apps' phases into an exit code.
func pass(ctx context.Context, o *options, specDir string) error {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	c, _, release, err := setup(o, specDir)
	if err != nil {
		return err
	}
	defer release()
	apps, err := c.RunOnce(ctx)
	if err != nil {
		return err
	}
	var bad []string
	for _, app := range apps {
		st, err := spec.ReadStatus(o.status, app)
		if err != nil {
			continue
		}
		fmt.Printf("%s\t%s\t%s\n", app, st.Phase, st.Message)
		if st.Phase == spec.PhaseFailed || st.Phase == spec.PhaseInvalid {
			bad = append(bad, app)
		}
	}
	if len(bad) > 0 {
		return &exitError{code: 1, err: fmt.Errorf("%d apps Failed or Invalid: %v (see their status files in %s)", len(bad), bad, o.status)}
	}
	return nil
}

// setup takes the spec-directory lock and wires a controller to the engine.
func setup(o *options, specDir string) (*controller.Controller, logr.Logger, func(), error) {
	log, err := newLogger(o.logFormat)
	if err != nil {
		return nil, log, nil, err
	}
	for _, d := range []string{specDir, o.status} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, log, nil, fmt.Errorf("create %s: %w", d, err)
		}
	}
	lockDir, err := locks.Open(o.lockDir)
	if err != nil {
		return nil, log, nil, fmt.Errorf("lock directory: %w", err)
	}
	lock, err := lockDir.SpecDir(specDir)
	if err != nil {
		return nil, log, nil, err
	}
	o.registry = newRegistry()
	engine, err := instrumentedEngine(o.registry)
	if err != nil {
		_ = lock.Release()
		return nil, log, nil, err
	}
	o.engine = engine
	r := &controller.Reconciler{
		Engine: engine, SpecsDir: specDir, StatusDir: o.status, RecipesDir: o.recipes,
		Defaults: o.defaults(), StatusRetention: o.retention, Now: time.Now, Log: log, Locks: lockDir,
		Owner: locks.SpecDirID(specDir),
	}
	if o.janitor {
		r.Owner = "" // the janitor sweeps orphans of every spec directory
	}
	if n, err := strconv.ParseInt(os.Getenv(faultKillEnv), 10, 64); err == nil && n > 0 {
		log.Info("fault injection: this process kills itself after a number of swarm changes", "env", faultKillEnv, "steps", n)
		r.Step = func(step int64, a controller.Action) {
			if step == n {
				log.Info("fault injection: SIGKILL", "step", step, "after", a.String())
				_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
			}
		}
	}
	c := &controller.Controller{R: r, Workers: o.workers, Resync: o.resync, Log: log}
	r.Metrics = controller.NewMetrics(o.registry, c.QueueDepth)
	release := func() {
		manifests.Cleanup()
		r.ReleaseAll()
		_ = lock.Release()
		_ = engine.Close()
	}
	return c, log, release, nil
}
