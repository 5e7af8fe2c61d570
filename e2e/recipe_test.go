package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// recipe is a Co-op Cloud style recipe made by makeRecipe: a git repository under the recipes
// directory with one annotated tag per release.
type recipe struct {
	Name     string
	Dir      string
	Releases []release // oldest first
}

// release is one tagged version of a recipe and the text its app answers on GET /.
type release struct {
	Version string
	Message string
}

// configContent is the content of the recipe's file-backed swarm config, served by the app
// on GET /config.
const configContent = "echo entrypoint config v1\n"

// secretLength is the length the recipe's .env.sample asks for its generated secret (abra's
// "# length=N" modifier), served by the app on GET /secret.
const secretLength = 32

// unreleasedMessage is what the working tree's compose.yml says after the last tag: a
// reconciler that reads the working tree instead of the tagged revision deploys it.
const unreleasedMessage = "unreleased work tree: not a tagged release"

// message returns the text the app of version answers on GET /.
func (r recipe) message(version string) string {
	for _, rel := range r.Releases {
		if rel.Version == version {
			return rel.Message
		}
	}
	panic(fmt.Sprintf("recipe %s has no release %s", r.Name, version))
}

// first and latest return the oldest and the newest release.
func (r recipe) first() release  { return r.Releases[0] }
func (r recipe) latest() release { return r.Releases[len(r.Releases)-1] }

// recipeVersions are the working releases makeRecipe tags, oldest first.
var recipeVersions = []string{"1.0.0+1.0", "1.1.0+1.0"}

// Broken releases, tagged after the working ones.
const (
	// missingImageVersion runs an image that is neither local nor pullable.
	missingImageVersion = "2.0.0+1.0"
	missingImage        = "swarm-reconciler-e2e/missing:1"
	// crashingVersion runs the test image with CRASH set: its tasks exit at once, so swarm
	// rolls an upgrade to it back.
	crashingVersion = "2.1.0+1.0"
	// badNetworkVersion declares its network with a driver the engine does not have, so
	// creating it fails every time.
	badNetworkVersion = "2.2.0+1.0"
	badNetworkDriver  = "e2e-no-such-driver"
)

// makeRecipe creates <recipesDir>/<name> as a git repository holding an echo recipe with an
// annotated tag per entry of recipeVersions, whose MESSAGE differs per tag, then the broken
// releases missingImageVersion, crashingVersion and badNetworkVersion. After the last tag it leaves an uncommitted change in the working tree, so a deploy of a tag proves the
// tagged revision was read.
//
// The compose file has every kind of object a teardown must remove: a service publishing
// ${PORT} in host mode (the routing mesh does not work on the test machines), a named
// volume, an overlay network, a file-backed config whose name carries the version that
// abra.sh exports, and an external secret named the abra way, which abra (and the
// reconciler) generates.
func makeRecipe(recipesDir, name string) (recipe, error) {
	r := recipe{Name: name, Dir: filepath.Join(recipesDir, name)}
	if err := os.MkdirAll(r.Dir, 0o755); err != nil {
		return r, err
	}
	files := map[string]string{
		".env.sample": envSample(name),
		"abra.sh":     "export APP_ENTRYPOINT_VERSION=v1\n",
		// entrypoint.conf backs the app_entrypoint config.
		"entrypoint.conf": configContent,
		"README.md":       "# " + name + "\n\nAn e2e test recipe: a tiny HTTP echo server.\n",
	}
	for file, content := range files {
		if err := os.WriteFile(filepath.Join(r.Dir, file), []byte(content), 0o644); err != nil {
			return r, err
		}
	}
	if err := git(r.Dir, "init", "-q", "-b", "main"); err != nil {
		return r, err
	}
	tag := func(version, compose string) error {
		if err := os.WriteFile(filepath.Join(r.Dir, "compose.yml"), []byte(compose), 0o644); err != nil {
			return err
		}
		if err := git(r.Dir, "add", "-A"); err != nil {
			return err
		}
		if err := git(r.Dir, "commit", "-q", "-m", "chore: release "+version); err != nil {
			return err
		}
		return git(r.Dir, "tag", "-a", version, "-m", "release "+version)
	}
	for _, version := range recipeVersions {
		rel := release{Version: version, Message: fmt.Sprintf("hello from %s %s", name, version)}
		if err := tag(version, composeFile(rel.Message, version)); err != nil {
			return r, err
		}
		r.Releases = append(r.Releases, rel)
	}
	for _, broken := range []struct{ version, old, new string }{
		{missingImageVersion, "image: " + echoImage, "image: " + missingImage},
		{crashingVersion, "      - PORT=8080\n", "      - PORT=8080\n      - CRASH=1\n"},
		{badNetworkVersion, "networks:\n  backend:\n", "networks:\n  backend:\n    driver: " + badNetworkDriver + "\n"},
	} {
		good := composeFile("broken release "+broken.version, broken.version)
		compose := strings.Replace(good, broken.old, broken.new, 1)
		if compose == good {
			return r, fmt.Errorf("recipe %s: could not break release %s: no %q in its compose file", name, broken.version, broken.old)
		}
		if err := tag(broken.version, compose); err != nil {
			return r, err
		}
	}
	// Work in progress after the last release: never to be deployed for a tag.
	compose := composeFile(unreleasedMessage, "unreleased")
	if err := os.WriteFile(filepath.Join(r.Dir, "compose.yml"), []byte(compose), 0o644); err != nil {
		return r, err
	}
	return r, nil
}

func envSample(name string) string {
	return strings.Join([]string{
		"TYPE=" + name,
		"",
		"DOMAIN=" + name + ".example.com",
		"## Domain aliases",
		"#EXTRA_DOMAINS=',`www.example.com`'",
		"LETS_ENCRYPT_ENV=production",
		"",
		"# host port the app publishes (mode: host); every e2e app sets its own",
		"PORT=18080",
		"",
		fmt.Sprintf("SECRET_API_KEY_VERSION=v1 # length=%d", secretLength),
		"",
	}, "\n")
}

// composeFile is the recipe's compose.yml for one release.
func composeFile(message, version string) string {
	return fmt.Sprintf(`version: "3.8"

services:
  app:
    image: %s
    environment:
      - MESSAGE=%s
      - PORT=8080
      - CONFIG_FILE=/etc/echo/entrypoint.conf
      - SECRET_FILE=/run/secrets/api_key
    ports:
      - target: 8080
        published: ${PORT}
        mode: host
    volumes:
      - data:/data
    networks:
      - backend
    configs:
      - source: app_entrypoint
        target: /etc/echo/entrypoint.conf
    secrets:
      - api_key
    deploy:
      replicas: 1
      restart_policy:
        condition: on-failure
      update_config:
        order: stop-first
        failure_action: rollback
      labels:
        - "coop-cloud.${STACK_NAME}.version=%s"

volumes:
  data:

networks:
  backend:

configs:
  app_entrypoint:
    name: ${STACK_NAME}_app_entrypoint_${APP_ENTRYPOINT_VERSION}
    file: entrypoint.conf

secrets:
  api_key:
    external: true
    name: ${STACK_NAME}_api_key_${SECRET_API_KEY_VERSION}
`, echoImage, message, version)
}

// gitEnv is a fixed identity and no user or system configuration, so the repositories do not
// depend on who runs the suite (no signing, no hooks, no templates).
var gitEnv = []string{
	"GIT_AUTHOR_NAME=e2e", "GIT_AUTHOR_EMAIL=e2e@swarm-reconciler.invalid",
	"GIT_COMMITTER_NAME=e2e", "GIT_COMMITTER_EMAIL=e2e@swarm-reconciler.invalid",
	"GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null", "GIT_TERMINAL_PROMPT=0",
}

func git(dir string, args ...string) error {
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), gitEnv...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("git %s in %s: %w\n%s", strings.Join(args, " "), dir, err, out)
	}
	return nil
}
