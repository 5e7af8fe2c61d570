package controller

import (
	"context"
	"fmt"
	"time"

	"github.com/swarm-reconciler/reconciler/manifests"
	"github.com/swarm-reconciler/reconciler/spec"
)

// upgradeFrom is the version an upgrade-tier attempt starts from: the spec's upgradeFrom, or
// the release tag just before version.
func (r *Reconciler) upgradeFrom(ctx context.Context, s *spec.Spec) (string, error) {
	if s.UpgradeFrom != "" {
		return s.UpgradeFrom, nil
	}
	dir := r.recipesFor(s)
	if s.Source != "" {
		if _, err := r.remote().EnsureSource(ctx, dir, s.Recipe, s.Source, "", s.Version); err != nil {
			return "", err
		}
	} else if err := r.remote().Ensure(ctx, dir, s.Recipe, s.Version); err != nil {
		return "", err
	}
	from, err := manifests.PreviousTag(dir, s.Recipe, s.Version)
	if err != nil {
		return "", fmt.Errorf("tier upgrade: no version to upgrade from: %w (set upgradeFrom)", err)
	}
	return from, nil
}

// render renders an app's spec at version once per generation: the recipe at a tag or
// commit does not change.
func (r *Reconciler) render(ctx context.Context, d *spec.Desired, stack, version string) (*manifests.Rendered, error) {
	key := d.Generation + "\x00" + version
	r.mu.Lock()
	if r.renderG[d.App] == key {
		out := r.renders[d.App]
		r.mu.Unlock()
		return out, nil
	}
	r.mu.Unlock()
	s := d.Spec
	// A recipe or version not here yet is cloned or fetched first (--recipe-url, a spec's
	// source); one already here costs no network call. A ref is resolved to the commit to deploy.
	dir := r.recipesFor(s)
	if s.Source != "" {
		v, err := r.remote().EnsureSource(ctx, dir, s.Recipe, s.Source, s.Ref, version)
		if err != nil {
			return nil, err
		}
		version = v
	} else if err := r.remote().Ensure(ctx, dir, s.Recipe, version); err != nil {
		return nil, err
	}
	// A render of a recipe written by anyone is bounded on its own, not only by the pass: the
	// export honours the deadline between files.
	rctx, cancel := context.WithTimeout(ctx, renderTimeout)
	defer cancel()
	out, err := manifests.Render(rctx, dir, manifests.Request{
		App: d.App, Recipe: s.Recipe, Version: version, Domain: s.Domain, Stack: stack, Env: s.Env, Owner: r.Owner,
		Overlays: manifests.OverlaysOf(d.Overlays),
	})
	if err != nil {
		if rctx.Err() != nil && ctx.Err() == nil {
			return nil, fmt.Errorf("rendering %s@%s took longer than %s (a recipe too large to read, or a host too busy): retrying", s.Recipe, version, renderTimeout)
		}
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.renders == nil {
		r.renders, r.renderG = map[string]*manifests.Rendered{}, map[string]string{}
	}
	r.renders[d.App], r.renderG[d.App] = out, key
	return out, nil
}

// recipesFor is the recipes directory of an app: --recipes, or its source's own folder.
func (r *Reconciler) recipesFor(s *spec.Spec) string {
	if s.Source != "" {
		return manifests.SourceDir(r.RecipesDir, s.Source)
	}
	return r.RecipesDir
}

// remote is Remote, or one that only fetches what repositories lack from their origins.
func (r *Reconciler) remote() *manifests.Remote {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.Remote == nil {
		r.Remote = &manifests.Remote{}
	}
	return r.Remote
}

func (r *Reconciler) forget(app string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.renders, app)
	delete(r.renderG, app)
}

// renderTimeout bounds one render (export, load, convert) of a recipe version.
const renderTimeout = time.Minute
