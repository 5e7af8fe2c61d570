package spec

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// writeSpec writes a spec file and sets its mtime, which decides stack collisions.
func writeSpec(t *testing.T, dir, name, content string, mod time.Time) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if !mod.IsZero() {
		if err := os.Chtimes(path, mod, mod); err != nil {
			t.Fatal(err)
		}
	}
	return path
}

func TestScan(t *testing.T) {
	dir := t.TempDir()
	t0 := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	shared := minimal + "domain: shared.example.org\n"

	aPath := writeSpec(t, dir, "a.yml", minimal, t0)
	writeSpec(t, dir, "b.yaml", "recipe: r\nversion: v\n", t0)
	writeSpec(t, dir, "c.json", `{"recipe": "r", "version": "v"}`, t0)
	// Ignored: editors' and atomic writers' files, other extensions, directories.
	for _, name := range []string{".hidden.yml", "d.yml.tmp", "e.yml~", "f.yml.swp", "README.md", ".#g.yml"} {
		writeSpec(t, dir, name, "not: [a spec", t0)
	}
	if err := os.Mkdir(filepath.Join(dir, "dir.yml"), 0o755); err != nil {
		t.Fatal(err)
	}
	// An invalid file alongside valid ones.
	badPath := writeSpec(t, dir, "bad.yml", minimal+"foo: 1\n", t0)
	writeSpec(t, dir, "Bad_Name.yml", minimal, t0)
	// Two files for one app.
	writeSpec(t, dir, "dup.yml", minimal, t0)
	dupNew := writeSpec(t, dir, "dup.json", `{"recipe": "r", "version": "v"}`, t0.Add(time.Minute))
	// A stack collision: "older" keeps it, "newer" gets the error although its name sorts first.
	writeSpec(t, dir, "older.yml", shared, t0)
	newer := writeSpec(t, dir, "newer.yml", shared, t0.Add(time.Second))
	// A tie on mtime: the later name gets the error.
	writeSpec(t, dir, "tie-a.yml", minimal+"domain: tie.example.org\n", t0)
	writeSpec(t, dir, "tie-b.yml", minimal+"domain: tie.example.org\n", t0)
	// A symlink, as a Kubernetes ConfigMap mount makes, and a dangling one.
	target := filepath.Join(t.TempDir(), "target.yml")
	if err := os.WriteFile(target, []byte(minimal), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, filepath.Join(dir, "linked.yml")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(dir, "nowhere.yml"), filepath.Join(dir, "dangling.yml")); err != nil {
		t.Fatal(err)
	}

	set, err := Scan(dir, testDefaults)
	if err != nil {
		t.Fatal(err)
	}
	var apps []string
	for app := range set {
		apps = append(apps, app)
	}
	want := "Bad_Name a b bad c dup linked newer older tie-a tie-b"
	if got := strings.Join(sortedStrings(apps), " "); got != want {
		t.Fatalf("apps = %s\nwant   %s", got, want)
	}
	for app, des := range set {
		if (des.Spec == nil) == (des.Err == nil) {
			t.Errorf("%s: exactly one of Spec and Err must be set: %+v", app, des)
		}
		if des.App != app || des.Generation == "" || des.ModTime.IsZero() {
			t.Errorf("%s: incomplete entry %+v", app, des)
		}
	}
	valid := []string{"a", "b", "c", "linked", "older", "tie-a"}
	for _, app := range valid {
		if set[app].Err != nil {
			t.Errorf("%s: unexpected error %v", app, set[app].Err)
		}
	}
	if d := set["a"]; d.Path != aPath || d.Generation != Generation([]byte(minimal)) || !d.ModTime.Equal(t0) || d.Spec.Domain != "a.ci.example.org" {
		t.Errorf("a = %+v", d)
	}
	expectErr := func(app string, parts ...string) {
		t.Helper()
		d := set[app]
		if d.Err == nil {
			t.Errorf("%s: no error", app)
			return
		}
		for _, p := range parts {
			if !strings.Contains(d.Err.Error(), p) {
				t.Errorf("%s: error %q does not contain %q", app, d.Err, p)
			}
		}
	}
	expectErr("bad", badPath, "line 3", `field "foo"`)
	expectErr("Bad_Name", `app name "Bad_Name"`)
	expectErr("dup", "2 spec files", "dup.json, dup.yml", "remove all but one")
	if set["dup"].Path != dupNew || set["dup"].Generation != Generation([]byte(`{"recipe": "r", "version": "v"}`)) {
		t.Errorf("dup should describe the newer file: %+v", set["dup"])
	}
	expectErr("newer", newer, `stack "shared_example_org"`, `app "older"`, "older.yml")
	expectErr("tie-b", `app "tie-a"`)
}

func sortedStrings(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	return out
}

func TestScanMissingDir(t *testing.T) {
	if _, err := Scan(filepath.Join(t.TempDir(), "nope"), testDefaults); err == nil {
		t.Fatal("Scan of a missing directory succeeded")
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	t0 := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	writeSpec(t, dir, "a.yml", minimal, t0)
	writeSpec(t, dir, "bad.yml", "recipe: [\n", t0)
	writeSpec(t, dir, "dup.yml", minimal, t0)
	writeSpec(t, dir, "dup.yaml", minimal, t0)
	writeSpec(t, dir, "owner.yml", minimal+"domain: s.example.org\n", t0)
	writeSpec(t, dir, "late.yml", minimal+"domain: s.example.org\n", t0.Add(time.Hour))
	writeSpec(t, dir, "x.yml.tmp", minimal, t0)

	tests := []struct {
		app     string
		nilDes  bool
		wantErr string // "" for a valid spec
	}{
		{app: "a"},
		{app: "absent", nilDes: true},
		{app: "x", nilDes: true}, // only a temp file
		{app: "bad", wantErr: "not valid YAML"},
		{app: "dup", wantErr: "2 spec files"},
		{app: "owner"},
		{app: "late", wantErr: `app "owner"`},
	}
	for _, tt := range tests {
		des, err := Load(dir, tt.app, testDefaults)
		if err != nil {
			t.Errorf("Load(%s): %v", tt.app, err)
			continue
		}
		if tt.nilDes {
			if des != nil {
				t.Errorf("Load(%s) = %+v, want nil", tt.app, des)
			}
			continue
		}
		if des == nil || des.App != tt.app || des.Generation == "" {
			t.Errorf("Load(%s) = %+v", tt.app, des)
			continue
		}
		if tt.wantErr == "" && (des.Err != nil || des.Spec == nil) {
			t.Errorf("Load(%s): %v", tt.app, des.Err)
		}
		if tt.wantErr != "" && (des.Err == nil || des.Spec != nil || !strings.Contains(des.Err.Error(), tt.wantErr)) {
			t.Errorf("Load(%s) err = %v, want %q", tt.app, des.Err, tt.wantErr)
		}
	}
	for _, app := range []string{"../a", "", ".a", "a/b"} {
		if _, err := Load(dir, app, testDefaults); err == nil {
			t.Errorf("Load(%q) accepted a name that is not a file name", app)
		}
	}
	// Load and Scan agree on every app.
	set, err := Scan(dir, testDefaults)
	if err != nil {
		t.Fatal(err)
	}
	for app, s := range set {
		l, err := Load(dir, app, testDefaults)
		if err != nil || (l.Err == nil) != (s.Err == nil) || l.Generation != s.Generation {
			t.Errorf("Load(%s) = %+v, %v; Scan gave %+v", app, l, err, s)
		}
	}
}

// TestLoadAgreesWithScanOnAnOverlayMissing: an older spec whose overlay file is missing is
// invalid and holds no stack in a scan; Load of the newer spec of that stack says the same.
func TestLoadAgreesWithScanOnAnOverlayMissing(t *testing.T) {
	dir := t.TempDir()
	t0 := time.Now().Add(-time.Hour)
	writeSpec(t, dir, "a.yml", "recipe: r\nversion: v1\ndomain: s.example.org\noverlays:\n  - file: overlays/missing.yml\n", t0)
	writeSpec(t, dir, "b.yml", "recipe: r\nversion: v1\ndomain: s.example.org\n", t0.Add(time.Minute))
	set, err := Scan(dir, Defaults{})
	if err != nil {
		t.Fatal(err)
	}
	d, err := Load(dir, "b", Defaults{})
	if err != nil {
		t.Fatal(err)
	}
	if set["a"].Err == nil || set["b"].Err != nil || d.Err != nil {
		t.Fatalf("scan: a %v, b %v; Load(b): %v; want a invalid, b valid in both", set["a"].Err, set["b"].Err, d.Err)
	}
}

// TestLoadDeployed: two specs map to one stack. Load gives it to the older file; LoadDeployed
// to the app deployed there, as the reconciler does, whatever the files' age.
func TestLoadDeployed(t *testing.T) {
	dir := t.TempDir()
	for i, app := range []string{"old", "new"} {
		if err := Place(dir, app, []byte("recipe: r\nversion: 1.0.0\ndomain: shop.example.org\n")); err != nil {
			t.Fatal(err)
		}
		at := time.Now().Add(time.Duration(i-2) * time.Hour)
		if err := os.Chtimes(filepath.Join(dir, app+".yml"), at, at); err != nil {
			t.Fatal(err)
		}
	}
	holds := func(d *Desired) bool { return d != nil && d.Spec != nil && d.Err == nil }
	if d, err := Load(dir, "new", Defaults{}); err != nil || holds(d) || !strings.Contains(d.Err.Error(), `app "old"`) {
		t.Fatalf("Load of the newer file: %+v, %v; want an error naming old", d, err)
	}
	newDeployed := func(app, stack string) bool { return app == "new" && stack == "shop_example_org" }
	if d, err := LoadDeployed(dir, "new", Defaults{}, newDeployed); err != nil || !holds(d) {
		t.Fatalf("LoadDeployed of the deployed app: %+v, %v; want it valid", d, err)
	}
	if d, err := LoadDeployed(dir, "old", Defaults{}, newDeployed); err != nil || holds(d) || !strings.Contains(d.Err.Error(), `app "new"`) {
		t.Fatalf("LoadDeployed of the other: %+v, %v; want an error naming new", d, err)
	}
}
