package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image/color"
	"image/png"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	cdppage "github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// The web view (issue 17) in a real browser: Debian's chromium, headless, driven over the
// DevTools protocol (chromedp); axe-core, the accessibility engine, from the npm registry
// (scripts/test-tools installs both).

// axeCoreEnv names axe.min.js; the default is where scripts/test-tools puts it.
const axeCoreEnv = "E2E_AXE_CORE"

const defaultAxeCore = "/opt/swarm-reconciler-test-tools/node_modules/axe-core/axe.min.js"

// artifactsEnv names the folder screenshots go to (default: e2e/artifacts, ignored by git).
const artifactsEnv = "E2E_ARTIFACTS"

// needBrowser returns chromium's path and axe-core's script. Without them the test is
// skipped, unless CI is set: then it fails.
func needBrowser(t *testing.T) (browser, axe string) {
	t.Helper()
	axe = os.Getenv(axeCoreEnv)
	if axe == "" {
		axe = defaultAxeCore
	}
	browser, err := exec.LookPath("chromium")
	if err == nil {
		_, err = os.Stat(axe)
	}
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("chromium or axe-core missing (CI is set, so this is a failure; scripts/test-tools installs them): %v", err)
		}
		t.Skipf("chromium or axe-core missing: run scripts/test-tools; with CI set this fails (%v)", err)
	}
	return browser, axe
}

// newBrowser starts a headless chromium with the flags this closed network needs (no
// background connections), in a profile of its own; javascript false turns scripts off.
func newBrowser(t *testing.T, path string, javascript bool) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1280, 900))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	off := chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: !javascript})
		return err
	})
	if err := chromedp.Do(ctx, off); err != nil {
		t.Fatalf("start chromium %s: %v", path, err)
	}
	return ctx
}

// browse runs the steps in the browser of ctx within two minutes, failing the test on error.
func browse(t *testing.T, ctx context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	tctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := chromedp.Do(tctx, steps...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// void is an action whose value is dropped, to run with others.
func void[T any](a chromedp.Action[T]) chromedp.Action[chromedp.Void] {
	return func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
		_, err := a(ctx, tg)
		return chromedp.Void{}, err
	}
}

// evalIn evaluates a JavaScript expression in the page of ctx.
func evalIn[T any](t *testing.T, ctx context.Context, expr string, opts ...chromedp.EvaluateOption) T {
	t.Helper()
	tctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	v, err := chromedp.Run(tctx, chromedp.Evaluate[T](expr, opts...))
	if err != nil {
		t.Fatalf("evaluate %.60q: %v", expr, err)
	}
	return v
}

// TestWebViewInABrowser: three apps in three phases on /, as a browser renders them; a spec
// fixed while the page is open turns its row Ready without a reload (server-sent events);
// the same page with JavaScript off; screenshots of / and an app page at desktop and phone
// widths, checked non-blank; axe-core finds no serious or critical violation; the keyboard
// reaches the skip link and the apps.
func TestWebViewInABrowser(t *testing.T) {
	t.Parallel()
	browser, axePath := needBrowser(t)
	axe, err := os.ReadFile(axePath)
	if err != nil {
		t.Fatal(err)
	}
	h := newHarness(t)
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	h.startWith(nil, "--ui-addr", "127.0.0.1:"+strconv.Itoa(port))

	ready, failed, invalid := h.newApp("e2e-ui-ok"), h.newApp("e2e-ui-fail"), h.newApp("e2e-ui-bad")
	version := recipeVersions[0]
	readyGen := h.writeSpec(ready.name, ready.spec(version))
	failedGen := h.writeSpec(failed.name, failed.spec(missingImageVersion, "timeout: 10m"))
	invalidGen := h.writeSpec(invalid.name, invalid.spec(version, "colour: blue"))
	h.waitPhase(ready.name, readyGen, "Ready")
	h.waitPhase(failed.name, failedGen, "Failed")
	h.waitPhase(invalid.name, invalidGen, "Invalid")

	ctx := newBrowser(t, browser, true)
	text := func(sel string) string {
		return evalIn[string](t, ctx, fmt.Sprintf(`(document.querySelector(%q) || {textContent: "(missing)"}).textContent`, sel))
	}
	browse(t, ctx, "load /", chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.CSS(`#app-`+invalid.name)))
	phases := [3]string{text(`#app-` + ready.name + ` .phase`), text(`#app-` + failed.name + ` .phase`), text(`#app-` + invalid.name + ` .phase`)}
	if phases != [3]string{"Ready", "Failed", "Invalid"} {
		t.Fatalf("phases in the page: %v, want Ready, Failed, Invalid", phases)
	}
	failedMsg, invalidMsg := text(`#app-`+failed.name+` .msg`), text(`#app-`+invalid.name+` .msg`)
	if !strings.Contains(failedMsg, missingImage) || !strings.Contains(invalidMsg, "colour") {
		t.Fatalf("messages in the page:\n  %s: %s\n  %s: %s", failed.name, failedMsg, invalid.name, invalidMsg)
	}
	t.Logf("rendered: %v; caption %q", phases, text(`#apps caption`))

	// The keyboard: the first Tab reaches the skip link; Tabs go on to the apps' links.
	browse(t, ctx, "tab", chromedp.KeyEvent(kb.Tab))
	first := evalIn[string](t, ctx, `document.activeElement.className`)
	reached := false
	for range 40 {
		browse(t, ctx, "tab", chromedp.KeyEvent(kb.Tab))
		if evalIn[string](t, ctx, `document.activeElement.getAttribute("href") || ""`) == "/apps/"+ready.name {
			reached = true
			break
		}
	}
	if first != "skip" || !reached {
		t.Errorf("keyboard: the first Tab is on %q (want the skip link); the app's link reached: %v", first, reached)
	}

	// Live: the stream is open, then the invalid spec is fixed; its row turns Ready in this
	// page, which is not reloaded (a mark set on the window stays).
	evalIn[int](t, ctx, `window.reloadMark = 42`)
	browse(t, ctx, "wait for the event stream", void(chromedp.Poll[bool](`document.getElementById("live").textContent.startsWith("Live:")`,
		chromedp.WithPollingTimeout(30*time.Second))))
	fixedAt := time.Now()
	fixedGen := h.writeSpec(invalid.name, invalid.spec(version))
	browse(t, ctx, "the row turns Ready without a reload", void(chromedp.Poll[bool](
		fmt.Sprintf(`document.querySelector(%q).textContent === "Ready"`, `#app-`+invalid.name+` .phase`),
		chromedp.WithPollingTimeout(2*time.Minute), chromedp.WithPollingInterval(100*time.Millisecond))))
	took := time.Since(fixedAt)
	if mark := evalIn[int](t, ctx, `window.reloadMark || 0`); mark != 42 {
		t.Errorf("the page was reloaded (mark %d): the row must change through the event stream", mark)
	}
	h.waitPhase(invalid.name, fixedGen, "Ready")
	t.Logf("the row turned Ready in the open page %s after the spec was fixed", took.Round(time.Millisecond))

	// A change after the page was rendered and before its event stream opened (here held
	// back until the status changed) is shown once the stream opens.
	late := newBrowser(t, browser, true)
	hold := chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, cdppage.AddScriptToEvaluateOnNewDocument, cdppage.AddScriptToEvaluateOnNewDocumentParams{Source: `(function () {
			var Real = window.EventSource, listeners = [];
			window.EventSource = function (url) {
				window.openStream = function () {
					var es = new Real(url);
					listeners.forEach(function (l) { es.addEventListener(l[0], l[1]); });
				};
				return { addEventListener: function (type, f) { listeners.push([type, f]); } };
			};
		})();`})
		return err
	})
	browse(t, late, "load / with its stream held", hold, chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.CSS(`#app-`+invalid.name)))
	if got := evalIn[string](t, late, fmt.Sprintf(`document.querySelector(%q).textContent`, `#app-`+invalid.name+` .phase`)); got != "Ready" {
		t.Fatalf("%s before the change: %q", invalid.name, got)
	}
	againGen := h.writeSpec(invalid.name, invalid.spec(version, "colour: blue"))
	h.waitPhase(invalid.name, againGen, "Invalid")
	// Until the status file is left alone for 3 s: a later write would reach the page as an
	// event, and this would not test what the page does when the stream opens.
	var last time.Time
	for quiet := time.Now(); time.Since(quiet) < 3*time.Second; time.Sleep(100 * time.Millisecond) {
		fi, err := os.Stat(h.statusPath(invalid.name))
		if err != nil {
			t.Fatal(err)
		}
		if !fi.ModTime().Equal(last) {
			last, quiet = fi.ModTime(), time.Now()
		}
	}
	evalIn[bool](t, late, `window.openStream(); true`)
	browse(t, late, "the change made before the stream opened is shown", void(chromedp.Poll[bool](
		fmt.Sprintf(`document.querySelector(%q).textContent === "Invalid"`, `#app-`+invalid.name+` .phase`),
		chromedp.WithPollingTimeout(5*time.Second), chromedp.WithPollingInterval(100*time.Millisecond))))

	// Accessibility, of the list and of an app page.
	for _, page := range []string{"/", "/apps/" + failed.name} {
		browse(t, ctx, "load "+page, chromedp.Navigate(base+page), chromedp.WaitReady(chromedp.CSS(`#main`)))
		evalIn[bool](t, ctx, string(axe)+";true")
		out := evalIn[string](t, ctx, `axe.run(document, {resultTypes: ["violations"]}).then(r => JSON.stringify(r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.length}))))`,
			chromedp.EvalAwaitPromise)
		var violations []struct {
			ID, Impact, Help string
			Nodes            int
		}
		if err := json.Unmarshal([]byte(out), &violations); err != nil {
			t.Fatalf("axe-core on %s: %v: %s", page, err, out)
		}
		serious := 0
		for _, v := range violations {
			if v.Impact == "serious" || v.Impact == "critical" {
				serious++
				t.Errorf("axe-core on %s: %s violation %s (%s), %d elements", page, v.Impact, v.ID, v.Help, v.Nodes)
			} else {
				t.Logf("axe-core on %s: %s: %s (%s), %d elements", page, v.Impact, v.ID, v.Help, v.Nodes)
			}
		}
		t.Logf("axe-core on %s: %d violations, %d serious or critical", page, len(violations), serious)
	}

	// Screenshots at a desktop's and a phone's width.
	dir := artifactsDir(t)
	for _, size := range []struct {
		name          string
		width, height int64
		mobile        bool
	}{{"desktop", 1280, 900, false}, {"phone", 390, 844, true}} {
		for _, page := range []struct{ path, file string }{{"/", "index"}, {"/apps/" + failed.name, "app"}} {
			vp := []chromedp.EmulateViewportOption{}
			if size.mobile {
				vp = append(vp, chromedp.EmulateMobile, chromedp.EmulateTouch)
			}
			browse(t, ctx, "load "+page.path+" at "+size.name+" width",
				chromedp.EmulateViewport(size.width, size.height, vp...),
				chromedp.Navigate(base+page.path), chromedp.WaitReady(chromedp.CSS(`#main`)))
			// Wider than the viewport: what sticks out (tables scroll inside their region).
			if out := evalIn[string](t, ctx, fmt.Sprintf(`[...document.querySelectorAll("body *")].filter(e => e.getBoundingClientRect().right > %d + 1 && !e.closest(".scroll")).map(e => e.tagName.toLowerCase() + (e.className ? "." + e.className : "") + " " + Math.round(e.getBoundingClientRect().right)).slice(0, 8).join(", ")`, size.width)); out != "" {
				t.Errorf("%s at %d px: wider than the viewport: %s", page.path, size.width, out)
			}
			tctx, cancel := context.WithTimeout(ctx, time.Minute)
			shot, err := chromedp.Run(tctx, chromedp.FullScreenshot(100))
			cancel()
			if err != nil {
				t.Fatalf("screenshot of %s: %v", page.path, err)
			}
			path := filepath.Join(dir, fmt.Sprintf("webview-%s-%s.png", page.file, size.name))
			if err := os.WriteFile(path, shot, 0o644); err != nil {
				t.Fatal(err)
			}
			colours, inked, w, err := inkOf(shot)
			if err != nil {
				t.Fatalf("%s: %v", path, err)
			}
			if colours < 16 || inked < 0.01 {
				t.Errorf("%s looks blank: %d colours, %.1f%% of pixels not background", path, colours, 100*inked)
			}
			t.Logf("%s: %d px wide, %d colours, %.1f%% inked", path, w, colours, 100*inked)
		}
	}

	// JavaScript off: the same rows, rendered by the server.
	noJS := newBrowser(t, browser, false)
	browse(t, noJS, "load / without JavaScript", chromedp.Navigate(base+"/?q=e2e-ui-"), chromedp.WaitReady(chromedp.CSS(`#apps`)))
	nodes, err := chromedp.Run(noJS, chromedp.Nodes(chromedp.CSSAll(`#apps tbody tr[data-app]`)))
	if err != nil {
		t.Fatal(err)
	}
	if len(nodes) < 3 {
		t.Errorf("with JavaScript off, / shows %d of the 3 apps", len(nodes))
	}
	resp, err := http.Get(base + "/apps/" + ready.name)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("GET /apps/%s = %d", ready.name, resp.StatusCode)
	}
}

// artifactsDir is the folder test artifacts go to.
func artifactsDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv(artifactsEnv)
	if dir == "" {
		dir = "artifacts"
	}
	dir, err := filepath.Abs(dir)
	if err == nil {
		err = os.MkdirAll(dir, 0o755)
	}
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// inkOf decodes a PNG: its number of distinct colours (up to 1,000 counted), the share of
// pixels that differ from its top-left pixel (the background), and its width.
func inkOf(data []byte) (colours int, inked float64, width int, err error) {
	img, err := png.Decode(bytes.NewReader(data))
	if err != nil {
		return 0, 0, 0, err
	}
	b := img.Bounds()
	bg := img.At(b.Min.X, b.Min.Y)
	seen := map[[4]uint32]bool{}
	var n, diff int
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			c := img.At(x, y)
			r, g, bl, a := c.RGBA()
			if len(seen) < 1000 {
				seen[[4]uint32{r, g, bl, a}] = true
			}
			if !sameColour(c, bg) {
				diff++
			}
			n++
		}
	}
	if n == 0 {
		return 0, 0, 0, fmt.Errorf("empty image")
	}
	return len(seen), float64(diff) / float64(n), b.Dx(), nil
}

func sameColour(a, b color.Color) bool {
	r1, g1, b1, a1 := a.RGBA()
	r2, g2, b2, a2 := b.RGBA()
	return r1 == r2 && g1 == g2 && b1 == b2 && a1 == a2
}
