package spec

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRequest(t *testing.T) {
	dir := t.TempDir()
	orig := "# CI job 42\nrecipe: custom-html # the recipe\nversion: 1.0.0\nbackup: {keep: 2}\n"
	if err := Place(dir, "a", []byte(orig)); err != nil {
		t.Fatal(err)
	}
	gen, err := Request(dir, "a", false, "", "2026-12-01T10:00:00Z", testDefaults)
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

	if _, err := Request(dir, "a", true, "20261201T100000.000Z", "r2", testDefaults); err != nil {
		t.Fatal(err)
	}
	if _, err := Request(dir, "a", true, "", "r3", testDefaults); err != nil {
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
	if _, err := Request(dir, "j", false, "", "r1", testDefaults); err != nil {
		t.Fatal(err)
	}
	if d, _ := Load(dir, "j", testDefaults); d == nil || d.Err != nil || d.Spec.Backup.RequestedAt != "r1" || filepath.Ext(d.Path) != ".yml" {
		t.Fatalf("json spec: %+v", d)
	}
	if _, err := Request(dir, "none", false, "", "r1", testDefaults); err == nil || !strings.Contains(err.Error(), "no spec of none") {
		t.Errorf("missing spec: %v", err)
	}
}
