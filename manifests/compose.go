package manifests

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"unicode"

	"github.com/distribution/reference"
	"github.com/docker/cli/cli/compose/loader"
	"github.com/docker/cli/cli/compose/schema"
	"github.com/docker/cli/cli/compose/template"
	composetypes "github.com/docker/cli/cli/compose/types"
	"gopkg.in/yaml.v3"
)

// Bounds of an app's compose files: how many COMPOSE_FILE may name, how large each may be, how
// many services they may declare together.
const (
	MaxComposeFiles = 32
	MaxComposeBytes = 4 << 20
	MaxServices     = 100
)

// composeFiles returns the compose files of COMPOSE_FILE (colon-separated, relative to the
// recipe root) as paths inside root. Unset or empty means compose.yml, or docker-compose.yml
// when only that exists, as abra does.
func composeFiles(root, composeFile string) ([]string, error) {
	var names []string
	for name := range strings.SplitSeq(composeFile, ":") {
		if name = strings.TrimSpace(name); name != "" {
			names = append(names, name)
		}
	}
	if len(names) == 0 {
		names = []string{"compose.yml"}
		if _, err := os.Stat(filepath.Join(root, "compose.yml")); errors.Is(err, os.ErrNotExist) {
			if _, err := os.Stat(filepath.Join(root, "docker-compose.yml")); err == nil {
				names = []string{"docker-compose.yml"}
			}
		}
	}
	if len(names) > MaxComposeFiles {
		return nil, fmt.Errorf("%w: COMPOSE_FILE names %d files: at most %d", ErrInput, len(names), MaxComposeFiles)
	}
	paths := make([]string, 0, len(names))
	for _, name := range names {
		if filepath.IsAbs(name) {
			return nil, fmt.Errorf("%w: COMPOSE_FILE entry %q is absolute: name files relative to the recipe", ErrInput, name)
		}
		p, err := inside(root, name)
		if err != nil {
			return nil, fmt.Errorf("COMPOSE_FILE entry %q: %w", name, err)
		}
		fi, err := os.Stat(p)
		if err != nil || !fi.Mode().IsRegular() {
			return nil, fmt.Errorf("%w: COMPOSE_FILE names %q, which the recipe does not have at this version; fix COMPOSE_FILE in the spec env (it is %q)",
				ErrInput, name, composeFile)
		}
		if fi.Size() > MaxComposeBytes {
			return nil, fmt.Errorf("%w: compose file %s is %d bytes: at most %d (4 MiB)", ErrInput, name, fi.Size(), MaxComposeBytes)
		}
		paths = append(paths, p)
	}
	return paths, nil
}

// loadCompose reads and merges the compose files as `docker stack deploy -c a -c b ...` does
// (cli/command/stack/loader): the working directory is the first file's folder, so relative
// `file:` paths of configs and secrets resolve against it; env is the interpolation env.
// It also returns the raw (uninterpolated) YAML of each file, in order; those maps are shared
// (parse keeps them for the tree) and must not be modified.
//
// overlays come after the files, as more -c files: an overlay that declares no version takes
// the recipe's (docker would refuse the mismatch; a CI's patch should not have to repeat it).
// Each is loaded on its own first, so that what docker refuses in it is said naming it.
func loadCompose(root string, paths []string, overlays []Overlay, env map[string]string, parse func(path string) (raw map[string]any, parseErr, err error)) (*composetypes.Config, []map[string]any, error) {
	details := composetypes.ConfigDetails{
		WorkingDir:  filepath.Dir(paths[0]),
		Environment: env,
	}
	var raws []map[string]any
	versions := map[string][]string{}
	for _, p := range paths {
		name := mustRel(root, p)
		raw, parseErr, err := parse(p)
		if err != nil {
			return nil, nil, fmt.Errorf("read %s: %w", name, err)
		}
		if parseErr != nil {
			return nil, nil, fmt.Errorf("%w: %s: %v", ErrInput, name, parseErr)
		}
		if err := checkEnvFiles(root, details.WorkingDir, raw, env, name); err != nil {
			return nil, nil, err
		}
		raws = append(raws, raw)
		// Load gets its own copy: raw is shared by every render of this tree, and nothing
		// promises that loading leaves its input alone.
		dict := copyYAML(raw).(map[string]any)
		details.ConfigFiles = append(details.ConfigFiles, composetypes.ConfigFile{Filename: p, Config: dict})
		v := schema.Version(dict)
		versions[v] = append(versions[v], name)
	}
	if len(versions) > 1 {
		var parts []string
		for v, files := range versions {
			parts = append(parts, fmt.Sprintf("%s in %s", v, strings.Join(files, ", ")))
		}
		sort.Strings(parts)
		return nil, nil, fmt.Errorf("%w: the compose files declare different versions (%s): all files in COMPOSE_FILE must declare the same version",
			ErrInput, strings.Join(parts, "; "))
	}
	details.Version = schema.Version(details.ConfigFiles[0].Config)
	for _, o := range overlays {
		dict, err := loadOverlay(root, details, o)
		if err != nil {
			return nil, nil, err
		}
		raws = append(raws, dict)
		details.ConfigFiles = append(details.ConfigFiles, composetypes.ConfigFile{Filename: o.Name, Config: copyYAML(dict).(map[string]any)})
	}

	budget := &interpolationBudget{left: MaxInterpolatedBytes}
	cfg, err := loader.Load(details, budget.option, skipValidatedSchema(details))
	if budget.exceeded {
		return nil, nil, budget.err()
	}
	if err != nil {
		var fpe *loader.ForbiddenPropertiesError
		if errors.As(err, &fpe) {
			props := slices.Sorted(func(yield func(string) bool) {
				for k, v := range fpe.Properties {
					if !yield(k + ": " + v) {
						return
					}
				}
			})
			return nil, nil, fmt.Errorf("%w: compose file contains options swarm does not support: %s", ErrInput, strings.Join(props, "; "))
		}
		return nil, nil, fmt.Errorf("%w: load compose files: %v", ErrInput, relPaths(err, root))
	}
	for _, svc := range cfg.Services {
		for _, v := range svc.Volumes {
			// The loader made a relative source absolute against the recipe's export: a private
			// folder of the reconciler's node, removed with the export, whose random name would
			// change the spec on every render (abra binds its own checkout, on its host alone).
			if rel, err := filepath.Rel(root, v.Source); v.Type == "bind" && err == nil && rel != ".." && !strings.HasPrefix(rel, "../") {
				return nil, nil, fmt.Errorf("%w: service %s: bind mount of the recipe's own %s: a recipe's files are on no node of the swarm; give the file to the service as a config (configs: file: %s)",
					ErrInput, svc.Name, rel, rel)
			}
		}
		for _, labels := range []composetypes.Labels{svc.Deploy.Labels, svc.Labels} {
			for k := range labels {
				if strings.HasPrefix(k, "swarm-reconciler.") {
					return nil, nil, fmt.Errorf("%w: service %s: label %s: labels under swarm-reconciler. are the reconciler's own (ownership, jobs); a recipe may not set them", ErrInput, svc.Name, k)
				}
			}
		}
	}
	// The stack's other objects: ours are stamped over the recipe's only where we have a value
	// (no owner, no domain: none), and a fingerprint or job label of the recipe's would be read
	// as ours.
	for _, o := range []struct {
		kind   string
		labels map[string]composetypes.Labels
	}{
		{"network", labelsOf(cfg.Networks, func(n composetypes.NetworkConfig) composetypes.Labels { return n.Labels })},
		{"volume", labelsOf(cfg.Volumes, func(v composetypes.VolumeConfig) composetypes.Labels { return v.Labels })},
		{"config", labelsOf(cfg.Configs, func(c composetypes.ConfigObjConfig) composetypes.Labels { return c.Labels })},
		{"secret", labelsOf(cfg.Secrets, func(s composetypes.SecretConfig) composetypes.Labels { return s.Labels })},
	} {
		for _, name := range slices.Sorted(maps.Keys(o.labels)) {
			for _, k := range slices.Sorted(maps.Keys(o.labels[name])) {
				if strings.HasPrefix(k, "swarm-reconciler.") {
					return nil, nil, fmt.Errorf("%w: %s %s: label %s: labels under swarm-reconciler. are the reconciler's own (ownership, jobs); a recipe may not set them", ErrInput, o.kind, name, k)
				}
			}
		}
	}
	if len(cfg.Services) > MaxServices {
		return nil, nil, fmt.Errorf("%w: the compose files declare %d services: an app may have at most %d", ErrInput, len(cfg.Services), MaxServices)
	}
	// As `docker stack deploy` does before converting: every service needs a valid image.
	for _, svc := range cfg.Services {
		if svc.Image == "" {
			if o, line, ok := overlayOnlyService(raws[:len(paths)], overlays, svc.Name); ok {
				return nil, nil, fmt.Errorf("%w: overlay %s, line %d: services.%s: the recipe has no service %s, and the overlay does not give it an image: name one of the recipe's services (%s), or add a whole service",
					ErrInput, o.Name, line, svc.Name, svc.Name, strings.Join(serviceNames(raws[:len(paths)]), ", "))
			}
			return nil, nil, fmt.Errorf("%w: service %s has no image", ErrInput, svc.Name)
		}
		if _, err := reference.ParseAnyReference(svc.Image); err != nil {
			return nil, nil, fmt.Errorf("%w: invalid image reference %q for service %s: %v", ErrInput, svc.Image, svc.Name, err)
		}
	}
	return cfg, raws, nil
}

// relPaths strips the private export directory from loader errors, which name files by path.
func relPaths(err error, root string) string {
	return strings.ReplaceAll(err.Error(), root+string(filepath.Separator), "")
}

// mustRel names a file of the export relative to its root, for messages.
func mustRel(root, p string) string {
	r, err := filepath.Rel(root, p)
	if err != nil {
		return p
	}
	return filepath.ToSlash(r)
}

// loadOverlay parses one overlay and loads it alone, as docker validates and loads every -c
// file before merging them: what it refuses is said naming the overlay, and the line of the
// field where the message names one.
func loadOverlay(root string, details composetypes.ConfigDetails, o Overlay) (map[string]any, error) {
	where := "overlay " + o.Name
	if o.Line > 0 {
		where += fmt.Sprintf(" (the inline document at line %d of the spec)", o.Line)
	}
	if len(o.Data) > MaxComposeBytes {
		return nil, fmt.Errorf("%w: %s is %d bytes: at most %d (4 MiB)", ErrInput, where, len(o.Data), MaxComposeBytes)
	}
	dict, err := loader.ParseYAML(o.Data)
	if err != nil {
		return nil, fmt.Errorf("%w: %s does not parse: %v", ErrInput, where, err)
	}
	if _, ok := dict["version"]; !ok {
		dict["version"] = details.Version
	} else if v := schema.Version(dict); v != details.Version {
		return nil, fmt.Errorf("%w: %s declares compose version %s and the recipe's files %s: give it version %q or none", ErrInput, where, v, details.Version, details.Version)
	}
	if err := checkEnvFiles(root, details.WorkingDir, dict, details.Environment, where); err != nil {
		return nil, err
	}
	alone := composetypes.ConfigDetails{WorkingDir: details.WorkingDir, Environment: details.Environment, Version: details.Version,
		ConfigFiles: []composetypes.ConfigFile{{Filename: o.Name, Config: copyYAML(dict).(map[string]any)}}}
	budget := &interpolationBudget{left: MaxInterpolatedBytes}
	_, err = loader.Load(alone, budget.option)
	if budget.exceeded {
		return nil, fmt.Errorf("%w: %s: %v", ErrInput, where, budget.err())
	}
	if err != nil {
		msg := err.Error()
		if line := overlayLine(o.Data, msg); line > 0 && o.Line > 0 {
			// A block scalar's document starts on the line after its key's.
			return nil, fmt.Errorf("%w: overlay %s, line %d of the spec: %s", ErrInput, o.Name, o.Line+line, msg)
		} else if line > 0 {
			return nil, fmt.Errorf("%w: %s, line %d: %s", ErrInput, where, line, msg)
		}
		return nil, fmt.Errorf("%w: %s: %s", ErrInput, where, msg)
	}
	return dict, nil
}

// overlayOnlyService finds the first overlay declaring service name when none of the recipe's
// files (recipe) does, with the line of its key (in the spec, for an inline overlay).
func overlayOnlyService(recipe []map[string]any, overlays []Overlay, name string) (Overlay, int, bool) {
	if slices.Contains(serviceNames(recipe), name) {
		return Overlay{}, 0, false
	}
	for _, o := range overlays {
		dict, err := loader.ParseYAML(o.Data)
		if err != nil || !slices.Contains(serviceNames([]map[string]any{dict}), name) {
			continue
		}
		if line := overlayLine(o.Data, "services."+name+" "); line > 0 {
			if o.Line > 0 {
				line += o.Line
			}
			return o, line, true
		}
	}
	return Overlay{}, 0, false
}

// serviceNames are the services the compose files declare, sorted.
func serviceNames(files []map[string]any) []string {
	var names []string
	for _, f := range files {
		if svcs, ok := f["services"].(map[string]any); ok {
			for n := range svcs {
				if !slices.Contains(names, n) {
					names = append(names, n)
				}
			}
		}
	}
	sort.Strings(names)
	return names
}

// overlayLine finds the line of the field a loader message starts with ("services.app.ports.0
// must be ...", "services.app Additional property x is not allowed"): the deepest part of
// that path the document has; 0 when the message names no field of it.
func overlayLine(data []byte, msg string) int {
	path, _, _ := strings.Cut(msg, " ")
	var doc yaml.Node
	if yaml.Unmarshal(data, &doc) != nil || len(doc.Content) == 0 {
		return 0
	}
	n, line := doc.Content[0], 0
	for _, part := range strings.Split(path, ".") {
		next := (*yaml.Node)(nil)
		switch n.Kind {
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == part {
					line, next = n.Content[i].Line, n.Content[i+1]
					break
				}
			}
		case yaml.SequenceNode:
			if i, err := strconv.Atoi(part); err == nil && i >= 0 && i < len(n.Content) {
				line, next = n.Content[i].Line, n.Content[i]
			}
		}
		if next == nil {
			break
		}
		n = next
	}
	return line
}

// copyYAML deep-copies what loader.ParseYAML returns: maps with string keys, lists, scalars.
func copyYAML(v any) any {
	switch v := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			out[k] = copyYAML(e)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = copyYAML(e)
		}
		return out
	default:
		return v // strings, numbers, booleans, nil, times: immutable values
	}
}

// checkEnvFiles holds each service's env_file to what fileInside holds configs and secrets
// to: a regular file of the recipe. Docker's loader reads whatever path it is given (a file of
// the host, the reconciler's own /proc/self/environ, a FIFO that blocks the render for good),
// and takes a line that names a variable without a value from the environment of the process:
// here the reconciler's, which is no deploying user's shell. Such a line is refused.
func checkEnvFiles(root, workingDir string, dict map[string]any, env map[string]string, where string) error {
	services, _ := dict["services"].(map[string]any)
	budget := &interpolationBudget{left: MaxInterpolatedBytes}
	lookup := budget.wrap(func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	for _, name := range slices.Sorted(maps.Keys(services)) {
		svc, _ := services[name].(map[string]any)
		var files []string
		switch v := svc["env_file"].(type) {
		case string:
			files = append(files, v)
		case []any:
			for _, f := range v {
				if s, ok := f.(string); ok {
					files = append(files, s)
				}
			}
		}
		for _, f := range files {
			written, err := template.Substitute(f, lookup)
			if budget.exceeded {
				return fmt.Errorf("%w: %s: service %s: env_file: %v", ErrInput, where, name, budget.err())
			}
			if err != nil {
				continue // the loader says what is wrong with it
			}
			path := written
			if !filepath.IsAbs(path) {
				path = filepath.Join(workingDir, path)
			}
			if err := envFileInside(root, path); err != nil {
				return fmt.Errorf("%w: %s: service %s: env_file %s: %v", ErrInput, where, name, written, err)
			}
		}
	}
	return nil
}

func envFileInside(root, file string) error {
	if err := fileInside(root, "env_file", "", file); err != nil {
		return errors.New("it is outside the recipe: a recipe's env files come from its own files")
	}
	fi, err := os.Stat(file)
	if errors.Is(err, os.ErrNotExist) {
		return nil // the loader names the missing file
	} else if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() || fi.Size() > MaxComposeBytes {
		return fmt.Errorf("not a regular file of at most %d bytes", MaxComposeBytes)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	for i, line := range strings.Split(strings.TrimPrefix(string(data), "\uFEFF"), "\n") { // a BOM, as docker's kvfile drops it
		line = strings.TrimLeftFunc(line, unicode.IsSpace)
		if line == "" || line[0] == '#' || strings.Contains(line, "=") {
			continue
		}
		return fmt.Errorf("line %d names a variable without a value, which docker takes from the deploying shell; a reconciler has none: give it a value in the file, or list it under the service's environment to take it from the app's env", i+1)
	}
	return nil
}

// MaxInterpolatedBytes bounds what the variables of an app's compose files expand to, all
// references together (each file is interpolated twice: for the schema check and to load).
// A variable is at most MaxEnvValueBytes, but a 4 MiB compose file can name one a million
// times.
const MaxInterpolatedBytes = 32 << 20

// interpolationBudget counts the bytes variables expand to; once over, every lookup expands to
// nothing, so the interpolation ends at once, and exceeded is set for the caller to report.
type interpolationBudget struct {
	left     int
	exceeded bool
}

func (b *interpolationBudget) wrap(lookup func(string) (string, bool)) func(string) (string, bool) {
	return func(k string) (string, bool) {
		if b.exceeded {
			return "", true
		}
		v, ok := lookup(k)
		if b.left -= len(v); b.left < 0 {
			b.exceeded = true
			return "", true
		}
		return v, ok
	}
}

// option is a loader.Load option putting the budget on Load's interpolation; it must come
// before skipValidatedSchema, which interpolates with the same options.
func (b *interpolationBudget) option(o *loader.Options) {
	if o.Interpolate != nil && o.Interpolate.LookupValue != nil {
		o.Interpolate.LookupValue = b.wrap(o.Interpolate.LookupValue)
	}
}

func (b *interpolationBudget) err() error {
	return fmt.Errorf("%w: the compose files' variables expand to more than %d MiB", ErrInput, MaxInterpolatedBytes>>20)
}

// labelsOf maps each of a compose file's top-level objects to its labels.
func labelsOf[T any](objects map[string]T, labels func(T) composetypes.Labels) map[string]composetypes.Labels {
	out := make(map[string]composetypes.Labels, len(objects))
	for name, o := range objects {
		out[name] = labels(o)
	}
	return out
}
