package manifests

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// billionLaughs is a compose file whose aliases expand to 9^9 strings ("billion laughs").
func billionLaughs() string {
	var b strings.Builder
	b.WriteString("version: \"3.8\"\nx-a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n")
	prev := "a"
	for _, n := range []string{"b", "c", "d", "e", "f", "g", "h", "i"} {
		refs := strings.TrimSuffix(strings.Repeat("*"+prev+",", 9), ",")
		b.WriteString("x-" + n + ": &" + n + " [" + refs + "]\n")
		prev = n
	}
	b.WriteString("services:\n  app:\n    image: nginx:1\n    labels: {x: *i}\n")
	return b.String()
}

// renderLaughs renders a recipe whose compose file is billionLaughs.
func renderLaughs(t testing.TB) error {
	recipesDir := t.TempDir()
	repo := newTestRepo(t, recipesDir, "laughs")
	h := repo.commit(map[string]string{"compose.yml": billionLaughs(), ".env.sample": "TYPE=laughs\n"})
	repo.tag("1.0.0+1", h, true)
	_, err := Render(context.Background(), recipesDir, Request{App: "h", Recipe: "laughs", Version: "1.0.0+1", Domain: "h.example", Stack: "h_example"})
	return err
}

// TestBillionLaughsIsInvalid: the YAML decoder's alias budget refuses the document (an input
// error, Invalid), it is never expanded.
func TestBillionLaughsIsInvalid(t *testing.T) {
	err := renderLaughs(t)
	if err == nil || !strings.Contains(err.Error(), "excessive aliasing") || !strings.Contains(err.Error(), ErrInput.Error()) {
		t.Fatalf("billion laughs: %v", err)
	}
}

// BenchmarkBillionLaughs reports the time and the memory allocated to refuse it (issue 15:
// within 1 s and 64 MiB).
func BenchmarkBillionLaughs(b *testing.B) {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := 0; i < b.N; i++ {
		if err := renderLaughs(b); err == nil {
			b.Fatal("billion laughs rendered")
		}
	}
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/float64(b.N)/(1<<20), "MiB-alloc/op")
}

// TestShapeLimits: more services, compose files or compose bytes than an app may have are
// input errors (Invalid), named.
func TestShapeLimits(t *testing.T) {
	var many strings.Builder
	many.WriteString("version: \"3.8\"\nservices:\n")
	for i := 0; i <= MaxServices; i++ {
		fmt.Fprintf(&many, "  s%d:\n    image: nginx:1\n", i)
	}
	files := map[string]string{"compose.yml": "version: \"3.8\"\nservices:\n  app:\n    image: nginx:1\n"}
	var names []string
	for i := 0; i <= MaxComposeFiles; i++ {
		names = append(names, "compose.yml")
	}
	tests := []struct {
		name  string
		files map[string]string
		env   map[string]string
		want  string
	}{
		{"services", map[string]string{"compose.yml": many.String()}, nil, fmt.Sprintf("declare %d services: an app may have at most %d", MaxServices+1, MaxServices)},
		{"compose files", files, map[string]string{"COMPOSE_FILE": strings.Join(names, ":")}, fmt.Sprintf("at most %d", MaxComposeFiles)},
		{"compose bytes", map[string]string{"compose.yml": "version: \"3.8\"\n#" + strings.Repeat("x", MaxComposeBytes) + "\nservices:\n  app:\n    image: nginx:1\n"}, nil, "at most 4194304 (4 MiB)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			recipesDir := t.TempDir()
			repo := newTestRepo(t, recipesDir, "big")
			tc.files[".env.sample"] = "TYPE=big\n"
			repo.tag("1.0.0+1", repo.commit(tc.files), true)
			_, err := Render(context.Background(), recipesDir, Request{App: "b", Recipe: "big", Version: "1.0.0+1", Domain: "b.example", Stack: "b_example", Env: tc.env})
			if err == nil || !errors.Is(err, ErrInput) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an input error saying %q", err, tc.want)
			}
		})
	}
}

// TestEnvFileLimit: an .env.sample over MaxEnvFileBytes is an input error, named.
func TestEnvFileLimit(t *testing.T) {
	recipesDir := t.TempDir()
	repo := newTestRepo(t, recipesDir, "bigenv")
	repo.tag("1.0.0+1", repo.commit(map[string]string{
		"compose.yml": "version: \"3.8\"\nservices:\n  app:\n    image: nginx:1\n",
		".env.sample": "TYPE=bigenv\n#" + strings.Repeat("x", MaxEnvFileBytes) + "\n",
	}), true)
	_, err := Render(context.Background(), recipesDir, Request{App: "b", Recipe: "bigenv", Version: "1.0.0+1", Domain: "b.example", Stack: "b_example"})
	if err == nil || !errors.Is(err, ErrInput) || !strings.Contains(err.Error(), ".env.sample is") {
		t.Fatalf("got %v", err)
	}
}

// TestRecipeCannotReachTheHost: a named volume that is a bind mount in disguise is judged as
// the bind it is; a config or secret file outside the recipe, a bind of the recipe's own files
// (its export is private to one node and temporary), and labels of the reconciler's
// own, are input errors.
func TestRecipeCannotReachTheHost(t *testing.T) {
	render := func(compose string) (*Rendered, error) {
		recipesDir := t.TempDir()
		repo := newTestRepo(t, recipesDir, "reach")
		repo.tag("1.0.0+1", repo.commit(map[string]string{"compose.yml": compose, ".env.sample": "TYPE=reach\n", "c.conf": "x\n"}), true)
		return Render(context.Background(), recipesDir, Request{App: "r", Recipe: "reach", Version: "1.0.0+1", Domain: "r.example", Stack: "r_example"})
	}
	r, err := render("version: \"3.8\"\nservices:\n  app:\n    image: nginx:1\n    volumes: [\"run:/host-run\"]\nvolumes:\n  run:\n    driver_opts: {type: none, o: bind, device: /var/run}\n")
	if err != nil {
		t.Fatal(err)
	}
	services, err := r.Services(context.Background(), PlaceholderResolver())
	if err != nil {
		t.Fatal(err)
	}
	if denied, _ := r.CheckPolicy(Policy{Level: Baseline}, services); len(denied) != 1 || !strings.Contains(denied[0].Rule, "system path") && !strings.Contains(denied[0].Rule, "--allow-bind") && !strings.Contains(denied[0].Rule, "Docker socket") {
		t.Errorf("a local volume with o=bind of /var/run: denied %v", denied)
	}
	for _, tc := range []struct{ compose, want string }{
		{"version: \"3.8\"\nservices:\n  app:\n    image: nginx:1\n    configs: [c]\nconfigs:\n  c:\n    file: /etc/hostname\n", "config c: file /etc/hostname is outside the recipe"},
		{"version: \"3.8\"\nservices:\n  app:\n    image: nginx:1\n    secrets: [s]\nsecrets:\n  s:\n    file: ../../../../../../etc/passwd\n", "is outside the recipe"},
		{"version: \"3.8\"\nservices:\n  app:\n    image: nginx:1\n    deploy:\n      labels: {swarm-reconciler.job: volumes}\n", "label swarm-reconciler.job: labels under swarm-reconciler. are the reconciler's own"},
		// On the other objects too: a recipe's owner label would hand its network to another
		// reconciler's sweep (ours sets the owner only when it has one), a fingerprint would
		// steer the redaction of logs.
		{"version: \"3.8\"\nservices:\n  app:\n    image: nginx:1\n    networks: [n]\nnetworks:\n  n:\n    labels: {swarm-reconciler.owner: ci2}\n", "network n: label swarm-reconciler.owner: labels under swarm-reconciler. are the reconciler's own"},
		{"version: \"3.8\"\nservices:\n  app:\n    image: nginx:1\n    volumes: [\"d:/d\"]\nvolumes:\n  d:\n    labels: {swarm-reconciler.domain: x.example}\n", "volume d: label swarm-reconciler.domain"},
		{"version: \"3.8\"\nservices:\n  app:\n    image: nginx:1\n    configs: [c]\nconfigs:\n  c:\n    file: ./c.conf\n    labels: {swarm-reconciler.app: other}\n", "config c: label swarm-reconciler.app"},
		{"version: \"3.8\"\nservices:\n  app:\n    image: nginx:1\n    secrets: [s]\nsecrets:\n  s:\n    file: ./c.conf\n    labels: {swarm-reconciler.fingerprint: abc}\n", "secret s: label swarm-reconciler.fingerprint"},
		{"version: \"3.8\"\nservices:\n  app:\n    image: nginx:1\n    volumes: [\"./nginx.conf:/etc/nginx/nginx.conf:ro\"]\n", "service app: bind mount of the recipe's own nginx.conf: a recipe's files are on no node"},
		{"version: \"3.8\"\nservices:\n  app:\n    image: nginx:1\n    volumes: [{type: bind, source: ., target: /srv}]\n", "bind mount of the recipe's own ."},
	} {
		if _, err := render(tc.compose); err == nil || !errors.Is(err, ErrInput) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("got %v, want an input error saying %q", err, tc.want)
		}
	}
}

// TestEnvFilesStayInTheRecipe: a service's env_file is read from the recipe only, as its
// configs and secrets are: a file of the host (named absolutely, through ../, or in an
// overlay) is an input error that quotes none of it, as is what is not a regular file; a line
// naming a variable without a value is refused, not taken from the reconciler's environment.
func TestEnvFilesStayInTheRecipe(t *testing.T) {
	host := filepath.Join(t.TempDir(), "reconciler.env")
	if err := os.WriteFile(host, []byte("GIT_TOKEN=hunter2-host-secret\nmachine git.example.org password ghp_hostsecret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("RECONCILER_OWN_SECRET", "s3cr3t-of-the-reconciler")
	compose := func(envFile string) string {
		return "version: \"3.8\"\nservices:\n  app:\n    image: nginx:1\n    env_file: " + envFile + "\n"
	}
	render := func(files map[string]string, overlays ...Overlay) (*Rendered, error) {
		recipesDir := t.TempDir()
		repo := newTestRepo(t, recipesDir, "envf")
		files[".env.sample"] = "TYPE=envf\nHERE=app.env\n"
		repo.tag("1.0.0+1", repo.commit(files), true)
		return Render(context.Background(), recipesDir, Request{App: "e", Recipe: "envf", Version: "1.0.0+1", Domain: "e.example", Stack: "e_example", Overlays: overlays})
	}
	for _, tc := range []struct {
		name     string
		files    map[string]string
		overlays []Overlay
		want     string
	}{
		{"absolute", map[string]string{"compose.yml": compose(host)}, nil, "service app: env_file " + host + ": it is outside the recipe"},
		{"through ../", map[string]string{"compose.yml": compose("../../../../../../../.." + host)}, nil, "is outside the recipe"},
		{"in an overlay", map[string]string{"compose.yml": compose("app.env"), "app.env": "A=1\n"},
			[]Overlay{{Name: "ci.yml", Data: []byte("services:\n  app:\n    env_file: [app.env, " + host + "]\n")}}, "overlay ci.yml: service app: env_file " + host + ": it is outside"},
		{"a folder", map[string]string{"compose.yml": compose("conf"), "conf/x": "A=1\n"}, nil, "env_file conf: not a regular file"},
		{"a name without a value", map[string]string{"compose.yml": compose("app.env"), "app.env": "A=1\n# note\n  RECONCILER_OWN_SECRET\n"}, nil,
			"env_file app.env: line 3 names a variable without a value"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := render(tc.files, tc.overlays...)
			if err == nil || !errors.Is(err, ErrInput) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an input error saying %q", err, tc.want)
			}
			for _, secret := range []string{"hunter2", "ghp_hostsecret", "s3cr3t"} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("the error quotes a value: %v", err)
				}
			}
		})
	}
	r, err := render(map[string]string{"compose.yml": compose("${HERE}"), "app.env": "\uFEFF# written on Windows\nA=1\n\n# B\nB=two words\n"})
	if err != nil {
		t.Fatal(err)
	}
	services, err := r.Services(context.Background(), PlaceholderResolver())
	if err != nil {
		t.Fatal(err)
	}
	if env := services["e_example_app"].TaskTemplate.ContainerSpec.Env; !slices.Contains(env, "A=1") || !slices.Contains(env, "B=two words") {
		t.Errorf("the recipe's own env file: env %v", env)
	}
}
