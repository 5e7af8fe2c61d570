package spec

import (
	"os"
	"path/filepath"
	"testing"
)

func TestLoadApp(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	d := Defaults{DomainSuffix: "example.org"}
	write("a.yml", "recipe: r\nversion: 1.0.0\n")
	write("b.yml", "recipe: r\nversion: 1.0.0\ndomain: a.example.org\n") // a's stack
	write("c.yml", "recipe: r\nversion: 1.0.0\n")
	write("c.json", `{"recipe": "r", "version": "1.0.0"}`)

	a, err := LoadApp(dir, "a", d)
	if err != nil || a == nil || a.Spec == nil || a.Generation != Generation([]byte("recipe: r\nversion: 1.0.0\n")) {
		t.Fatalf("a: %+v %v", a, err)
	}
	// LoadApp looks at no other file: the stack clash Load reports is left to the caller.
	if b, err := LoadApp(dir, "b", d); err != nil || b.Spec == nil {
		t.Fatalf("b: %+v %v", b, err)
	}
	if b, _ := Load(dir, "b", d); b.Err == nil {
		t.Fatal("Load must still report the stack clash")
	}
	if c, err := LoadApp(dir, "c", d); err != nil || c.Err == nil {
		t.Fatalf("two files for one app must be an error entry: %+v %v", c, err)
	}
	if x, err := LoadApp(dir, "x", d); x != nil || err != nil {
		t.Fatalf("missing app: %+v %v", x, err)
	}
	a.Spec.Env = map[string]string{"CHANGED": "1"}
	if again, _ := LoadApp(dir, "a", d); again.Spec.Env != nil {
		t.Fatal("a returned spec shares state with the cache")
	}
}
