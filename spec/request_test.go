package spec

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestRequest(t *testing.T) {
	dir := t.TempDir()
	orig := "# CI job 42\nrecipe: custom-html # the recipe\nversion: 1.0.0\nbackup: {keep: 2}\n"
	if err := Place(dir, "a", []byte(orig)); err != nil {
		t.Fatal(err)
	}
	gen, err := Request(dir, "a", false, "", "2026-12-01T10:00:00Z", testDefaults, nil)
	if err != nil {
		t.Fatal(err)
	}
	d, err := Load(dir, "a", testDefaults)
	if err != nil || d.Err != nil || d.Generation != gen {
		t.Fatalf("load: %v %v %s", err, d.Err, d.Generation)
	}
	if b := d.Spec.Backup; b == nil || b.RequestedAt != "2026-12-01T10:00:00Z" || b.Keep != 2 {
		t.Fatalf("backup = %+v", d.Spec.Backup)
	}
	data, _ := os.ReadFile(filepath.Join(dir, "a.yml"))
	if !strings.Contains(string(data), "# CI job 42") || !strings.Contains(string(data), "# the recipe") {
		t.Errorf("comments lost:\n%s", data)
	}

	if _, err := Request(dir, "a", true, "20261201T100000.000Z", "r2", testDefaults, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := Request(dir, "a", true, "", "r3", testDefaults, nil); err != nil {
		t.Fatal(err)
	}
	d, _ = Load(dir, "a", testDefaults)
	if r := d.Spec.Backup.Restore; r == nil || r.RequestedAt != "r3" || r.ID != "" || d.Spec.Backup.RequestedAt != "2026-12-01T10:00:00Z" {
		t.Fatalf("restore = %+v", r)
	}

	// A JSON spec becomes YAML.
	if err := os.WriteFile(filepath.Join(dir, "j.json"), []byte(`{"recipe": "custom-html", "version": "1.0.0"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Request(dir, "j", false, "", "r1", testDefaults, nil); err != nil {
		t.Fatal(err)
	}
	if d, _ := Load(dir, "j", testDefaults); d == nil || d.Err != nil || d.Spec.Backup.RequestedAt != "r1" || filepath.Ext(d.Path) != ".yml" {
		t.Fatalf("json spec: %+v", d)
	}
	if _, err := Request(dir, "none", false, "", "r1", testDefaults, nil); err == nil || !strings.Contains(err.Error(), "no spec of none") {
		t.Errorf("missing spec: %v", err)
	}
	// A suspended app: refused, the spec left as it was.
	suspended := "recipe: custom-html\nversion: 1.0.0\nsuspend: true\n"
	if err := Place(dir, "s", []byte(suspended)); err != nil {
		t.Fatal(err)
	}
	for _, restore := range []bool{false, true} {
		if _, err := Request(dir, "s", restore, "", "r1", testDefaults, nil); err == nil || !strings.Contains(err.Error(), "s is suspended") {
			t.Errorf("a suspended app's request (restore %v): %v", restore, err)
		}
	}
	if data, _ := os.ReadFile(filepath.Join(dir, "s.yml")); string(data) != suspended {
		t.Errorf("a suspended app's spec was changed:\n%s", data)
	}
}

// TestRequestGenerationWithOverlays: the generation a request returns is the one the status
// will say, overlays included, so `backup --wait` sees its request carried out.
func TestRequestGenerationWithOverlays(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "overlays"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "overlays", "x.yml"), []byte("services: {}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Place(dir, "a", []byte("recipe: r\nversion: v1\noverlays:\n  - file: overlays/x.yml\n")); err != nil {
		t.Fatal(err)
	}
	gen, err := Request(dir, "a", false, "", "2026-01-01T00:00:00Z", testDefaults, nil)
	if err != nil {
		t.Fatal(err)
	}
	d, err := Load(dir, "a", testDefaults)
	if err != nil || d.Err != nil || d.Generation != gen {
		t.Fatalf("Request returned %s, Load reads %s (%v %v)", gen, d.Generation, err, d.Err)
	}
}

// TestAttemptKey: what a spec asks to be deployed. A request leaves it; an edit of the spec or
// of an overlay's contents changes it; a spec without overlays has the key of the spec alone,
// so statuses written before overlays counted keep their attempt.
func TestAttemptKey(t *testing.T) {
	parse := func(src string) *Spec {
		t.Helper()
		s, err := Parse("a.yml", "a", []byte(src), testDefaults)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	ov := func(data string) []OverlayDoc {
		return []OverlayDoc{{Name: "overlays/x.yml", Data: []byte(data), SHA256: Generation([]byte(data))}}
	}
	base := &Desired{Spec: parse("recipe: r\nversion: v1\n")}
	for _, tc := range []struct {
		name string
		d    *Desired
		same bool
	}{
		{"a backup request", &Desired{Spec: parse("recipe: r\nversion: v1\nbackup:\n  requestedAt: x\n")}, true},
		{"another version", &Desired{Spec: parse("recipe: r\nversion: v2\n")}, false},
		{"an overlay", &Desired{Spec: parse("recipe: r\nversion: v1\n"), Overlays: ov("services: {}\n")}, false},
	} {
		if got := tc.d.AttemptKey() == base.AttemptKey(); got != tc.same {
			t.Errorf("%s: same key %v, want %v", tc.name, got, tc.same)
		}
	}
	if base.AttemptKey() != base.Spec.attemptKey() {
		t.Error("a spec without overlays: the key differs from the spec's own")
	}
	withOv := func(data string) *Desired {
		return &Desired{Spec: parse("recipe: r\nversion: v1\noverlays:\n  - file: overlays/x.yml\n"), Overlays: ov(data)}
	}
	if withOv("services: {}\n").AttemptKey() == withOv("services: {a: {}}\n").AttemptKey() {
		t.Error("an overlay file edited: the same key")
	}
}

// TestRequestUndoesNoConcurrentEdit: an apply (or a delete) of the spec landing between a
// request's read of the spec and its write waits for the write, and is not undone by it.
func TestRequestUndoesNoConcurrentEdit(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(dir string) error
		want string // the spec file at the end; "" none
	}{
		{"apply", func(dir string) error { return Place(dir, "a", []byte("recipe: r\nversion: 2.0.0\n")) }, "recipe: r\nversion: 2.0.0\n"},
		{"delete", func(dir string) error { return Unplace(dir, "a") }, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := Place(dir, "a", []byte("recipe: r\nversion: 1.0.0\n")); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			beforeRequestPlace = func() {
				go func() { done <- tc.edit(dir) }()
				select {
				case err := <-done:
					t.Errorf("the %s ended while the request was between its read and its write (%v): the request undoes it", tc.name, err)
					done <- nil
				case <-time.After(200 * time.Millisecond): // waiting on the edit lock, as it should
				}
			}
			defer func() { beforeRequestPlace = func() {} }()
			if _, err := Request(dir, "a", false, "", "r1", Defaults{DomainSuffix: "test"}, nil); err != nil {
				t.Fatal(err)
			}
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			data, err := os.ReadFile(filepath.Join(dir, "a.yml"))
			if tc.want == "" && !errors.Is(err, fs.ErrNotExist) || tc.want != "" && string(data) != tc.want {
				t.Errorf("after the request and a concurrent %s: spec %q (%v), want %q", tc.name, data, err, tc.want)
			}
		})
	}
}
