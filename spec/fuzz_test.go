package spec

import (
	"encoding/json"
	"reflect"
	"testing"
)

// FuzzParse checks that Parse never panics and that any spec it accepts survives being written
// back out as JSON (which is YAML too) and read again. There is no YAML round trip: the
// product never writes specs as YAML, and yaml.v3's own round trip loses a leading newline
// of a string (testdata/fuzz/FuzzParse/c16814cfd2243544, found by this fuzzer in CI).
func FuzzParse(f *testing.F) {
	seeds := []string{
		minimal,
		"recipe: custom-html\nversion: 1.7.1+1.27.2\ntier: upgrade\nupgradeFrom: 1.7.0+1.27.1\ndomain: ch-1a2b3c.ci.example.org\n" +
			"env:\n  LETS_ENCRYPT_ENV: \"\"\n  PORT: 8080\ntimeout: 15m\nttl: 1h\nsuspend: false\n" +
			"health:\n  - http: \"https://{domain}/\"\n    ok: [200]\n  - tcp: \"127.0.0.1:64738\"\n    stable: 2\n",
		`{"recipe": "r", "version": "v", "env": {"A": "\u00e9\/"}, "health": [{"tcp": "[::1]:1"}]}`,
		"recipe: &r x\nversion: *r\nenv: {A: *r, B: ~, C: 1.50}\n",
		"", "---\n", "- a\n", "foo", "recipe: ../x\nversion: a b\n", "foo: 1\n", "a: b: c",
		"recipe: x\nversion: y\n---\nz: 1\n", "<<: {recipe: r}\n", "env:\n\tA: b\n",
		"recipe: r\nversion: v\nhealth:\n  - http: ftp://x\n    ok: [700]\n    stable: -1\n",
		"recipe: r\nversion: v\ntimeout: 600\nttl: -1s\ndomain: Foo.org\n",
		"recipe: !!binary aGk=\nversion: !!str 1.0\n",
		"recipe: r\nversion: v\nenv:\n  A: |\n    multi\n    line\n  B: 'q''uote'\n",
		"recipe: r\nversion: v\noverlays:\n  - file: overlays/ci.yml\n  - inline: |\n      services: {}\n  - file: ../x\n",
		"recipe: r\nversion: v\noverlays:\n  - file: overlays/ci.yml\n  - inline: |\n      services: {}\n",
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Parse("specs/fuzz.yml", "fuzz", data, testDefaults)
		if err != nil {
			if s != nil {
				t.Fatalf("spec and error both returned: %v", err)
			}
			return
		}
		j, err := json.Marshal(s)
		if err != nil {
			t.Fatalf("json.Marshal of an accepted spec: %v", err)
		}
		s3, err := Parse("specs/fuzz.json", "fuzz", j, testDefaults)
		if err != nil {
			t.Fatalf("re-parse of marshalled JSON failed: %v\ninput: %q\njson: %s", err, data, j)
		}
		// Lines are where things are in the file, not what the spec says.
		for _, sp := range []*Spec{s, s3} {
			for i := range sp.Overlays {
				sp.Overlays[i].Line, sp.Overlays[i].InlineLine = 0, 0
			}
		}
		if !reflect.DeepEqual(s, s3) {
			t.Fatalf("JSON round trip changed the spec:\n got %#v\nwant %#v\njson: %s", s3, s, j)
		}
	})
}
