package manifests

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// policyDenials renders a recipe of compose and checks it under p.
func policyDenials(t *testing.T, compose string, p Policy) []Violation {
	t.Helper()
	r, err := renderCompose(t, compose, nil)
	if err != nil {
		t.Fatal(err)
	}
	services, err := r.Services(context.Background(), PlaceholderResolver())
	if err != nil {
		t.Fatal(err)
	}
	denied, _ := r.CheckPolicy(p, services)
	return denied
}

// TestLocalVolumeMountsOfHostFilesystems: a named volume of the local driver is a
// mount(2) of its device by dockerd on the host: with `type: ext4, device: /dev/sda1` the
// container gets the host's disk, with `type: overlay, o: lowerdir=/etc,...` the host's /etc.
// Neither says o=bind, and baseline must deny them all the same.
func TestLocalVolumeMountsOfHostFilesystems(t *testing.T) {
	for _, opts := range []string{
		"{type: ext4, device: /dev/sda1}",
		"{type: xfs, o: rw, device: /dev/nvme0n1p1}",
		"{type: overlay, device: overlay, o: \"lowerdir=/etc,upperdir=/tmp/u,workdir=/tmp/w\"}",
		"{type: none, o: rbind, device: /}",
	} {
		compose := "version: \"3.8\"\nservices:\n  app:\n    image: nginx:1\n    volumes: [\"disk:/host\"]\nvolumes:\n  disk:\n    driver_opts: " + opts + "\n"
		if denied := policyDenials(t, compose, Policy{Level: Baseline}); len(denied) == 0 {
			t.Errorf("driver_opts %s: baseline denies nothing", opts)
		}
	}
	// What is not the host's stays allowed: tmpfs, and a network file system.
	for _, opts := range []string{
		"{type: tmpfs, device: tmpfs, o: size=100m}",
		"{type: nfs, o: \"addr=10.0.0.1,rw\", device: \":/export/data\"}",
		"{type: cifs, o: \"addr=10.0.0.1\", device: \"//10.0.0.1/share\"}",
	} {
		compose := "version: \"3.8\"\nservices:\n  app:\n    image: nginx:1\n    volumes: [\"v:/v\"]\nvolumes:\n  v:\n    driver_opts: " + opts + "\n"
		if denied := policyDenials(t, compose, Policy{Level: Baseline}); len(denied) != 0 {
			t.Errorf("driver_opts %s: baseline denies %v", opts, denied)
		}
	}
}

// TestBindOfAParentOfTheSocketOrASystemPath: the Docker socket and the system paths are
// denied "whatever --allow-bind says"; a bind of a folder that holds them (/run, /var/run, /var,
// /var/lib) gives the container the same, and must be denied even where --allow-bind covers it.
func TestBindOfAParentOfTheSocketOrASystemPath(t *testing.T) {
	for _, src := range []string{"/run", "/var/run", "/var", "/var/lib", "/run/containerd"} {
		compose := "version: \"3.8\"\nservices:\n  app:\n    image: nginx:1\n    volumes: [\"" + src + ":/host\"]\n"
		denied := policyDenials(t, compose, Policy{Level: Baseline, AllowBind: []string{"/"}})
		if len(denied) == 0 {
			t.Errorf("bind of %s with --allow-bind /: baseline denies nothing", src)
		} else if !strings.Contains(denied[0].Rule, "Docker socket") && !strings.Contains(denied[0].Rule, "system path") {
			t.Errorf("bind of %s: denied for %q, want the socket or system-path rule", src, denied[0].Rule)
		}
	}
	// The local driver mounts a relative device against dockerd's working directory, /.
	compose := "version: \"3.8\"\nservices:\n  app:\n    image: nginx:1\n    volumes: [\"run:/host\"]\nvolumes:\n  run:\n    driver_opts: {type: none, o: bind, device: var/run}\n"
	if denied := policyDenials(t, compose, Policy{Level: Baseline, AllowBind: []string{"/"}}); len(denied) == 0 {
		t.Errorf("a local volume binding the relative device var/run with --allow-bind /: baseline denies nothing")
	}
	// Still allowed: a folder beside them.
	compose = "version: \"3.8\"\nservices:\n  app:\n    image: nginx:1\n    volumes: [\"/var/backups:/b\", \"/srv/data:/d\"]\n"
	if denied := policyDenials(t, compose, Policy{Level: Baseline, AllowBind: []string{"/"}}); len(denied) != 0 {
		t.Errorf("binds beside the system paths with --allow-bind /: denied %v", denied)
	}
}

// renderFiles renders a one-release recipe made of files.
func renderFiles(t *testing.T, files map[string]string) (*Rendered, error) {
	t.Helper()
	recipesDir := t.TempDir()
	repo := newTestRepo(t, recipesDir, "files")
	files[".env.sample"] = "TYPE=files\n"
	repo.tag("1.0.0+1", repo.commit(files), true)
	return Render(context.Background(), recipesDir, Request{App: "f", Recipe: "files", Version: "1.0.0+1", Domain: "f.example", Stack: "f_example"})
}

// TestConfigAndSecretDataIsBounded: every declared config and secret file is read into
// memory whole, once per declaration. Swarm refuses a config of 1000 KiB or more, a secret of
// 500 KiB or more, and an empty one, so such a recipe can never deploy: Invalid, not a failed
// create; and one file of the recipe named by many
// declarations multiplies (a 4 MiB compose file declares tens of thousands) until the
// reconciler, with every app it runs, dies of memory. Both are input errors before reading.
func TestConfigAndSecretDataIsBounded(t *testing.T) {
	big := strings.Repeat("x", 1100*1024)
	_, err := renderFiles(t, map[string]string{"big.conf": big,
		"compose.yml": "version: \"3.8\"\nservices:\n  app:\n    image: nginx:1\n    configs: [c]\nconfigs:\n  c:\n    file: big.conf\n"})
	if err == nil || !errors.Is(err, ErrInput) || !strings.Contains(err.Error(), "big.conf") {
		t.Errorf("a config of 1100 KiB: got %v, want an input error naming big.conf", err)
	}
	_, err = renderFiles(t, map[string]string{"key": strings.Repeat("k", 600*1024),
		"compose.yml": "version: \"3.8\"\nservices:\n  app:\n    image: nginx:1\n    secrets: [s]\nsecrets:\n  s:\n    file: key\n"})
	if err == nil || !errors.Is(err, ErrInput) || !strings.Contains(err.Error(), "key") {
		t.Errorf("a secret of 600 KiB: got %v, want an input error", err)
	}
	_, err = renderFiles(t, map[string]string{"custom.css": "",
		"compose.yml": "version: \"3.8\"\nservices:\n  app:\n    image: nginx:1\n    configs: [css]\nconfigs:\n  css:\n    file: custom.css\n"})
	if err == nil || !errors.Is(err, ErrInput) || !strings.Contains(err.Error(), "custom.css") {
		t.Errorf("an empty config file (swarm: \"config data must be larger than 0\"): got %v, want an input error naming custom.css", err)
	}
	var compose strings.Builder
	compose.WriteString("version: \"3.8\"\nservices:\n  app:\n    image: nginx:1\nconfigs:\n")
	for i := range 80 {
		fmt.Fprintf(&compose, "  c%d:\n    file: f.conf\n", i)
	}
	_, err = renderFiles(t, map[string]string{"f.conf": strings.Repeat("y", 900*1024), "compose.yml": compose.String()})
	if err == nil || !errors.Is(err, ErrInput) {
		t.Errorf("80 configs of 900 KiB each (70 MiB read): got %v, want an input error", err)
	}
	// A recipe's usual configs render.
	if _, err := renderFiles(t, map[string]string{"f.conf": strings.Repeat("y", 900*1024),
		"compose.yml": "version: \"3.8\"\nservices:\n  app:\n    image: nginx:1\n    configs: [a, b]\nconfigs:\n  a:\n    file: f.conf\n  b:\n    file: f.conf\n"}); err != nil {
		t.Errorf("two configs of 900 KiB: %v", err)
	}
}

// TestBackupPlanRestoresThroughAWritableMount: a restore writes the archive back through
// the mount the plan names (CopyToContainer), which the engine refuses on a read-only mount
// ("mounted volume is marked read-only"). A volume that one backed-up service mounts read-only
// and another read-write must be planned through the read-write one, whatever their names.
func TestBackupPlanRestoresThroughAWritableMount(t *testing.T) {
	p, got := planOf(t)(renderCompose(t, `version: "3.8"
services:
  app:
    image: app:1
    volumes:
      - uploads:/srv/uploads:ro
      - type: volume
        source: media
        target: /media
        read_only: true
      - type: volume
        source: media
        target: /media-rw
    deploy:
      labels:
        backupbot.backup: "true"
  worker:
    image: worker:1
    volumes:
      - uploads:/data/uploads
    deploy:
      labels:
        backupbot.backup: "true"
volumes:
  uploads:
  media:
`, nil))
	through := map[string]string{}
	for _, s := range p.Services {
		for _, v := range s.Volumes {
			through[v.Name] = s.Name + ":" + v.Target
		}
	}
	if through["uploads"] != "worker:/data/uploads" || through["media"] != "app:/media-rw" {
		t.Errorf("volumes planned through %v, want uploads through worker:/data/uploads and media through app:/media-rw (the writable mounts)\nplan %s", through, got)
	}
}

// TestRestrictedRootUserSpellings: the engine resolves a numeric user with strconv.Atoi
// (moby/sys/user.GetExecUser), which takes a sign: "+0" and "-0" are uid 0, root, and the
// restricted level must deny them as it denies "0".
func TestRestrictedRootUserSpellings(t *testing.T) {
	for _, u := range []string{"+0", "-0", "+0:1000", "-00"} {
		compose := "version: \"3.8\"\nservices:\n  app:\n    image: nginx:1\n    read_only: true\n    user: \"" + u + "\"\n"
		denied := policyDenials(t, compose, Policy{Level: Restricted})
		if len(denied) == 0 || denied[0].Field != "user" {
			t.Errorf("user %q under restricted: denied %v, want the root user denied", u, denied)
		}
	}
	if denied := policyDenials(t, "version: \"3.8\"\nservices:\n  app:\n    image: nginx:1\n    read_only: true\n    user: \"+1000\"\n", Policy{Level: Restricted}); len(denied) != 0 {
		t.Errorf("user +1000 under restricted: denied %v", denied)
	}
}

// doubling is dotenv whose n+1 lines each double the previous value: a few hundred bytes
// that expand to 2^n bytes (40 lines: a terabyte).
func doubling(prefix string, n int) string {
	var b strings.Builder
	b.WriteString(prefix + "A0=x\n")
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, "%sA%d=${A%d}${A%d}\n", prefix, i, i-1, i-1)
	}
	return b.String()
}

// TestEnvExpansionIsBounded: .env.sample and abra.sh are bounded in bytes (1 MiB), but
// their references are expanded eagerly, so a value that doubles the one before grows
// exponentially with the lines: 40 such lines take more memory than any host has, and the
// reconciler, with every app it runs, is killed. So does a compose file that repeats a large
// variable. What expands past a bound is an input error; here 24 lines (16 MiB).
func TestEnvExpansionIsBounded(t *testing.T) {
	render := func(files map[string]string) error {
		recipesDir := t.TempDir()
		repo := newTestRepo(t, recipesDir, "dbl")
		if files["compose.yml"] == "" {
			files["compose.yml"] = "version: \"3.8\"\nservices:\n  app:\n    image: nginx:1\n"
		}
		repo.tag("1.0.0+1", repo.commit(files), true)
		_, err := Render(context.Background(), recipesDir, Request{App: "d", Recipe: "dbl", Version: "1.0.0+1", Domain: "d.example", Stack: "d_example"})
		return err
	}
	for name, files := range map[string]map[string]string{
		".env.sample": {".env.sample": "TYPE=dbl\n" + doubling("", 24)},
		"abra.sh":     {".env.sample": "TYPE=dbl\n", "abra.sh": doubling("export ", 24)},
		"one line":    {".env.sample": "TYPE=dbl\nB=" + strings.Repeat("b", 512<<10) + "\nC=" + strings.Repeat("$B", 40) + "\n"},
		"compose": {".env.sample": "TYPE=dbl\nB=" + strings.Repeat("b", 600<<10) + "\n",
			"compose.yml": "version: \"3.8\"\nservices:\n  app:\n    image: nginx:1\n    deploy:\n      labels:\n        x: \"" + strings.Repeat("${B}", 60) + "\"\n"},
	} {
		if err := render(files); err == nil || !errors.Is(err, ErrInput) || !strings.Contains(err.Error(), "MiB") {
			t.Errorf("%s: got %v, want an input error saying how far it may expand", name, err)
		}
	}
	// Large but sane: a 600 KiB value used a few times.
	if err := render(map[string]string{".env.sample": "TYPE=dbl\nB=" + strings.Repeat("b", 600<<10) + "\nC=${B}\n",
		"compose.yml": "version: \"3.8\"\nservices:\n  app:\n    image: nginx:1\n    environment: [\"X=${B}\", \"Y=${C}\"]\n"}); err != nil {
		t.Errorf("a 600 KiB value used twice: %v", err)
	}
}
