package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/swarm"
	"github.com/spf13/cobra"

	"github.com/swarm-reconciler/reconciler/manifests"
	"github.com/swarm-reconciler/reconciler/spec"
)

// rendering is what `render` prints. Secret values are never in it.
type rendering struct {
	App              string                           `json:"app"`
	Stack            string                           `json:"stack"`
	Revision         string                           `json:"revision"`
	Networks         map[string]network.CreateOptions `json:"networks"`
	ExternalNetworks []string                         `json:"externalNetworks,omitempty"`
	Secrets          []secretRef                      `json:"secrets"`
	Configs          []swarm.ConfigSpec               `json:"configs"`
	Services         map[string]swarm.ServiceSpec     `json:"services"`
	// Backup is the backup plan the recipe's backupbot labels declare, when they declare one.
	Backup *manifests.BackupPlan `json:"backup,omitempty"`
	// Policy is what the deploy policy (--policy) says of the services.
	Policy policyReport `json:"policy"`
}

// policyReport is the deploy policy's verdict on a rendered app.
type policyReport struct {
	Level    manifests.Level       `json:"level"`
	Denied   []manifests.Violation `json:"denied"`
	Warnings []manifests.Violation `json:"warnings"`
}

// checkPolicy renders the policy's verdict, printing each denial and warning to w.
func checkPolicy(o *options, r *manifests.Rendered, services map[string]swarm.ServiceSpec, w io.Writer, path string) (policyReport, error) {
	p, err := o.policy()
	if err != nil {
		return policyReport{}, err
	}
	rep := policyReport{Level: p.Level, Denied: []manifests.Violation{}, Warnings: []manifests.Violation{}}
	denied, warnings := r.CheckPolicy(p, services)
	rep.Denied = append(rep.Denied, denied...)
	rep.Warnings = append(rep.Warnings, warnings...)
	for _, v := range denied {
		fmt.Fprintf(w, "%s: denied by the %s policy: %s\n", path, p.Level, v)
	}
	for _, v := range warnings {
		fmt.Fprintf(w, "%s: warning (%s policy): %s\n", path, p.Level, v)
	}
	return rep, nil
}

type secretRef struct {
	Name      string            `json:"name"`
	Labels    map[string]string `json:"labels"`
	Generated bool              `json:"generated"`
}

func renderCmd(o *options) *cobra.Command {
	return &cobra.Command{
		Use:     "render SPEC",
		Short:   "Print the swarm objects a spec would create, and its backup plan, as JSON; nothing is written to the engine",
		Example: `  reconciler render specs/ch-1a2b3c.yml --recipes ./recipes`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path := args[0]
			f, err := readDeployedSpec(path, o)
			if err != nil {
				return err
			}
			s, app := f.spec, f.app
			stack, err := spec.StackName(s.Domain)
			if err != nil {
				return err
			}
			defer manifests.Cleanup()
			dir, version, err := o.fetchRecipe(cmd.Context(), s, o.deployedCommit(desiredOf(f, path)))
			if err != nil {
				return err
			}
			r, err := manifests.Render(cmd.Context(), dir, manifests.Request{
				App: app, Recipe: s.Recipe, Version: version, Domain: s.Domain, Stack: stack, Env: s.Env,
				Owner: o.ownerOf(o.specs), Overlays: manifests.OverlaysOf(f.overlays),
			})
			if err != nil {
				return err
			}
			services, err := r.Services(cmd.Context(), manifests.PlaceholderResolver())
			if err != nil {
				return err
			}
			out := rendering{App: app, Stack: stack, Revision: r.Revision, Networks: r.Networks,
				ExternalNetworks: r.ExternalNetworks, Configs: r.Configs, Services: services, Secrets: []secretRef{}}
			for _, s := range r.Secrets {
				out.Secrets = append(out.Secrets, secretRef{Name: s.Name, Labels: s.Labels})
			}
			for _, g := range r.GeneratedSecrets {
				out.Secrets = append(out.Secrets, secretRef{Name: g.Name, Labels: g.Labels, Generated: true})
			}
			plan, err := r.BackupPlan()
			if err != nil {
				return err
			}
			if plan.Enabled() {
				out.Backup = plan
			}
			if out.Policy, err = checkPolicy(o, r, services, cmd.ErrOrStderr(), path); err != nil {
				return err
			}
			enc := json.NewEncoder(cmd.OutOrStdout())
			enc.SetIndent("", "  ")
			if err := enc.Encode(out); err != nil {
				return err
			}
			if len(out.Policy.Denied) > 0 {
				return &exitError{code: 1, err: fmt.Errorf("the %s policy denies %d things %s asks for; nothing would be created", out.Policy.Level, len(out.Policy.Denied), app)}
			}
			return nil
		},
	}
}

// unsetDomainSuffix is a domain suffix no spec can name: parsing a spec with it tells whether
// the file sets its domain or takes the default.
const unsetDomainSuffix = "domain-unset.invalid"

// readDeployedSpec is readSpec for the commands that compare a spec with what runs (diff,
// render): a spec that leaves its domain to the default takes the domain its status records,
// which the running reconciler chose with its own --domain-suffix. Without this a diff run
// without that flag shows the whole app as to be moved.
func readDeployedSpec(path string, o *options) (specFile, error) {
	f, err := readSpec(path, o.defaults())
	if err != nil {
		return f, err
	}
	probe, err := spec.Parse(path, f.app, f.data, spec.Defaults{DomainSuffix: unsetDomainSuffix})
	if err != nil || probe.Domain != f.app+"."+unsetDomainSuffix {
		return f, nil // the file sets its domain
	}
	st, err := spec.ReadStatus(o.status, f.app)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return f, nil // never deployed: the flags' default stands
	case err != nil:
		return f, fmt.Errorf("%s: the spec leaves its domain to the default, and the domain the app runs under cannot be read from its status: %w; give --status the reconciler's status directory, or set domain in the spec", path, err)
	case st.Domain != "":
		f.spec.Domain = st.Domain
	}
	return f, nil
}

// specFile is one spec file as read and validated: the app name comes from the file name.
type specFile struct {
	app      string
	data     []byte
	spec     *spec.Spec
	overlays []spec.OverlayDoc
}

// readSpec reads and validates one spec file, its overlay files named relative to its own
// directory.
func readSpec(path string, d spec.Defaults) (specFile, error) {
	return readSpecIn(path, d, filepath.Dir(path))
}

// readSpecIn is readSpec with the overlay files named relative to overlayDir: the spec
// directory the file is applied to.
func readSpecIn(path string, d spec.Defaults, overlayDir string) (specFile, error) {
	app, ok := spec.AppName(filepath.Base(path))
	if !ok {
		return specFile{}, fmt.Errorf("%s: not a spec file name: use <app>.yml, <app>.yaml or <app>.json", path)
	}
	if err := spec.ValidateAppName(app); err != nil {
		return specFile{}, fmt.Errorf("%s: %w", path, err)
	}
	if err := spec.CheckSpecSize(path); err != nil {
		return specFile{}, err
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return specFile{}, err
	}
	s, err := spec.Parse(path, app, data, d)
	if err != nil {
		return specFile{}, err
	}
	overlays, err := spec.ReadOverlays(overlayDir, s)
	if err != nil {
		var fe *spec.FieldError
		if errors.As(err, &fe) {
			fe.File = path
		}
		return specFile{}, err
	}
	return specFile{app: app, data: data, spec: s, overlays: overlays}, nil
}
