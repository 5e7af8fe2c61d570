package swarmstate

import "testing"

func TestOperation(t *testing.T) {
	for path, want := range map[string]string{
		"/v1.41/services":               "/services",
		"/v1.41/services/create":        "/services/create",
		"/v1.41/services/x1y2/update":   "/services/{id}/update",
		"/v1.41/services/x1y2":          "/services/{id}",
		"/v1.41/images/echo:1/json":     "/images/{id}/json",
		"/v1.41/images/a/b/echo:1/json": "/images/{id}/json",
		"/_ping":                        "/_ping",
		"/v1.41/events":                 "/events",
		"/v1.41/volumes/some_vol_name":  "/volumes/{id}",
	} {
		if got := Operation(path); got != want {
			t.Errorf("Operation(%q) = %q, want %q", path, got, want)
		}
	}
}
