package spec

import (
	"strings"
	"testing"
)

// TestRefusedURLsAreQuotedWithoutUserInfo: a spec whose source or health URL is refused
// quotes the URL in its error, which becomes the Invalid status's message and conditions
// (status -o json, the web view's list, page and event stream) and a log line: without the
// token or password of its user info, also when the URL does not parse because that password
// holds an unescaped "/" or "@".
func TestRefusedURLsAreQuotedWithoutUserInfo(t *testing.T) {
	const secret = "tok3nSECRET"
	for _, tc := range []struct {
		name, data, want string
	}{
		{"source not a git URL", "recipe: r\nsource: htps://ci:" + secret + "@git.example.org/me/r.git\nref: main\n",
			`source "htps://git.example.org/me/r.git" is not a git URL`},
		{"source with whitespace", "recipe: r\nsource: \"https://ci:" + secret + "@git.example.org/me/r .git\"\nref: main\n",
			`source "https://git.example.org/me/r .git" contains whitespace`},
		{"source whose password has a slash", "recipe: r\nsource: https://ci:" + secret + "/x@git.example.org/me/r.git\nref: main\n",
			`source "https://git.example.org/me/r.git" is not a URL`},
		{"source not a git URL whose password has an @", "recipe: r\nsource: htps://ci:tok3n@" + secret + "@git.example.org/me/r.git\nref: main\n",
			`source "htps://git.example.org/me/r.git" is not a git URL`},
		{"health with another placeholder", minimal + "health:\n  - http: \"https://admin:" + secret + "@{domain}/{path}\"\n",
			`health[0].http "https://{domain}/{path}" has a placeholder other than {domain}`},
		{"health whose password has a slash", minimal + "health:\n  - http: \"https://admin:" + secret + "/x@{domain}/\"\n",
			`health[0].http "https://{domain}/" is not a URL`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("a.yml", "a", []byte(tc.data), testDefaults)
			if err == nil {
				t.Fatal("accepted")
			}
			if msg := err.Error(); strings.Contains(msg, secret) || strings.Contains(msg, "SECRET") || !strings.Contains(msg, tc.want) {
				t.Errorf("error %q\nwant it to say %q, without the user info", msg, tc.want)
			}
		})
	}
}
