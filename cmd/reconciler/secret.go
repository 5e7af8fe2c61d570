package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"sort"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/swarm"
	"github.com/spf13/cobra"

	"github.com/swarm-reconciler/reconciler/manifests"
	"github.com/swarm-reconciler/reconciler/spec"
)

// maxSecretValue is swarm's limit on a secret's data (500 KiB, exclusive: swarmkit's MaxSecretSize).
const maxSecretValue = 500 * 1024

// secretEngine is the part of the Engine API that secret insert uses.
type secretEngine interface {
	SecretList(ctx context.Context, options swarm.SecretListOptions) ([]swarm.Secret, error)
	SecretCreate(ctx context.Context, secret swarm.SecretSpec) (swarm.SecretCreateResponse, error)
}

const secretInsertExample = `  # generate=false secrets: the value on standard input; the one newline echo adds is dropped
  echo "$SMTP_PASSWORD" | reconciler secret insert ch-1a2b3c smtp_password
  printf '%s' "$SMTP_PASSWORD" | reconciler secret insert ch-1a2b3c smtp_password --specs ./specs --recipes ./recipes
  # a new value under a new version (then set SECRET_SMTP_PASSWORD_VERSION: v2 in the spec's env)
  reconciler secret insert ch-1a2b3c smtp_password --version v2 < smtp-password.txt`

func secretCmd(o *options) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "secret",
		Short:   "Provide an app's secrets that the reconciler does not generate",
		Example: secretInsertExample,
		Args:    cobra.NoArgs,
	}
	cmd.AddCommand(secretInsertCmd(o))
	return cmd
}

func secretInsertCmd(o *options) *cobra.Command {
	var (
		version      string
		versionGiven bool
	)
	cmd := &cobra.Command{
		Use:   "insert APP NAME [--version V]",
		Short: "Create the app's secret NAME with the value on standard input, owned by the reconciler",
		Long: "insert creates the swarm secret that the recipe of APP calls NAME (its key under `secrets:` in\n" +
			"the compose file, e.g. db_password), as `abra app secret insert` does: for secrets marked\n" +
			"generate=false in the recipe's .env.sample, which the reconciler does not generate. The\n" +
			"secret gets the app's full name (<stack>_<name>_<version>) and its labels, so the reconciler\n" +
			"owns it, uses it, and removes it when the app is torn down.\n\n" +
			"The value is read from standard input (a pipe or a file, not a terminal) and never printed.\n" +
			"Exactly one trailing newline, the one echo adds, is dropped; anything else is kept as is.\n\n" +
			"The name and labels come from APP's spec in --specs, rendered with --recipes (and\n" +
			"--domain-suffix): give the same directories as reconciler run (or the RECONCILER_*\n" +
			"variables). The version is the one the spec's env or the recipe's .env.sample gives\n" +
			"(SECRET_<NAME>_VERSION), unless --version says otherwise (--version is not read from\n" +
			"RECONCILER_VERSION).\n\n" +
			"A swarm secret cannot change: if the secret exists, nothing is changed and the exit code is 1.\n" +
			"Remove it (docker secret rm) or insert the new value under a new version.",
		Example:           secretInsertExample,
		Args:              cobra.ExactArgs(2),
		ValidArgsFunction: completeApps(o),
		// Every flag can come from RECONCILER_<FLAG>, but a RECONCILER_VERSION set for another
		// purpose (the version of the reconciler to install) would silently name another secret.
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			versionGiven = cmd.Flags().Changed("version")
			if pre := cmd.Root().PersistentPreRunE; pre != nil {
				if err := pre(cmd, args); err != nil {
					return err
				}
			}
			if !versionGiven {
				version = ""
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			app, name := args[0], args[1]
			if versionGiven && version == "" {
				return errors.New("--version: give the version, e.g. --version v2")
			}
			defer manifests.Cleanup()
			g, err := secretToInsert(cmd.Context(), o, app, name, version)
			if err != nil {
				return err
			}
			if err := notTerminal(cmd.InOrStdin()); err != nil {
				return err
			}
			engine, err := newEngine()
			if err != nil {
				return err
			}
			defer engine.Close()
			id, err := insertSecret(cmd.Context(), engine, app, g, cmd.InOrStdin())
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "%s: secret %s created (id %s); the reconciler removes it when the app is torn down\n",
				app, g.Name, id)
			return nil
		},
	}
	cmd.Flags().StringVar(&version, "version", "", "the secret's version (default: SECRET_<NAME>_VERSION of the spec's env or .env.sample)")
	return cmd
}

// secretToInsert renders app's spec as the reconciler does (same owner label) and returns the
// generated secret the recipe calls name, rendered with its version variable set to version
// when that is not empty.
func secretToInsert(ctx context.Context, o *options, app, name, version string) (*manifests.GeneratedSecret, error) {
	if err := spec.ValidateAppName(app); err != nil {
		return nil, err
	}
	d, err := spec.LoadDeployed(o.specs, app, o.defaults(), o.deployed)
	if err != nil {
		return nil, fmt.Errorf("%w: pass --specs DIR (or set RECONCILER_SPECS) as given to reconciler run", err)
	}
	if d == nil {
		return nil, fmt.Errorf("%s: no spec for it in %s: the secret's name and labels come from the app's spec "+
			"(pass --specs DIR as given to reconciler run)", app, o.specs)
	}
	if d.Err != nil {
		return nil, fmt.Errorf("%s: the spec is not valid: %w", app, d.Err)
	}
	s := d.Spec
	// A spec that leaves its domain to the default runs under the domain its status records
	// (the reconciler's --domain-suffix, which this command may not have been given), as
	// render and diff read it: the secret must have the name the app looks for.
	deployed, err := readDeployedSpec(d.Path, o)
	if err != nil {
		return nil, err
	}
	s.Domain = deployed.spec.Domain
	stack, err := spec.StackName(s.Domain)
	if err != nil {
		return nil, err
	}
	dir, recipeVersion, err := o.fetchRecipe(ctx, s, o.deployedCommit(d))
	if err != nil {
		return nil, err
	}
	render := func(env map[string]string) (*manifests.Rendered, error) {
		return manifests.Render(ctx, dir, manifests.Request{
			App: app, Recipe: s.Recipe, Version: recipeVersion, Domain: s.Domain, Stack: stack, Env: env,
			Owner: o.ownerOf(o.specs), Overlays: manifests.OverlaysOf(d.Overlays),
		})
	}
	r, err := render(s.Env)
	if err != nil {
		return nil, err
	}
	g, err := findSecret(r, name)
	if err != nil || version == "" {
		return g, err
	}
	env := maps.Clone(s.Env)
	if env == nil {
		env = map[string]string{}
	}
	env[g.VersionVar] = version
	if r, err = render(env); err != nil {
		return nil, fmt.Errorf("--version %s: %w", version, err)
	}
	return findSecret(r, name)
}

// findSecret returns the generated secret whose compose key is name, or an error listing
// the recipe's secrets.
func findSecret(r *manifests.Rendered, name string) (*manifests.GeneratedSecret, error) {
	var known []string
	for i := range r.GeneratedSecrets {
		g := &r.GeneratedSecrets[i]
		if g.ID == name {
			return g, nil
		}
		if g.Generate {
			known = append(known, g.ID)
		} else {
			known = append(known, g.ID+" (generate=false)")
		}
	}
	if len(known) == 0 {
		return nil, fmt.Errorf("%s: recipe %s has no secret %q, nor any other to insert (none of its external secrets "+
			"is named ${STACK_NAME}_<name>_${SECRET_<NAME>_VERSION})", r.App, r.Revision, name)
	}
	sort.Strings(known)
	return nil, fmt.Errorf("%s: recipe %s has no secret %q; its secrets are: %s", r.App, r.Revision, name, strings.Join(known, ", "))
}

// notTerminal refuses a terminal as standard input: what is typed there shows on the screen.
func notTerminal(in io.Reader) error {
	f, ok := in.(*os.File)
	if !ok {
		return nil
	}
	if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
		return errors.New("standard input is a terminal (or another device): pipe the value in or read it " +
			"from a file, e.g. printf '%s' \"$VALUE\" | reconciler secret insert APP NAME")
	}
	return nil
}

// insertSecret creates g with the value read from in, unless a secret of that name exists.
// It returns the new secret's ID. The value appears in no error and no output.
func insertSecret(ctx context.Context, e secretEngine, app string, g *manifests.GeneratedSecret, in io.Reader) (string, error) {
	live, err := e.SecretList(ctx, swarm.SecretListOptions{Filters: filters.NewArgs(filters.Arg("name", g.Name))})
	if err != nil {
		return "", fmt.Errorf("list secrets: %w", err)
	}
	for i := range live {
		if live[i].Spec.Name == g.Name { // the name filter also matches longer names
			return "", secretExists(app, g, &live[i])
		}
	}
	value, err := readSecretValue(in)
	if err != nil {
		return "", err
	}
	defer clear(value)
	fp, err := manifests.NewFingerprint(value)
	if err != nil {
		return "", err
	}
	labels := map[string]string{manifests.LabelFingerprint: fp} // the app's task logs are redacted by it
	if lines, err := manifests.LineFingerprints(value); err != nil {
		return "", err
	} else if lines != "" {
		labels[manifests.LabelLineFingerprints] = lines // ... and a line at a time, for a value of several
	}
	maps.Copy(labels, g.Labels)
	resp, err := e.SecretCreate(ctx, swarm.SecretSpec{Annotations: swarm.Annotations{Name: g.Name, Labels: labels}, Data: value})
	if cerrdefs.IsConflict(err) {
		return "", secretExists(app, g, nil)
	}
	if err != nil {
		return "", fmt.Errorf("create secret %s: %w", g.Name, err)
	}
	return resp.ID, nil
}

// readSecretValue reads the value to its end and drops one trailing newline (echo's).
func readSecretValue(in io.Reader) ([]byte, error) {
	value, err := io.ReadAll(io.LimitReader(in, maxSecretValue+2))
	if err != nil {
		return nil, fmt.Errorf("read the value from standard input: %w", err)
	}
	value = bytes.TrimSuffix(value, []byte("\n"))
	switch {
	case len(value) == 0:
		return nil, errors.New("standard input is empty: pipe the secret's value in")
	case len(value) >= maxSecretValue: // swarm takes less than 500 KiB, not 500 KiB
		clear(value)
		return nil, fmt.Errorf("the value on standard input is at or over swarm's limit for a secret (%d KiB)", maxSecretValue/1024)
	}
	return value, nil
}

// secretExists says that g exists already, whose it is (when live is known), and what to do.
func secretExists(app string, g *manifests.GeneratedSecret, live *swarm.Secret) error {
	whose := ""
	if live != nil {
		l := live.Spec.Labels
		switch {
		case l[manifests.LabelApp] == "":
			whose = fmt.Sprintf(", not made by the reconciler (no %s label)", manifests.LabelApp)
		case l[manifests.LabelApp] == app && l[manifests.LabelOwner] == g.Labels[manifests.LabelOwner]:
			whose = ", owned by this app"
		default:
			whose = fmt.Sprintf(", labelled for app %q of spec directory %q", l[manifests.LabelApp], l[manifests.LabelOwner])
		}
	}
	return fmt.Errorf("%s: secret %s already exists%s; nothing changed. A swarm secret cannot change: remove it first "+
		"(docker secret rm %s, once no service uses it), or insert the value under a new version "+
		"(reconciler secret insert %s %s --version V, then set %s: V in the spec's env)",
		app, g.Name, whose, g.Name, app, g.ID, g.VersionVar)
}
