package manifests

import (
	"context"
	"testing"
)

// TestGeneratedSecretIDAndVersionVar: each generated secret names its compose key and the
// variable of its version, also where the two are spelt differently (as bonfire's
// orchid_client_secret with SECRET_ORCID_CLIENT_SECRET_VERSION) or the variable has no braces.
func TestGeneratedSecretIDAndVersionVar(t *testing.T) {
	recipesDir := t.TempDir()
	repo := newTestRepo(t, recipesDir, "ids")
	h := repo.commit(map[string]string{
		".env.sample": "SECRET_ORCID_CLIENT_SECRET_VERSION=v3 # generate=false\nSECRET_DB_PASSWORD_VERSION=v1\n",
		"compose.yml": `version: "3.8"
services:
  app:
    image: nginx:1.27
    secrets: [orchid_client_secret, db_password]
secrets:
  orchid_client_secret:
    external: true
    name: ${STACK_NAME}_orchid_client_secret_${SECRET_ORCID_CLIENT_SECRET_VERSION}
  db_password:
    external: true
    name: ${STACK_NAME}_db_password_$SECRET_DB_PASSWORD_VERSION
`,
	})
	repo.tag("1.0.0", h, true)
	r, err := Render(context.Background(), recipesDir, Request{App: "a", Recipe: "ids", Version: "1.0.0",
		Domain: "a.example.org", Stack: "a_example_org"})
	if err != nil {
		t.Fatal(err)
	}
	want := []GeneratedSecret{
		{Name: "a_example_org_db_password_v1", ID: "db_password", VersionVar: "SECRET_DB_PASSWORD_VERSION", Generate: true},
		{Name: "a_example_org_orchid_client_secret_v3", ID: "orchid_client_secret", VersionVar: "SECRET_ORCID_CLIENT_SECRET_VERSION"},
	}
	if len(r.GeneratedSecrets) != len(want) {
		t.Fatalf("generated secrets %+v, want %+v", r.GeneratedSecrets, want)
	}
	for i, w := range want {
		g := r.GeneratedSecrets[i]
		if g.Name != w.Name || g.ID != w.ID || g.VersionVar != w.VersionVar || g.Generate != w.Generate {
			t.Errorf("generated secret %d = %+v, want %+v", i, g, w)
		}
	}
}
