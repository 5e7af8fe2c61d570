package swarmstate

import (
	"net/http"
	"strings"
)

// CountingTransport counts every Engine API request by operation ("GET /services",
// "POST /services/{id}/update", ...), for the metric of Engine API calls.
type CountingTransport struct {
	Base  http.RoundTripper
	Count func(operation string)
}

// RoundTrip counts the request, then sends it.
func (t CountingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	t.Count(req.Method + " " + Operation(req.URL.Path))
	return t.Base.RoundTrip(req)
}

// Operation turns an Engine API path into a template without IDs or the API version:
// "/v1.41/services/abc/update" is "/services/{id}/update".
func Operation(path string) string {
	parts := strings.Split(strings.Trim(path, "/"), "/")
	if len(parts) > 0 && strings.HasPrefix(parts[0], "v1.") {
		parts = parts[1:]
	}
	if len(parts) > 3 && parts[0] == "images" {
		// Image names contain slashes: keep only the operation at the end.
		parts = []string{"images", "{id}", parts[len(parts)-1]}
	}
	if len(parts) > 1 && !fixedSegment[parts[1]] {
		parts[1] = "{id}"
	}
	return "/" + strings.Join(parts, "/")
}

// fixedSegment are the second path segments that are verbs, not object IDs.
var fixedSegment = map[string]bool{"create": true, "prune": true, "json": true, "load": true, "search": true}
