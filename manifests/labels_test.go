package manifests

import (
	"context"
	"strings"
	"testing"

	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/swarm"
)

// checkAllLabelled asserts the ownership labels on every object kind of a render.
func checkAllLabelled(t *testing.T, r *Rendered, svcs map[string]swarm.ServiceSpec) {
	t.Helper()
	own := func(kind, name string, labels map[string]string) {
		t.Helper()
		if labels[LabelApp] != r.App || labels[LabelNamespace] != r.Stack || labels[LabelDomain] != r.Domain {
			t.Errorf("%s %s: labels %v lack %s=%s, %s=%s and %s=%s", kind, name, labels,
				LabelApp, r.App, LabelNamespace, r.Stack, LabelDomain, r.Domain)
		}
	}
	for name, n := range r.Networks {
		own("network", name, n.Labels)
	}
	for _, s := range r.Secrets {
		own("secret", s.Name, s.Labels)
	}
	for _, c := range r.Configs {
		own("config", c.Name, c.Labels)
	}
	for _, g := range r.GeneratedSecrets {
		own("generated secret", g.Name, g.Labels)
	}
	for name, s := range svcs {
		own("service", name, s.Labels)
		if s.Labels[LabelSpecHash] != SpecHash(s) {
			t.Errorf("service %s: %s=%q, want SpecHash %q", name, LabelSpecHash, s.Labels[LabelSpecHash], SpecHash(s))
		}
		cs := s.TaskTemplate.ContainerSpec
		if _, ok := cs.Labels[LabelApp]; ok {
			t.Errorf("service %s: %s on the container spec: a change there restarts tasks", name, LabelApp)
		}
		if _, ok := cs.Labels[LabelSpecHash]; ok {
			t.Errorf("service %s: %s on the container spec", name, LabelSpecHash)
		}
		for _, m := range cs.Mounts {
			if m.Type == mount.TypeVolume && m.Source != "" && m.VolumeOptions != nil && m.VolumeOptions.Labels != nil {
				own("volume", m.Source, m.VolumeOptions.Labels)
			}
		}
	}
}

func TestLabelsOnEveryObjectKind(t *testing.T) {
	recipesDir := t.TempDir()
	repo := newTestRepo(t, recipesDir, "kinds")
	h := repo.commit(map[string]string{
		".env.sample": "SECRET_DB_PASSWORD_VERSION=v1 # length=48 charset=special\nSECRET_API_KEY_VERSION=v2 # generate=false\n",
		"compose.yml": `version: "3.8"
services:
  app:
    image: nginx:1.27
    networks: [internal, proxy]
    volumes:
      - data:/data
      - ext:/ext
      - /srv:/srv
    secrets: [db_password, api_key, plain]
    configs: [conf]
    deploy:
      labels:
        coop-cloud.${STACK_NAME}.version: "9.9.9+old"
        other: x
  worker:
    image: busybox:1
    labels: [container.label=kept]
volumes:
  data:
    labels: {mine: "yes"}
  ext:
    external: true
networks:
  internal:
  proxy:
    external: true
secrets:
  db_password:
    external: true
    name: ${STACK_NAME}_db_password_${SECRET_DB_PASSWORD_VERSION}
  api_key:
    external: true
    name: ${STACK_NAME}_api_key_${SECRET_API_KEY_VERSION:-v1}
  plain:
    file: plain.txt
  unused:
    external: true
    name: ${STACK_NAME}_unused_${SECRET_UNUSED_VERSION:-v1}
configs:
  conf:
    name: ${STACK_NAME}_conf_v1
    file: conf/conf.tmpl
    template_driver: golang
`,
		"plain.txt":      "plain secret data",
		"conf/conf.tmpl": `{{ env "DOMAIN" }}`,
	})
	repo.tag("1.0.0+1.27", h, true)

	ctx := context.Background()
	r, err := Render(ctx, recipesDir, Request{App: "myapp", Recipe: "kinds", Version: "1.0.0+1.27",
		Domain: "my.example.org", Stack: "my_example_org"})
	if err != nil {
		t.Fatal(err)
	}
	svcs, err := r.Services(ctx, PlaceholderResolver())
	if err != nil {
		t.Fatal(err)
	}
	checkAllLabelled(t, r, svcs)

	if len(r.Networks) != 2 { // internal + default (worker has no networks)
		t.Errorf("networks = %v, want my_example_org_internal and my_example_org_default", keys(r.Networks))
	}
	for name, n := range r.Networks {
		if n.Driver != "overlay" {
			t.Errorf("network %s driver %q, want overlay (docker stack deploy's default)", name, n.Driver)
		}
	}
	if len(r.ExternalNetworks) != 1 || r.ExternalNetworks[0] != "proxy" {
		t.Errorf("external networks = %v, want [proxy]", r.ExternalNetworks)
	}
	if len(r.Secrets) != 1 || r.Secrets[0].Name != "my_example_org_plain" || string(r.Secrets[0].Data) != "plain secret data" {
		t.Errorf("secrets = %+v, want my_example_org_plain with the file's data", r.Secrets)
	}
	if len(r.Configs) != 1 || r.Configs[0].Name != "my_example_org_conf_v1" ||
		string(r.Configs[0].Data) != `{{ env "DOMAIN" }}` || r.Configs[0].Templating == nil || r.Configs[0].Templating.Name != "golang" {
		t.Errorf("configs = %+v, want the raw template with the golang driver", r.Configs)
	}
	wantGen := []GeneratedSecret{
		{Name: "my_example_org_api_key_v2", Generate: false},
		{Name: "my_example_org_db_password_v1", Length: 48, Charset: "special", Generate: true},
	}
	if len(r.GeneratedSecrets) != len(wantGen) {
		t.Fatalf("generated secrets = %+v, want %+v", r.GeneratedSecrets, wantGen)
	}
	for i, w := range wantGen {
		g := r.GeneratedSecrets[i]
		if g.Name != w.Name || g.Length != w.Length || g.Charset != w.Charset || g.Generate != w.Generate {
			t.Errorf("generated secret %d = %+v, want %+v", i, g, w)
		}
	}

	app := svcs["my_example_org_app"]
	for k, want := range map[string]string{
		"coop-cloud.my_example_org.recipe":        "kinds",
		"coop-cloud.my_example_org.version":       "1.0.0+1.27", // abra's label replaces the recipe's own
		"coop-cloud.my_example_org.chaos":         "false",
		"coop-cloud.my_example_org.chaos-version": "false",
		"other":                  "x",
		"com.docker.stack.image": "nginx:1.27",
	} {
		if got := app.Labels[k]; got != want {
			t.Errorf("app label %s = %q, want %q", k, got, want)
		}
	}
	worker := svcs["my_example_org_worker"]
	if _, ok := worker.Labels["coop-cloud.my_example_org.recipe"]; ok {
		t.Errorf("abra labels on a service other than app: %v", worker.Labels)
	}
	if worker.TaskTemplate.ContainerSpec.Labels["container.label"] != "kept" {
		t.Errorf("container labels = %v, want the compose ones kept", worker.TaskTemplate.ContainerSpec.Labels)
	}

	var data, ext *mount.Mount
	for i, m := range app.TaskTemplate.ContainerSpec.Mounts {
		switch m.Source {
		case "my_example_org_data":
			data = &app.TaskTemplate.ContainerSpec.Mounts[i]
		case "ext":
			ext = &app.TaskTemplate.ContainerSpec.Mounts[i]
		}
	}
	if data == nil || data.VolumeOptions.Labels["mine"] != "yes" || data.VolumeOptions.Labels[LabelApp] != "myapp" {
		t.Errorf("named volume mount = %+v, want its own and our labels", data)
	}
	if ext == nil || ext.VolumeOptions.Labels[LabelApp] != "" {
		t.Errorf("external volume mount = %+v, want no labels of ours", ext)
	}

	// A second conversion gives equal specs and does not see labels of the first.
	again, err := r.Services(ctx, PlaceholderResolver())
	if err != nil {
		t.Fatal(err)
	}
	for name, s := range svcs {
		if again[name].Labels[LabelSpecHash] != s.Labels[LabelSpecHash] {
			t.Errorf("%s: spec hash changed between two conversions", name)
		}
	}
	if _, ok := r.config.Services[0].Deploy.Labels[LabelApp]; ok {
		t.Error("Services wrote our labels into the loaded compose config")
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestGeneratedSecretAlphabet(t *testing.T) {
	tests := []struct {
		charset, want, wantErr string
	}{
		{"", alphabetDefault, ""},
		{"default", alphabetDefault, ""},
		{"special", alphabetSpecial, ""},
		{"default,special", alphabetDefault + alphabetSpecial, ""},
		{"0123456789abcdef", "0123456789abcdef", ""},
		{"default,nope", "", `unknown character set "nope"`},
		{"x", "", "at least two characters"},
	}
	for _, tc := range tests {
		got, err := GeneratedSecret{Charset: tc.charset}.Alphabet()
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("Alphabet(%q) err = %v, want %q", tc.charset, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("Alphabet(%q) = %q, %v; want %q", tc.charset, got, err, tc.want)
		}
	}
}
