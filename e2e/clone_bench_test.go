package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkRecipeClone measures the first clone of a recipe with 300 release tags, by
// `reconciler render` of a spec naming its newest tag with --recipe-url (go-git, bare clone,
// then the render), against `git clone --bare` of the same remote, both over git's smart HTTP on
// loopback (git http-backend), round by round.
//
//	go test ./e2e/ -run '^$' -bench RecipeClone -benchtime 1x
func BenchmarkRecipeClone(b *testing.B) {
	remotes := b.TempDir()
	const name, tags = "e2e-tags", 300
	dir := filepath.Join(remotes, name)
	commitRecipe(b, dir, "0.0.1+1", echoRecipeFiles(name, "", fmt.Sprintf("services:\n  app:\n    image: %s\n", echoImage), nil))
	for i := 1; i < tags; i++ {
		v := fmt.Sprintf("1.%d.%d+1", i/10, i%10)
		if err := os.WriteFile(filepath.Join(dir, "CHANGELOG.md"), []byte(fmt.Sprintf("release %s\n", v)), 0o644); err != nil {
			b.Fatal(err)
		}
		for _, args := range [][]string{{"add", "-A"}, {"commit", "-q", "-m", "release " + v}, {"tag", "-a", v, "-m", "release " + v}} {
			if err := git(dir, args...); err != nil {
				b.Fatal(err)
			}
		}
	}
	newest := fmt.Sprintf("1.%d.%d+1", (tags-1)/10, (tags-1)%10)
	remote := serveGit(b, remotes)
	bin := needBinary(b)
	var ours, theirs []float64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for round := 0; round < 5; round++ {
			root := b.TempDir()
			specFile := filepath.Join(root, "app.yml")
			if err := os.WriteFile(specFile, []byte(fmt.Sprintf("recipe: %s\nversion: %s\n", name, newest)), 0o644); err != nil {
				b.Fatal(err)
			}
			start := time.Now()
			if out, err := exec.Command(bin, "render", specFile, "--recipes", filepath.Join(root, "recipes"),
				"--recipe-url", remote.url+"/{recipe}", "--domain-suffix", domainSuffix).CombinedOutput(); err != nil {
				b.Fatalf("render: %v\n%s", err, out)
			}
			ours = append(ours, time.Since(start).Seconds()*1000)
			start = time.Now()
			if out, err := exec.Command("git", "clone", "-q", "--bare", remote.url+"/"+name, filepath.Join(root, "bare")).CombinedOutput(); err != nil {
				b.Fatalf("git clone: %v\n%s", err, out)
			}
			theirs = append(theirs, time.Since(start).Seconds()*1000)
		}
	}
	b.StopTimer()
	b.ReportMetric(median(ours), "render-with-clone-ms")
	b.ReportMetric(median(theirs), "git-clone-bare-ms")
	b.ReportMetric(median(ours)/median(theirs), "ratio")
	b.Logf("%d tags; ms per round: reconciler render (clone + render) %v, git clone --bare %v", tags, ours, theirs)
}
