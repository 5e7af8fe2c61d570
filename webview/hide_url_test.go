package webview

import (
	"strings"
	"testing"
)

// TestHideSecretsOfURLsThatDoNotParse: a password written into a source or health URL with an
// unescaped "@" (a URL Go and git take) or "/" (the spec is then Invalid, and its page is
// where one looks for why), or a URL whose "@" is written as an escape, is not shown, neither
// whole nor in part: the pattern took the user info up to the first "@" (the rest of the
// password was shown) and saw none past a "/" or in an escape (all of it was shown).
func TestHideSecretsOfURLsThatDoNotParse(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"a source password with a slash", "recipe: x\nsource: https://ci:tok3n/SECRET@git.example.org/me/x.git\nref: main\n",
			"recipe: x\nsource: \"(hidden)\"\nref: main\n"},
		{"a source password with an @", "recipe: x\nsource: https://ci:tok3n@SECRET@git.example.org/me/x.git\nref: main\n",
			"recipe: x\nsource: https://git.example.org/me/x.git\nref: main\n"},
		{"a health password with a slash", "health:\n  - http: \"https://admin:pw/SECRET@{domain}/\"\n    ok: [200]\n",
			"health:\n  - http: \"(hidden)\"\n    ok: [200]\n"},
		{"a JSON source with an escaped @", `{"recipe": "x", "source": "https://ci:tok3nSECRET\u0040git.example.org/x.git"}`,
			`{"recipe": "x", "source": "(hidden)"}`},
		{"a source with an escaped @", "source: \"https://ci:tok3nSECRET\\x40git.example.org/x.git\"\nref: main\n",
			"source: \"(hidden)\"\nref: main\n"},
		{"an @ in a path is no user info", "source: https://git.example.org/@me/x.git\n", "source: https://git.example.org/@me/x.git\n"},
		{"an @ in a health path is no user info", "health:\n  - http: \"https://{domain}/@me\"\n", "health:\n  - http: \"https://{domain}/@me\"\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := hideSecrets([]byte(tc.in))
			if got != tc.want || strings.Contains(got, "SECRET") {
				t.Errorf("hideSecrets(%q)\n got %q\nwant %q", tc.in, got, tc.want)
			}
		})
	}
}
