package webview

import (
	"embed"
	"html/template"
	"net/http"
	"time"

	"github.com/swarm-reconciler/reconciler/spec"
)

//go:embed assets
var assets embed.FS

// templates are the pages, parsed once: a template that does not parse fails every test.
var templates = template.Must(template.New("").Funcs(template.FuncMap{
	"title":  func(title, app string) map[string]string { return map[string]string{"Title": title, "App": app} },
	"phases": func() []spec.Phase { return phases },
	"stamp": func(t any) string {
		switch t := t.(type) {
		case time.Time:
			if t.IsZero() {
				return "-"
			}
			return t.UTC().Format(time.RFC3339)
		case *time.Time:
			if t == nil || t.IsZero() {
				return "-"
			}
			return t.UTC().Format(time.RFC3339)
		}
		return "-"
	},
	"short": func(s string) string {
		if len(s) > 12 {
			return s[:12]
		}
		return s
	},
	"run": func(label string, r *spec.BackupRun) map[string]any { return map[string]any{"Label": label, "Run": r} },
}).ParseFS(assets, "assets/*.html"))

// static serves one embedded asset with its content type.
func static(name, contentType string) http.HandlerFunc {
	data, err := assets.ReadFile("assets/" + name)
	if err != nil {
		panic(err) // embedded at build time: a missing file is a build mistake
	}
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", contentType)
		w.Header().Set("Cache-Control", "public, max-age=300")
		_, _ = w.Write(data)
	}
}
