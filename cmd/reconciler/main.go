// Command reconciler makes a Docker swarm match the app specs in a directory. See README.md.
package main

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/docker/docker/client"
	"github.com/go-logr/logr"
	"github.com/go-logr/zapr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/swarm-reconciler/reconciler/spec"
)

// exitError carries a process exit code through cobra.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }

// options are the flags shared by the subcommands.
type options struct {
	specs, status, recipes, domainSuffix, lockDir string
	logFormat                                     string
	timeout                                       time.Duration
	resync, retention                             time.Duration
	workers                                       int
	metricsAddr                                   string
	janitor                                       bool

	// Set up by setup for the subcommands that run the loop.
	registry *prometheus.Registry
	engine   *client.Client
}

func (o *options) defaults() spec.Defaults {
	return spec.Defaults{DomainSuffix: o.domainSuffix}
}

func main() {
	o := &options{}
	root := &cobra.Command{
		Use:           "reconciler",
		Short:         "Make a Docker swarm match the app specs in a directory",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			return flagsFromEnv(cmd.Flags())
		},
	}
	f := root.PersistentFlags()
	f.StringVar(&o.specs, "specs", "/var/lib/swarm-reconciler/specs", "directory of desired-state files (<app>.yml)")
	f.StringVar(&o.status, "status", "/var/lib/swarm-reconciler/status", "directory of status files (<app>.json)")
	f.StringVar(&o.recipes, "recipes", "/var/lib/swarm-reconciler/recipes", "directory of recipe git repositories")
	f.StringVar(&o.domainSuffix, "domain-suffix", "", "default domain is <app>.<suffix>")
	f.StringVar(&o.lockDir, "lock-dir", "/run/lock/swarm-reconciler", "directory of lock files (a tmpfs)")
	f.StringVar(&o.logFormat, "log-format", "json", "json or console")

	root.AddCommand(runCmd(o), onceCmd(o), janitorCmd(o), renderCmd(o), statusCmd(o), waitCmd(o),
		applyCmd(o), deleteCmd(o), validateCmd(o))
	if err := root.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "reconciler:", err)
		var ee *exitError
		if errors.As(err, &ee) {
			os.Exit(ee.code)
		}
		os.Exit(1)
	}
}

// flagsFromEnv sets every flag not given on the command line from RECONCILER_<NAME>, so the
// reconciler can run as a service configured by its environment.
func flagsFromEnv(fs *pflag.FlagSet) error {
	var errs []error
	fs.VisitAll(func(fl *pflag.Flag) {
		name := "RECONCILER_" + strings.ToUpper(strings.ReplaceAll(fl.Name, "-", "_"))
		if v, ok := os.LookupEnv(name); ok && !fl.Changed {
			if err := fs.Set(fl.Name, v); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", name, err))
			}
		}
	})
	return errors.Join(errs...)
}

func newLogger(format string) (logr.Logger, error) {
	var cfg zap.Config
	switch format {
	case "json":
		cfg = zap.NewProductionConfig()
	case "console":
		cfg = zap.NewDevelopmentConfig()
		cfg.EncoderConfig.EncodeLevel = zapcore.CapitalLevelEncoder
	default:
		return logr.Logger{}, fmt.Errorf("--log-format %q: use json or console", format)
	}
	cfg.EncoderConfig.TimeKey = "time"
	cfg.EncoderConfig.EncodeTime = zapcore.RFC3339NanoTimeEncoder
	cfg.DisableStacktrace = true
	z, err := cfg.Build()
	if err != nil {
		return logr.Logger{}, err
	}
	return zapr.NewLogger(z), nil
}

func newEngine() (*client.Client, error) {
	c, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return nil, fmt.Errorf("docker client: %w (set DOCKER_HOST to the engine's socket)", err)
	}
	return c, nil
}
