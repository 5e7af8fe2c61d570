package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
)

// TestStatusNeverHalfWritten: while an app deploys and is torn down, a reader polls its status
// file in a tight loop; every read that finds the file must be one complete JSON document
// naming the app and a phase, and no message may show the engine's "not found" for a removal.
func TestStatusNeverHalfWritten(t *testing.T) {
	h := startHarness(t)
	a := h.newApp("e2e-atomic")
	path := h.statusPath(a.name)

	var (
		wg       sync.WaitGroup
		stop     = make(chan struct{})
		reads    int
		phases   = map[string]int{}
		corrupt  []string
		notFound []string
	)
	look := func() {
		b, err := os.ReadFile(path)
		if errors.Is(err, os.ErrNotExist) {
			return
		}
		reads++
		var s struct {
			App     string `json:"app"`
			Phase   string `json:"phase"`
			Message string `json:"message"`
		}
		switch {
		case err != nil:
			corrupt = append(corrupt, fmt.Sprintf("read error: %v", err))
		case json.Unmarshal(b, &s) != nil:
			corrupt = append(corrupt, fmt.Sprintf("not complete JSON (%d bytes): %q", len(b), truncate(b, 300)))
		case s.App != a.name || s.Phase == "":
			corrupt = append(corrupt, fmt.Sprintf("app %q phase %q: %q", s.App, s.Phase, truncate(b, 300)))
		default:
			phases[s.Phase]++
			// A network removed from the cluster stays listed while the app's container is
			// attached; the engine's "not found" for it is no error to show.
			if strings.Contains(s.Message, "not found") && !slices.Contains(notFound, s.Message) {
				notFound = append(notFound, s.Message)
			}
		}
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				look() // what was written before stop is seen, however long this goroutine waited for a core
				return
			default:
			}
			look()
		}
	}()

	a.deploy(h.recipe.first().Version)
	h.deleteSpec(a.name)
	_, err := h.waitDeleted(a.name)
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}

	seen := make([]string, 0, len(phases))
	for p, n := range phases {
		seen = append(seen, fmt.Sprintf("%s×%d", p, n))
	}
	sort.Strings(seen)
	t.Logf("%d reads of %s; phases seen: %v", reads, path, seen)
	if len(corrupt) > 0 {
		if len(corrupt) > 5 {
			corrupt = append(corrupt[:5], fmt.Sprintf("... and %d more", len(corrupt)-5))
		}
		t.Errorf("%d of %d reads of the status file found it half-written:\n%v", len(corrupt), reads, corrupt)
	}
	if len(notFound) > 0 {
		t.Errorf("the status showed an engine's \"not found\" as an error:\n%s", strings.Join(notFound, "\n"))
	}
	for _, p := range []string{"Ready", "Deleted"} {
		if phases[p] == 0 {
			t.Errorf("the reader never saw phase %s; the loop did not watch the whole life of the app", p)
		}
	}
}

func truncate(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "…"
	}
	return string(b)
}
