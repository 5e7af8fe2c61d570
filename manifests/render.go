package manifests

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/docker/cli/cli/compose/convert"
	composetypes "github.com/docker/cli/cli/compose/types"
	"github.com/go-git/go-git/v5"
)

// Render reads the recipe at the version and converts it. recipesDir/<recipe> is a git
// repository; it is only read, never checked out: the files of the resolved commit are
// exported into a private read-only directory and loaded from there. That export is kept for
// later renders of the same commit (see Cleanup); the version is resolved anew on every call,
// so a tag moved to another commit takes effect at once.
//
// Errors wrapping ErrInput are the user's to fix (unknown recipe or version, compose that does
// not load, bad .env.sample, names swarm would refuse, ...); others (I/O, a corrupt repository)
// may pass on retry.
func Render(ctx context.Context, recipesDir string, req Request) (*Rendered, error) {
	r, err := render(ctx, recipesDir, req)
	if err != nil {
		return nil, fmt.Errorf("render %s@%s: %w", req.Recipe, req.Version, err)
	}
	return r, nil
}

func render(ctx context.Context, recipesDir string, req Request) (*Rendered, error) {
	if req.Stack == "" {
		return nil, fmt.Errorf("%w: empty stack name", ErrInput)
	}
	var rev revision
	var repoDir string
	err := repos.with(ctx, recipesDir, req.Recipe, func(repo *git.Repository, dir string) error {
		var err error
		rev, err = resolveVersion(repo, req.Version)
		repoDir = dir
		return err
	})
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	t, err := trees.acquire(ctx, treeKey{repo: repoDir, commit: rev.commit}, func() (string, error) {
		var dir string
		err := repos.with(ctx, recipesDir, req.Recipe, func(repo *git.Repository, _ string) error {
			var err error
			dir, err = exportCommit(ctx, repo, rev.commit)
			return err
		})
		return dir, err
	})
	if err != nil {
		return nil, err
	}
	defer trees.release(t)
	root := t.dir

	r := &Rendered{
		App:       req.App,
		Stack:     req.Stack,
		Recipe:    req.Recipe,
		Version:   req.Version,
		Domain:    req.Domain,
		Owner:     req.Owner,
		Commit:    rev.commit.String(),
		Chaos:     rev.chaos,
		namespace: req.Stack,
	}
	r.Revision = fmt.Sprintf("%s@%s (%s)", r.Recipe, r.Version, shortHash(r.Commit))

	sample, err := readOptional(root, ".env.sample")
	if err != nil {
		return nil, err
	}
	abraSh, err := readOptional(root, "abra.sh")
	if err != nil {
		return nil, err
	}
	env, err := buildEnv(sample, abraSh, req.Env, req.Domain, req.Stack)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInput, err)
	}
	r.Env = env.vars

	paths, err := composeFiles(root, env.vars["COMPOSE_FILE"])
	if err != nil {
		return nil, err
	}
	cfg, raws, err := loadCompose(root, paths, req.Overlays, env.vars, t.parse)
	if err != nil {
		return nil, err
	}
	exposeEnv(cfg, env.vars)
	r.config = cfg

	if err := r.convertObjects(root, raws, env.sample); err != nil {
		return nil, err
	}
	// Convert the services once with placeholder IDs now: what fails here (an undefined
	// secret, a bad duration, ...) is the recipe's or the spec's fault, and must show as Invalid
	// before anything is created, not later as a failed deploy.
	if _, err := r.Services(ctx, PlaceholderResolver()); err != nil {
		if ctx.Err() != nil {
			return nil, err
		}
		return nil, fmt.Errorf("%w: %v", ErrInput, err)
	}
	return r, nil
}

// convertObjects converts networks, secrets and configs as `docker stack deploy` does, and
// finds the secrets to generate. Secret and config files are read here, while the render holds
// the export.
func (r *Rendered) convertObjects(root string, raws []map[string]any, sample *envFile) error {
	ns := convert.NewNamespace(r.namespace)

	networks, external := convert.Networks(ns, r.config.Networks, servicesNetworks(r.config.Services))
	for name, n := range networks {
		n.Labels = r.ownLabels(n.Labels)
		if n.Driver == "" {
			// docker stack deploy's createNetworks default: a service can only use a
			// swarm-scoped network.
			n.Driver = "overlay"
		}
		networks[name] = n
	}
	r.Networks = networks
	sort.Strings(external)
	r.ExternalNetworks = slices.Compact(external)

	// A config or secret read from a file reads it from the recipe, never from the host: a
	// recipe must not copy /etc/shadow or the reconciler's credentials into its own container.
	var total int64
	for _, name := range slices.Sorted(maps.Keys(r.config.Configs)) {
		if err := fileInside(root, "config", name, r.config.Configs[name].File); err != nil {
			return err
		}
		if err := fileSize(root, "config", name, r.config.Configs[name].File, maxConfigData, &total); err != nil {
			return err
		}
	}
	for _, name := range slices.Sorted(maps.Keys(r.config.Secrets)) {
		if err := fileInside(root, "secret", name, r.config.Secrets[name].File); err != nil {
			return err
		}
		if err := fileSize(root, "secret", name, r.config.Secrets[name].File, maxSecretLength, &total); err != nil {
			return err
		}
	}
	secrets, err := convert.Secrets(ns, r.config.Secrets)
	if err != nil {
		return fmt.Errorf("%w: read secret file: %v", ErrInput, relPaths(err, root))
	}
	names := make([]string, 0, len(secrets))
	for i := range secrets {
		secrets[i].Labels = r.ownLabels(secrets[i].Labels)
		names = append(names, secrets[i].Name)
	}
	if err := checkObjectNames("secret", names); err != nil {
		return err
	}
	sort.Slice(secrets, func(i, j int) bool { return secrets[i].Name < secrets[j].Name })
	r.Secrets = secrets

	configs, err := convert.Configs(ns, r.config.Configs)
	if err != nil {
		return fmt.Errorf("%w: read config file: %v", ErrInput, relPaths(err, root))
	}
	names = names[:0]
	for i := range configs {
		configs[i].Labels = r.ownLabels(configs[i].Labels)
		names = append(names, configs[i].Name)
	}
	if err := checkObjectNames("config", names); err != nil {
		return err
	}
	sort.Slice(configs, func(i, j int) bool { return configs[i].Name < configs[j].Name })
	r.Configs = configs

	r.GeneratedSecrets, err = generatedSecrets(r.config, raws, sample, func() map[string]string { return r.ownLabels(nil) })
	if err != nil {
		return err
	}

	images := make([]string, 0, len(r.config.Services))
	for _, s := range r.config.Services {
		images = append(images, s.Image)
	}
	sort.Strings(images)
	r.Images = slices.Compact(images)
	return nil
}

// servicesNetworks is docker stack deploy's getServicesDeclaredNetworks: the networks the
// services attach to; a service without networks is on "default".
func servicesNetworks(services []composetypes.ServiceConfig) map[string]struct{} {
	out := map[string]struct{}{}
	for _, s := range services {
		if len(s.Networks) == 0 {
			out["default"] = struct{}{}
			continue
		}
		for n := range s.Networks {
			out[n] = struct{}{}
		}
	}
	return out
}

// exposeEnv does what abra's ExposeAllEnv does on deploy: every app env variable that the app
// service does not set itself becomes part of its environment.
func exposeEnv(cfg *composetypes.Config, env map[string]string) {
	for i := range cfg.Services {
		s := &cfg.Services[i]
		if s.Name != appService {
			continue
		}
		if s.Environment == nil {
			s.Environment = composetypes.MappingWithEquals{}
		}
		for k, v := range env {
			if _, ok := s.Environment[k]; !ok {
				s.Environment[k] = &v
			}
		}
	}
}

// readOptional reads a file of the export; a missing file reads as empty (a recipe need not
// have .env.sample or abra.sh).
func readOptional(root, name string) (string, error) {
	p := filepath.Join(root, name)
	fi, err := os.Stat(p)
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err == nil && fi.Size() > MaxEnvFileBytes {
		return "", fmt.Errorf("%w: %s is %d bytes: at most %d (1 MiB)", ErrInput, name, fi.Size(), MaxEnvFileBytes)
	}
	b, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read %s: %w", name, err)
	}
	return string(b), nil
}

// MaxEnvFileBytes bounds .env.sample and abra.sh: the app's env, not a dataset.
const MaxEnvFileBytes = 1 << 20

// Swarm's limits on one config's and one secret's data (swarmkit's MaxConfigSize and
// MaxSecretSize, both exclusive), and the bound of all of an app's together: each declaration reads its file
// whole into memory, and a recipe may declare many of one file.
const (
	maxConfigData    = 1000 * 1024
	MaxObjectDataSum = 32 << 20
)

// fileSize refuses a config's or secret's file that swarm would refuse (empty, or max bytes
// or more), or one that takes the sum of
// the app's config and secret data (*total) over MaxObjectDataSum, before anything reads it.
func fileSize(root, kind, name, file string, max int64, total *int64) error {
	if file == "" {
		return nil
	}
	fi, err := os.Stat(file)
	if err != nil {
		return nil // the conversion names what is wrong with it
	}
	rel := mustRel(root, file)
	if fi.Mode().IsRegular() && (fi.Size() >= max || fi.Size() == 0) {
		// swarmkit: "data must be larger than 0 and less than <max> bytes"
		return fmt.Errorf("%w: %s %s: file %s is %d bytes: swarm takes a %s of 1 to %d bytes", ErrInput, kind, name, rel, fi.Size(), kind, max-1)
	}
	if *total += fi.Size(); *total > MaxObjectDataSum {
		return fmt.Errorf("%w: %s %s: file %s: the app's configs and secrets add up to more than %d MiB", ErrInput, kind, name, rel, MaxObjectDataSum>>20)
	}
	return nil
}

// fileInside refuses a config's or secret's file that is not inside the recipe's tree at root,
// symlinks followed.
func fileInside(root, kind, name, file string) error {
	if file == "" {
		return nil
	}
	realRoot, err := filepath.EvalSymlinks(root)
	if err != nil {
		return err
	}
	real, err := filepath.EvalSymlinks(file)
	if errors.Is(err, os.ErrNotExist) {
		real = filepath.Clean(file) // the conversion names the missing file
	} else if err != nil {
		return fmt.Errorf("%w: %s %s: file %s: %v", ErrInput, kind, name, file, err)
	}
	if rel, err := filepath.Rel(realRoot, real); err != nil || rel == ".." || strings.HasPrefix(rel, "../") || filepath.IsAbs(rel) {
		return fmt.Errorf("%w: %s %s: file %s is outside the recipe: a recipe's configs and secrets come from its own files", ErrInput, kind, name, file)
	}
	return nil
}
