package manifests

import (
	"context"
	"runtime"
	"strings"
	"testing"
)

// billionLaughs is a compose file whose aliases expand to 9^9 strings ("billion laughs").
func billionLaughs() string {
	var b strings.Builder
	b.WriteString("version: \"3.8\"\nx-a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n")
	prev := "a"
	for _, n := range []string{"b", "c", "d", "e", "f", "g", "h", "i"} {
		refs := strings.TrimSuffix(strings.Repeat("*"+prev+",", 9), ",")
		b.WriteString("x-" + n + ": &" + n + " [" + refs + "]\n")
		prev = n
	}
	b.WriteString("services:\n  app:\n    image: nginx:1\n    labels: {x: *i}\n")
	return b.String()
}

// renderLaughs renders a recipe whose compose file is billionLaughs.
func renderLaughs(t testing.TB) error {
	recipesDir := t.TempDir()
	repo := newTestRepo(t, recipesDir, "laughs")
	h := repo.commit(map[string]string{"compose.yml": billionLaughs(), ".env.sample": "TYPE=laughs\n"})
	repo.tag("1.0.0+1", h, true)
	_, err := Render(context.Background(), recipesDir, Request{App: "h", Recipe: "laughs", Version: "1.0.0+1", Domain: "h.example", Stack: "h_example"})
	return err
}

// TestBillionLaughsIsInvalid: the YAML decoder's alias budget refuses the document (an input
// error, Invalid), it is never expanded.
func TestBillionLaughsIsInvalid(t *testing.T) {
	err := renderLaughs(t)
	if err == nil || !strings.Contains(err.Error(), "excessive aliasing") || !strings.Contains(err.Error(), ErrInput.Error()) {
		t.Fatalf("billion laughs: %v", err)
	}
}

// BenchmarkBillionLaughs reports the time and the memory allocated to refuse it (issue 15:
// within 1 s and 64 MiB).
func BenchmarkBillionLaughs(b *testing.B) {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := 0; i < b.N; i++ {
		if err := renderLaughs(b); err == nil {
			b.Fatal("billion laughs rendered")
		}
	}
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/float64(b.N)/(1<<20), "MiB-alloc/op")
}
