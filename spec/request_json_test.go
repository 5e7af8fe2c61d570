package spec

import (
	"os"
	"path/filepath"
	"testing"
)

// TestRequestOnJSONSpecWithEscapes: Parse reads JSON with its own decoder because yaml.v3
// rejects valid JSON escapes ("\/", surrogate pairs), so the reconciler accepts such a spec;
// `reconciler backup`/`restore` must be able to add their request to it too, not ask a person
// to "add the request by hand". Many encoders (PHP's json_encode by default) write "\/".
func TestRequestOnJSONSpecWithEscapes(t *testing.T) {
	dir := t.TempDir()
	body := `{"recipe": "custom-html", "version": "1.0.0", "health": [{"http": "https:\/\/{domain}\/"}], "env": {"GREETING": "\ud83d\ude00"}}`
	if err := os.WriteFile(filepath.Join(dir, "j.json"), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	if d, err := Load(dir, "j", testDefaults); err != nil || d == nil || d.Err != nil {
		t.Fatalf("the spec itself: %+v %v", d, err)
	}
	gen, err := Request(dir, "j", false, "", "r1", testDefaults, nil)
	if err != nil {
		t.Fatalf("a backup request on a JSON spec the reconciler accepts: %v", err)
	}
	d, err := Load(dir, "j", testDefaults)
	if err != nil || d == nil || d.Err != nil || d.Generation != gen {
		t.Fatalf("after the request: %+v %v", d, err)
	}
	if d.Spec.Backup == nil || d.Spec.Backup.RequestedAt != "r1" || d.Spec.Health[0].HTTP != "https://{domain}/" || d.Spec.Env["GREETING"] != "\U0001F600" {
		t.Fatalf("after the request the spec reads %+v", d.Spec)
	}
}
