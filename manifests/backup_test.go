package manifests

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// renderCompose renders a one-release recipe made of compose with env.
func renderCompose(t *testing.T, compose string, env map[string]string) (*Rendered, error) {
	t.Helper()
	recipesDir := t.TempDir()
	repo := newTestRepo(t, recipesDir, "bk")
	h := repo.commit(map[string]string{".env.sample": "TYPE=bk\n", "compose.yml": compose})
	repo.tag("1.0.0+1", h, true)
	return Render(context.Background(), recipesDir, Request{App: "bk", Recipe: "bk", Version: "1.0.0+1",
		Domain: "bk.example.org", Stack: "bk_example_org", Env: env})
}

// bonfireShaped is the backup pattern of bonfire's postgres overlay: a pre-hook dumps onto a
// path-limited volume, a second service backs up a whole volume and excludes another.
const bonfireShaped = `version: "3.8"
services:
  app:
    image: app:1
    volumes:
      - uploads:/uploads
      - cache:/cache
      - type: bind
        source: /srv
        target: /srv
    deploy:
      labels:
        - "backupbot.backup=${ENABLE_BACKUPS:-true}"
        - "backupbot.backup.volumes.cache=false"
  db:
    image: db:1
    volumes:
      - db-data:/var/lib/postgresql/data
      - type: tmpfs
        target: /dev/shm
    deploy:
      labels:
        backupbot.backup: ${ENABLE_BACKUPS:-true}
        backupbot.backup.pre-hook: "/pg_backup.sh backup"
        backupbot.backup.volumes.db-data.path: "backup.sql, dumps/"
        backupbot.restore.post-hook: '/pg_backup.sh restore'
  proxy:
    image: proxy:1
    volumes:
      - certs:/certs
volumes:
  uploads:
  cache:
  db-data:
  certs:
    name: shared-certs
`

// planOf returns a function of a render's results that gives its backup plan and the plan's
// JSON, failing t on any error: planOf(t)(Render(...)).
func planOf(t *testing.T) func(*Rendered, error) (*BackupPlan, string) {
	return func(r *Rendered, err error) (*BackupPlan, string) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		p, err := r.BackupPlan()
		if err != nil {
			t.Fatal(err)
		}
		got, _ := json.Marshal(p)
		return p, string(got)
	}
}

func TestBackupPlan(t *testing.T) {
	p, got := planOf(t)(renderCompose(t, bonfireShaped, nil))
	want := `{"services":[` +
		`{"name":"app","volumes":[{"name":"uploads","full":"bk_example_org_uploads","target":"/uploads"}]},` +
		`{"name":"db","volumes":[{"name":"db-data","full":"bk_example_org_db-data","target":"/var/lib/postgresql/data","paths":["backup.sql","dumps"]}],` +
		`"preHook":"/pg_backup.sh backup","restorePostHook":"/pg_backup.sh restore"}]}`
	if got != want || !p.Enabled() {
		t.Errorf("plan\n got %s\nwant %s", got, want)
	}

	// ENABLE_BACKUPS=false turns it off, as the recipes' labels interpolate it.
	if p, got = planOf(t)(renderCompose(t, bonfireShaped, map[string]string{"ENABLE_BACKUPS": "false"})); p.Enabled() {
		t.Errorf("ENABLE_BACKUPS=false: %s", got)
	}
}

func TestBackupPlanErrors(t *testing.T) {
	for _, tc := range []struct{ name, labels, want string }{
		{"not a boolean", `backupbot.backup: "yes please"`, `backupbot.backup="yes please" is not true or false`},
		{"path leaves the volume", `{backupbot.backup: "true", backupbot.backup.volumes.data.path: "../etc"}`, `"../etc" is not a path inside the volume`},
		{"absolute path", `{backupbot.backup: "true", backupbot.backup.volumes.data.path: "/etc"}`, `"/etc" is not a path inside the volume`},
		{"volume not mounted", `{backupbot.backup: "true", backupbot.backup.volumes.other.path: "x"}`, `names volume "other", which the service does not mount`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			compose := "version: \"3.8\"\nservices:\n  app:\n    image: app:1\n    volumes:\n      - data:/data\n    deploy:\n      labels: " +
				tc.labels + "\nvolumes:\n  data:\n"
			if strings.HasPrefix(tc.labels, "backupbot") {
				compose = strings.Replace(compose, "labels: "+tc.labels, "labels:\n        "+tc.labels, 1)
			}
			r, err := renderCompose(t, compose, nil)
			if err != nil {
				t.Fatal(err)
			}
			_, err = r.BackupPlan()
			if !errors.Is(err, ErrInput) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err %v, want ErrInput with %q", err, tc.want)
			}
		})
	}
}

// TestBackupPlanSkipsNestedMounts: what a service mounts below a volume's target (another
// volume, excluded or not, a bind, a tmpfs) shows inside it in the container, but is not that
// volume's: the plan says to skip it there.
func TestBackupPlanSkipsNestedMounts(t *testing.T) {
	_, got := planOf(t)(renderCompose(t, `version: "3.8"
services:
  app:
    image: app:1
    volumes:
      - files:/srv/files/
      - cache:/srv/files/cache
      - thumbs:/srv/files/media/thumbs
      - other:/srv/filesystem
      - type: tmpfs
        target: /srv/files/tmp
    deploy:
      labels:
        backupbot.backup: "true"
        backupbot.backup.volumes.cache: "false"
volumes:
  files:
  cache:
  thumbs:
  other:
`, nil))
	want := `{"services":[{"name":"app","volumes":[` +
		`{"name":"files","full":"bk_example_org_files","target":"/srv/files/","skip":["cache","media/thumbs","tmp"]},` +
		`{"name":"thumbs","full":"bk_example_org_thumbs","target":"/srv/files/media/thumbs"},` +
		`{"name":"other","full":"bk_example_org_other","target":"/srv/filesystem"}]}]}`
	if got != want {
		t.Errorf("plan\n got %s\nwant %s", got, want)
	}
}
