package controller

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/swarm-reconciler/reconciler/spec"
)

// TestInvalidStatusHoldsNoURLCredentials: a spec refused for its source or health URL is
// Invalid with a message that names the URL without the token or password of its user info:
// the status (a 0644 file, status -o json, the web view's list, page and event stream) holds
// none, in its message, conditions or history.
func TestInvalidStatusHoldsNoURLCredentials(t *testing.T) {
	f := newFixture(t)
	for app, content := range map[string]string{
		"s": "recipe: echo\nsource: htps://ci:tok3nSECRET@git.example.org/me/echo.git\nref: main\n",
		"p": "recipe: echo\nsource: https://ci:tok3n/SECRET@git.example.org/me/echo.git\nref: main\n",
		"h": "recipe: echo\nversion: 1.0.0+1\nhealth:\n  - http: \"https://admin:PROBEPASSW0RD@{domain}/{path}\"\n",
	} {
		f.writeSpec(app, content)
		st := f.settle(app)
		if st.Phase != spec.PhaseInvalid {
			t.Errorf("%s: %s %q, want Invalid", app, st.Phase, st.Message)
		}
		data, err := os.ReadFile(filepath.Join(f.r.StatusDir, app+".json"))
		if err != nil {
			t.Fatal(err)
		}
		for _, secret := range []string{"tok3n", "SECRET", "PROBEPASSW0RD"} {
			if strings.Contains(string(data), secret) {
				t.Errorf("the status of %s holds %s: %q", app, secret, st.Message)
			}
		}
	}
}
