// Command reconciler makes a Docker swarm match the app specs in a directory. See README.md.
package main

import (
	"context"
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

	"github.com/swarm-reconciler/reconciler/controller"
	"github.com/swarm-reconciler/reconciler/locks"
	"github.com/swarm-reconciler/reconciler/manifests"
	"github.com/swarm-reconciler/reconciler/spec"
	"github.com/swarm-reconciler/reconciler/swarmstate"
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
	backups, recipeURL, gitCredentials            string
	fetchTimeout                                  time.Duration
	logFormat                                     string
	verbosity                                     int
	passTimeout, reconcileTimeout                 time.Duration
	resync, retention, specPoll                   time.Duration
	workers                                       int
	maxDeploying, maxRemoving                     int
	metricsAddr                                   string
	uiAddr, uiAuth                                string
	janitor                                       bool
	nodeJobs                                      controller.NodeJobs
	policyLevel, allowPorts                       string
	allowBind                                     []string
	owner                                         string
	leader                                        leaderOptions

	// Set up by setup for the subcommands that run the loop.
	registry *prometheus.Registry
	engine   *client.Client
	fetcher  *manifests.Remote
}

// ownerOf is the owner label value of the reconciler of specDir: --owner when given, else
// derived from the directory's path.
func (o *options) ownerOf(specDir string) string {
	if o.owner != "" {
		return o.owner
	}
	return locks.SpecDirID(specDir)
}

// remote fetches recipes and versions that --recipes lacks; one per process, so that apps
// needing the same repository fetch it once.
func (o *options) remote() *manifests.Remote {
	if o.fetcher == nil {
		o.fetcher = &manifests.Remote{URLTemplate: o.recipeURL, Timeout: o.fetchTimeout, Credentials: o.gitCredentials}
	}
	return o.fetcher
}

// fetchRecipe brings the recipe of s where a render reads it, as the reconciler would, and
// returns that recipes directory and the version to render: for a ref, deployed (the commit
// the app's attempt runs, deployedCommit) or else the commit the ref points at now.
func (o *options) fetchRecipe(ctx context.Context, s *spec.Spec, deployed string) (dir, version string, err error) {
	if s.Source != "" {
		version = s.Version
		if deployed != "" {
			version = deployed
		}
		dir = manifests.SourceDir(o.recipes, s.Source)
		version, err = o.remote().EnsureSource(ctx, dir, s.Recipe, s.Source, s.Ref, version)
		return dir, version, err
	}
	return o.recipes, s.Version, o.remote().Ensure(ctx, o.recipes, s.Recipe, s.Version)
}

// deployedCommit is the commit d's ref was resolved to for the attempt its status records,
// while d is still that attempt (spec.Desired.DeployedCommit): the reconciler goes on
// rendering that commit, whatever the ref points at now.
func (o *options) deployedCommit(d *spec.Desired) string {
	st, err := spec.ReadStatus(o.status, d.App)
	if err != nil {
		return ""
	}
	return d.DeployedCommit(st)
}

// policy is the deploy policy of --policy, --allow-bind and --allow-ports.
func (o *options) policy() (manifests.Policy, error) {
	return manifests.ParsePolicy(o.policyLevel, o.allowBind, o.allowPorts)
}

func (o *options) defaults() spec.Defaults {
	return spec.Defaults{DomainSuffix: o.domainSuffix}
}

// deployed reports, from app's status, whether app runs in stack: the reconciler gives a
// stack two specs map to the app deployed there (spec.LoadDeployed), so the commands that act
// on an app agree with it about which of the two is the app's.
func (o *options) deployed(app, stack string) bool {
	st, err := spec.ReadStatus(o.status, app)
	return err == nil && st.Stack == stack && st.Deploys > 0 &&
		st.Phase != spec.PhaseDeleted && st.Phase != spec.PhaseExpired
}

func main() {
	root := newRoot(&options{})
	if c, err := root.ExecuteC(); err != nil {
		fmt.Fprintln(os.Stderr, "reconciler:", err)
		os.Exit(exitCode(c, err))
	}
}

// exitCode is the exit code of command c ending with err: the code an exitError carries, else
// 1; for diff, whose 1 means "changes pending", 2, and for wait, whose 1 means "the app
// failed", 3 (a flag, an argument, the environment, a directory).
func exitCode(c *cobra.Command, err error) int {
	var ee *exitError
	switch {
	case errors.As(err, &ee):
		return ee.code
	case c != nil && c.Name() == "diff":
		return exitDiffFailed
	case c != nil && c.Name() == "wait":
		return exitNoWait
	}
	return 1
}

// newRoot builds the command tree. Every command, including cobra's help and completion,
// carries an Example (TestEveryCommandHasAnExample).
func newRoot(o *options) *cobra.Command {
	root := &cobra.Command{
		Use:   "reconciler",
		Short: "Make a Docker swarm match the app specs in a directory",
		Long: "reconciler makes a Docker swarm match the desired-state files (<app>.yml) in a spec\n" +
			"directory, reports each app in a status file (<app>.json), tears an app down when its\n" +
			"file is deleted, and reaps what it owns that no file asks for.\n\n" +
			"Every flag can also be set from the environment: --specs is RECONCILER_SPECS,\n" +
			"--lock-dir is RECONCILER_LOCK_DIR, and so on; a flag on the command line wins.",
		Example: "  reconciler run --specs ./specs --status ./status --recipes ./recipes\n" +
			"  reconciler apply ch-1a2b3c.yml --wait --timeout 15m\n" +
			"  reconciler status\n" +
			"  reconciler delete ch-1a2b3c --wait",
		Version:       versionLine(),
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			if err := flagsFromEnv(cmd.Flags()); err != nil {
				return err
			}
			if o.owner != "" && !anyOwnerName.MatchString(o.owner) {
				return fmt.Errorf("--owner %q: use 1-64 of letters, digits, '.', '_' and '-', starting with a letter or digit (it goes into labels and file names; %s is the janitor's)", o.owner, swarmstate.JanitorOwner)
			}
			return nil
		},
	}
	root.SetVersionTemplate("{{.Version}}\n")
	f := root.PersistentFlags()
	f.StringVar(&o.specs, "specs", "/var/lib/swarm-reconciler/specs", "directory of desired-state files (<app>.yml)")
	f.StringVar(&o.status, "status", "/var/lib/swarm-reconciler/status", "directory of status files (<app>.json)")
	f.StringVar(&o.recipes, "recipes", "/var/lib/swarm-reconciler/recipes", "directory of recipe git repositories")
	f.StringVar(&o.domainSuffix, "domain-suffix", "", "default domain is <app>.<suffix>")
	f.StringVar(&o.recipeURL, "recipe-url", "", "clone URL of a recipe missing under --recipes, {recipe} standing for its name (e.g. https://git.coopcloud.tech/coop-cloud/{recipe}.git)")
	f.StringVar(&o.gitCredentials, "git-credentials", "", "directory of per-host git credentials: <host>.token (a token), <host>.basic (user:password) or <host>.ssh (a private key), and known_hosts")
	f.DurationVar(&o.fetchTimeout, "fetch-timeout", manifests.DefaultFetchTimeout, "bound on one clone or fetch of a recipe")
	f.StringVar(&o.backups, "backups", "/var/lib/swarm-reconciler/backups", "directory of backups (<app>/<id>/)")
	f.StringVar(&o.lockDir, "lock-dir", "/run/lock/swarm-reconciler", "directory of lock files (a tmpfs)")
	f.StringVar(&o.owner, "owner", "", "owner label of everything this reconciler creates (letters, digits, '.', '_', '-'), the same for every replica of --leader-elect (default: derived from the spec directory's path)")
	f.StringVar(&o.logFormat, "log-format", "json", "json or console")
	f.IntVarP(&o.verbosity, "v", "v", 0, "log verbosity, as klog's -v: 0 changes and errors, 1 details, 2 every engine event")
	f.StringVar(&o.policyLevel, "policy", string(manifests.DefaultPolicy.Level), "what services may ask of the host: privileged (anything), baseline (no Docker socket, system paths, extra capabilities, devices, host network, unsafe sysctls, host ports below 1024), restricted (baseline, no bind mounts, no root user)")
	f.StringSliceVar(&o.allowBind, "allow-bind", nil, "host paths under which baseline allows bind mounts (repeat or comma-separate)")
	f.StringVar(&o.allowPorts, "allow-ports", "", "host ports services may publish, e.g. 80,443,1024-65535 (default: 1024 and above)")

	root.AddCommand(runCmd(o), onceCmd(o), janitorCmd(o), renderCmd(o), diffCmd(o), statusCmd(o), waitCmd(o),
		applyCmd(o), deleteCmd(o), validateCmd(o), secretCmd(o), logsCmd(o),
		backupCmd(o), restoreCmd(o), backupsCmd(o), recipesCmd(o), nodeCleanCmd(), versionCmd())
	addBuiltinExamples(root)
	return root
}

// addBuiltinExamples creates cobra's help and completion commands now (cobra would add them
// at Execute) so that they carry examples like every other command.
func addBuiltinExamples(root *cobra.Command) {
	root.InitDefaultHelpCmd()
	root.InitDefaultCompletionCmd()
	for _, c := range root.Commands() {
		switch c.Name() {
		case "help":
			c.Example = "  reconciler help apply\n  reconciler apply --help"
		case "completion":
			c.Example = "  source <(reconciler completion bash)\n" +
				"  reconciler completion bash > /etc/bash_completion.d/reconciler\n" +
				"  reconciler completion zsh > \"${fpath[1]}/_reconciler\""
			for _, sh := range c.Commands() {
				switch sh.Name() {
				case "bash":
					sh.Example = "  source <(reconciler completion bash)\n  reconciler completion bash > /etc/bash_completion.d/reconciler"
				case "zsh":
					sh.Example = "  reconciler completion zsh > \"${fpath[1]}/_reconciler\""
				case "fish":
					sh.Example = "  reconciler completion fish > ~/.config/fish/completions/reconciler.fish"
				case "powershell":
					sh.Example = "  reconciler completion powershell | Out-String | Invoke-Expression"
				}
			}
		}
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

// newLogger builds the logr logger over zap. verbosity v shows logr's V(n) lines for n <= v
// (zap level -n), as klog's -v does.
func newLogger(format string, v int) (logr.Logger, error) {
	if v < 0 || v > 127 {
		return logr.Logger{}, fmt.Errorf("-v %d: use a level from 0 to 127", v)
	}
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
	cfg.Level = zap.NewAtomicLevelAt(zapcore.Level(-v))
	if v > 0 {
		cfg.Sampling = nil // asked for detail: every line, not a sample of repeated ones
	}
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
