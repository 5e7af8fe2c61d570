// Package manifests turns (recipe, version, env) into the swarm objects to create: it reads a
// Co-op Cloud recipe at a git revision without touching any working tree, builds the app env as
// abra does, loads and merges the compose files, converts them exactly as `docker stack deploy`
// does (docker/cli's compose loader and convert packages) and stamps the ownership labels.
//
// It never calls the Docker API to change anything: the only engine access is the read-only
// Resolver that Services uses to look secret and config IDs up by name.
//
// Render keeps opened repositories and exported trees for later renders of the same commit (see
// cache.go); a process that renders must call Cleanup before it exits.
package manifests

import (
	"errors"
	"strings"
	"sync"

	composetypes "github.com/docker/cli/cli/compose/types"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/swarm"
	"github.com/swarm-reconciler/reconciler/spec"
)

const (
	// LabelApp is on every object the reconciler creates; its value is the app name.
	// Only objects carrying it are ever removed.
	LabelApp = "swarm-reconciler.app"
	// LabelSpecHash is a service label holding SpecHash of the desired service spec, so an
	// unchanged spec is recognised without comparing engine-normalised specs.
	LabelSpecHash = "swarm-reconciler.spec-hash"
	// LabelNamespace is docker stack's namespace label (= convert.LabelNamespace), so
	// `docker stack ls/ps/services` see what we create.
	LabelNamespace = "com.docker.stack.namespace"
	// LabelDomain is on every object the reconciler creates: the app's domain, which names its
	// app lock, so a sweep can find the lock of an orphan whose spec and status are gone.
	LabelDomain = "swarm-reconciler.domain"
	// LabelOwner names the spec directory (locks.SpecDirID) whose reconciler created the
	// object, so reconcilers of other directories on the same host never sweep it.
	LabelOwner = "swarm-reconciler.owner"
)

// ErrInput marks errors caused by the user's input: an unknown recipe or version, compose files
// that do not load, a malformed .env.sample, a secret name over the limit, ... Such an error is
// terminal for that spec generation (phase Invalid): retrying cannot fix it. Test with errors.Is.
var ErrInput = errors.New("invalid input")

// Request says what to render.
type Request struct {
	App     string            // the app name, value of LabelApp
	Recipe  string            // a folder under recipesDir holding a git repository
	Version string            // a tag of that repository, or a commit hash (at least 7 hex digits)
	Domain  string            // becomes DOMAIN in the app env
	Stack   string            // the stack name (namespace); becomes STACK_NAME in the app env
	Env     map[string]string // the spec's env overrides
	Owner   string            // value of LabelOwner; none when empty
	// Overlays are compose documents merged after the recipe's COMPOSE_FILE list, in order, as
	// more -c files to `docker stack deploy`.
	Overlays []Overlay
}

// OverlaysOf are the overlays of a spec as a Request takes them.
func OverlaysOf(docs []spec.OverlayDoc) []Overlay {
	out := make([]Overlay, 0, len(docs))
	for _, d := range docs {
		o := Overlay{Name: d.Name, Data: d.Data}
		if strings.HasPrefix(d.Name, "inline[") {
			o.Line = d.Line
		}
		out = append(out, o)
	}
	return out
}

// Overlay is one compose overlay of a Request.
type Overlay struct {
	Name string // as the spec names it: its file, or inline[N]
	Data []byte
	// Line is the line of the spec file where an inline overlay's document starts (0 for a
	// file), so that a message can point into the spec.
	Line int
}

// Rendered is everything one app at one version consists of. The exported fields are complete
// and independent of the engine; Services needs the engine (or a placeholder) for the IDs of
// secrets and configs.
type Rendered struct {
	App, Stack, Recipe, Version, Domain, Owner string
	// Commit is the full hash of the resolved revision.
	Commit string
	// Chaos is true when Version named a commit, not a tag.
	Chaos bool
	// Revision is "recipe@version (shortcommit)", e.g. "custom-html@1.7.1+1.27.2 (3f2a9c1)".
	Revision string
	// Env is the final app env (abra-style). It may hold credentials: never log it.
	Env map[string]string
	// Networks to create, keyed by full network name (stack_name), labelled.
	Networks map[string]network.CreateOptions
	// ExternalNetworks must exist already (sorted).
	ExternalNetworks []string
	// Secrets are the file-backed secrets, labelled, Data filled, sorted by name.
	Secrets []swarm.SecretSpec
	// GeneratedSecrets are abra-style external secrets the reconciler must create once
	// (sorted by name).
	GeneratedSecrets []GeneratedSecret
	// Configs are labelled, Data filled (templates stay templates: Templating is set as compose
	// says, and swarm renders them per task), sorted by name.
	Configs []swarm.ConfigSpec
	// Images used by the services, sorted, unique.
	Images []string

	// mu serialises convert.Services: it writes the stack label into maps of config in place.
	mu        sync.Mutex
	config    *composetypes.Config
	namespace string
}

// GeneratedSecret is an external secret that abra would generate (`abra app secret generate`):
// declared `external: true`, used by a service, named ${STACK_NAME}_<name>_${SECRET_<NAME>_VERSION}.
type GeneratedSecret struct {
	// Name is the full swarm name, e.g. mystack_db_password_v1 (at most 64 characters).
	Name string
	// ID is the secret's key under `secrets:` in the compose file, e.g. db_password: the name
	// abra (`abra app secret insert APP db_password`) and `reconciler secret insert` use.
	ID string
	// VersionVar is the app env variable holding the version in Name, e.g.
	// SECRET_DB_PASSWORD_VERSION (not always spelt after ID: abra accepts any).
	VersionVar string
	// Length is the "# length=N" modifier on the SECRET_<NAME>_VERSION line of .env.sample;
	// 0 means the default (32).
	Length int
	// Charset is the "charset=..." modifier as written (abra's set names, e.g. "default,special");
	// "" means the default (alphanumeric). Alphabet turns it into the characters to use.
	Charset string
	// Labels to create the secret with (LabelApp, LabelDomain, LabelNamespace).
	Labels map[string]string
	// Generate is false for "generate=false": someone else must provide the value.
	Generate bool
}
