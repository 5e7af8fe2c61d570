package manifests

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// benchCompose is a small but typical recipe: an app and a db, a config from a file, a
// generated secret, a named volume.
const benchCompose = `version: "3.8"
services:
  app:
    image: nginx:1.27
    environment:
      - GREETING=${GREETING}
      - DOMAIN
    configs:
      - source: conf
        target: /etc/conf
    secrets: [db_password]
    networks: [internal, proxy]
    deploy:
      labels:
        - "traefik.enable=true"
        - "traefik.http.routers.${STACK_NAME}.rule=Host(` + "`${DOMAIN}`" + `)"
  db:
    image: postgres:16
    volumes: [data:/var/lib/postgresql/data]
    secrets: [db_password]
    networks: [internal]
configs:
  conf:
    name: ${STACK_NAME}_conf_${CONF_VERSION}
    file: conf.txt
secrets:
  db_password:
    external: true
    name: ${STACK_NAME}_db_password_${SECRET_DB_PASSWORD_VERSION}
volumes:
  data:
networks:
  internal:
  proxy:
    external: true
`

// BenchmarkRender measures Render of many apps on the same (recipe, version), which is what a
// controller converging many apps of one recipe does: each iteration is a different app.
// Run with go test ./manifests -run '^$' -bench Render -benchmem [-cpuprofile cpu.out].
func BenchmarkRender(b *testing.B) {
	recipesDir := b.TempDir()
	small := newTestRepo(b, recipesDir, "small")
	h := small.commit(map[string]string{
		".env.sample":    "GREETING=hello\nSECRET_DB_PASSWORD_VERSION=v1 # length=40\n",
		"abra.sh":        "export CONF_VERSION=v1\n",
		"compose.yml":    benchCompose,
		"conf.txt":       "some configuration",
		"README.md":      "# small\n",
		"entrypoint.sh":  "#!/bin/sh\nexec \"$@\"\n",
		"docs/notes.txt": "notes",
	})
	small.tag("1.0.0+1.27", h, true)
	cases := []struct{ name, recipe, version string }{{"small", "small", "1.0.0+1.27"}}

	if dir, err := filepath.Abs(sharedRecipes); err == nil {
		if _, err := os.Stat(filepath.Join(dir, "bonfire")); err == nil {
			cases = append(cases, struct{ name, recipe, version string }{"bonfire", "bonfire",
				importRecipe(b, dir, recipesDir, "bonfire")})
		}
	}

	for _, tc := range cases {
		// cached: the common case, many apps of one (recipe, commit); uncached: the first render
		// of a commit (opening the repository and exporting the tree), Cleanup included.
		for _, cached := range []bool{true, false} {
			name := tc.name
			if !cached {
				name += "-uncached"
			}
			b.Run(name, func(b *testing.B) {
				ctx := context.Background()
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					domain := fmt.Sprintf("app%d.example.org", i)
					i++
					_, err := Render(ctx, recipesDir, Request{App: domain, Recipe: tc.recipe, Version: tc.version,
						Domain: domain, Stack: stackName(domain)})
					if err != nil {
						b.Fatal(err)
					}
					if !cached {
						Cleanup()
					}
				}
			})
		}
	}
}

func stackName(domain string) string {
	out := []byte(domain)
	for i, c := range out {
		if c == '.' {
			out[i] = '_'
		}
	}
	return string(out)
}
