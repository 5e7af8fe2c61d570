package spec

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseOverlays(t *testing.T) {
	good := "recipe: r\nversion: 1.0.0\noverlays:\n  - file: overlays/ci.yml\n  - inline: |\n      services:\n        app: {}\n"
	s, err := Parse("a.yml", "a", []byte(good), Defaults{DomainSuffix: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Overlays) != 2 || s.Overlays[0].File != "overlays/ci.yml" || !strings.HasPrefix(s.Overlays[1].Inline, "services:") || s.Overlays[1].InlineLine != 5 {
		t.Fatalf("overlays = %+v", s.Overlays)
	}
	for _, tc := range []struct{ name, overlays, want string }{
		{"both", "  - file: o/x.yml\n    inline: 'services: {}'\n", "exactly one of file"},
		{"neither", "  - {}\n", "exactly one of file"},
		{"absolute", "  - file: /etc/passwd\n", "absolute path"},
		{"parent", "  - file: ../other/x.yml\n", "leaves the spec directory"},
		{"unclean", "  - file: o/../../x.yml\n", "not a clean relative path"},
		{"spec file", "  - file: other.yml\n", "keep overlays in a folder"},
		{"not a list", "  file: o/x.yml\n", "must be a list"},
		{"unknown", "  - path: o/x.yml\n", `"path" is not an overlay field`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("a.yml", "a", []byte("recipe: r\nversion: 1.0.0\noverlays:\n"+tc.overlays), Defaults{DomainSuffix: "test"})
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "line ") {
				t.Errorf("error %v, want one with a line saying %q", err, tc.want)
			}
		})
	}
}

// TestOverlayFilesAreReadWithTheSpec: an overlay file's bytes are part of the app's generation
// (editing it is a change), and a missing file or one reached through a symlink out of the
// spec directory is an error naming the overlay.
func TestOverlayFilesAreReadWithTheSpec(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	body := "recipe: r\nversion: 1.0.0\noverlays:\n  - file: overlays/ci.yml\n"
	write("a.yml", body)
	load := func() *Desired {
		t.Helper()
		set, err := Scan(dir, Defaults{DomainSuffix: "test"})
		if err != nil {
			t.Fatal(err)
		}
		return set["a"]
	}
	d := load()
	if d.Err == nil || !strings.Contains(d.Err.Error(), `overlays[0].file "overlays/ci.yml": no such file`) {
		t.Fatalf("missing overlay: %v", d.Err)
	}
	missing := d.Generation

	write("overlays/ci.yml", "services:\n  app:\n    environment: {A: '1'}\n")
	d = load()
	if d.Err != nil || len(d.Overlays) != 1 || d.Overlays[0].Name != "overlays/ci.yml" || len(d.Overlays[0].SHA256) != 64 {
		t.Fatalf("overlay: %v %+v", d.Err, d.Overlays)
	}
	if d.Generation == missing || d.Generation == Generation([]byte(body)) {
		t.Errorf("generation %s does not depend on the overlay", d.Generation)
	}
	first := d.Generation
	write("overlays/ci.yml", "services:\n  app:\n    environment: {A: '2'}\n")
	if d = load(); d.Generation == first {
		t.Error("editing the overlay file did not change the generation")
	}

	outside := t.TempDir()
	if err := os.WriteFile(filepath.Join(outside, "x.yml"), []byte("services: {}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(outside, "x.yml"), filepath.Join(dir, "overlays", "out.yml")); err != nil {
		t.Fatal(err)
	}
	write("a.yml", "recipe: r\nversion: 1.0.0\noverlays:\n  - file: overlays/out.yml\n")
	if d = load(); d.Err == nil || !strings.Contains(d.Err.Error(), "outside the spec directory") {
		t.Errorf("overlay through a symlink out: %v", d.Err)
	}

	// A spec without overlays keeps the generation of its bytes.
	write("b.yml", "recipe: r\nversion: 1.0.0\n")
	set, _ := Scan(dir, Defaults{DomainSuffix: "test"})
	raw, _ := os.ReadFile(filepath.Join(dir, "b.yml"))
	if set["b"].Generation != Generation(raw) {
		t.Error("a spec without overlays changed generation")
	}
}

// TestUnreadableOverlayGenerationIsTheDirectorys: a spec whose overlay cannot be read has one
// generation however the spec directory is spelled (absolute, relative, through a symbolic
// link), so a CLI's wait agrees with the reconciler that the Invalid status is the spec's.
func TestUnreadableOverlayGenerationIsTheDirectorys(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "specs")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "a.yml"), []byte("recipe: r\nversion: 1.0.0\noverlays:\n  - file: overlays/missing.yml\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(dir, filepath.Join(root, "alias")); err != nil {
		t.Fatal(err)
	}
	gens := map[string]string{}
	load := func(d string) {
		t.Helper()
		des, err := Load(d, "a", Defaults{DomainSuffix: "test"})
		if err != nil || des == nil || des.Err == nil {
			t.Fatalf("load %s: %+v %v", d, des, err)
		}
		gens[des.Generation] = d
	}
	t.Chdir(root)
	for _, d := range []string{dir, filepath.Join(root, "alias"), "specs", "./specs/", "alias"} {
		load(d)
	}
	t.Chdir(dir)
	load(".")
	load("../specs")
	if len(gens) != 1 {
		t.Errorf("one spec, %d generations: %v", len(gens), gens)
	}
}
