package e2e

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// hostileCase is a recipe whose one service asks the host for something a deploy policy
// denies: field is the compose field the denial must name.
type hostileCase struct {
	name, service, field string
	// onlyRestricted: baseline allows it, restricted does not.
	onlyRestricted bool
}

// hostileCases are the compose files of TestDeployPolicy (manifests/policy_test.go checks the
// same set against the checker alone). bindDir is a host directory that exists, outside any
// --allow-bind; port 222 is below 1024 and free on these machines.
func hostileCases(bindDir string) []hostileCase {
	return []hostileCase{
		{"sock", "volumes: [\"/var/run/docker.sock:/var/run/docker.sock\"]", "volumes", false},
		{"root", "volumes: [\"/:/host:ro\"]", "volumes", false},
		{"etc", "volumes: [\"/etc:/host-etc:ro\"]", "volumes", false},
		{"bind", "volumes: [\"" + bindDir + ":/data\"]", "volumes", false},
		{"sysadmin", "cap_add: [SYS_ADMIN]", "cap_add", false},
		{"device", "devices: [\"/dev/null:/dev/hostnull\"]", "devices", false},
		{"privileged", "privileged: true", "privileged", false},
		{"hostnet", "networks: [hostnet]", "networks", false},
		{"port222", "ports: [{target: 8080, published: 222, mode: host}]", "ports", false},
		{"sysctl", "sysctls: {net.core.somaxconn: \"1024\"}", "sysctls", false},
		{"rootuser", "user: \"0\"", "user", true},
	}
}

// TestDeployPolicy: each hostile recipe is Invalid under baseline (unless only restricted
// denies it) and restricted, naming the field, with nothing created; and Ready under
// privileged, as before policies existed.
func TestDeployPolicy(t *testing.T) {
	bindDir := t.TempDir()
	cases := hostileCases(bindDir)
	for _, level := range []string{"baseline", "restricted", "privileged"} {
		t.Run(level, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			for _, c := range cases {
				compose := fmt.Sprintf("services:\n  app:\n    image: %s\n    environment:\n      PORT: \"${PORT}\"\n    %s\n"+
					"networks:\n  hostnet:\n    external: true\n    name: host\n", echoImage, c.service)
				makeEchoRecipe(t, h, "hostile-"+c.name, "PORT=8080\n", compose, nil)
			}
			h.startWith(nil, "--policy", level)
			apps := make([]*testApp, len(cases))
			gens := make([]string, len(cases))
			for i, c := range cases {
				apps[i] = h.newApp("pol-" + c.name)
				gens[i] = h.writeSpec(apps[i].name, apps[i].specOf("hostile-"+c.name, miniRelease, "minReady: 1s"))
			}
			var wg sync.WaitGroup
			for i, c := range cases {
				wg.Add(1)
				go func() {
					defer wg.Done()
					a := apps[i]
					denied := level == "restricted" || level == "baseline" && !c.onlyRestricted
					phase := "Ready"
					if denied {
						phase = "Invalid"
					}
					// Not waitPhase: it fails the test with FailNow, which only the test's own
					// goroutine may call.
					s, err := h.awaitStatus(a.name, phase, func(s appStatus) (bool, string) {
						if s.ObservedGeneration != gens[i] {
							return false, ""
						}
						if s.Phase == phase {
							return true, ""
						}
						if strings.Contains(strings.Join(finalPhases, " "), s.Phase) {
							return false, "reached " + s.Phase
						}
						return false, ""
					})
					if err != nil {
						t.Errorf("%s under %s: %v", c.name, level, err)
						return
					}
					if !denied {
						return
					}
					want := fmt.Sprintf("the %s policy denies: service app: %s:", level, c.field)
					if !strings.Contains(s.Message, want) || !strings.Contains(s.Message, "to allow it: --") {
						t.Errorf("%s under %s: message %q does not name the field (%q) and the flag", c.name, level, s.Message, want)
					}
					if left := h.residue(a.name); len(left) > 0 {
						t.Errorf("%s under %s: Invalid, yet created %v", c.name, level, left)
					}
				}()
			}
			wg.Wait()
		})
	}
}

// TestStatusStoreFaults: a status file overwritten with garbage while the reconciler runs is
// replaced by a correct one; with the status directory read-only, deploys go on and the log
// says, for the app, that its status cannot be written and why; once writable, the status
// catches up.
func TestStatusStoreFaults(t *testing.T) {
	h := startHarness(t)
	a := h.newApp("e2e-garbage")
	version := h.recipe.first().Version
	gen := h.writeSpec(a.name, a.spec(version, "minReady: 1s"))
	h.waitPhase(a.name, gen, "Ready")
	if err := os.WriteFile(h.statusPath(a.name), []byte("\x00garbage{"), 0o644); err != nil {
		t.Fatal(err)
	}
	s := h.waitPhase(a.name, gen, "Ready") // readStatus fails on garbage until it is replaced
	t.Logf("replaced: %s %s", s.Phase, s.Message)

	// The status directory turns read-only (a bind mount of itself, remounted ro).
	for _, args := range [][]string{{"mount", "--bind", h.status, h.status}, {"mount", "-o", "remount,bind,ro", h.status}} {
		if out, err := asRoot(context.Background(), args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
	}
	mounted := true
	unmount := func() {
		if mounted {
			if out, err := asRoot(context.Background(), "umount", h.status).CombinedOutput(); err != nil {
				t.Errorf("umount %s: %v\n%s", h.status, err, out)
			}
			mounted = false
		}
	}
	t.Cleanup(unmount)
	b := h.newApp("e2e-rostatus")
	offset := h.recLogSize()
	bgen := h.writeSpec(b.name, b.spec(version, "minReady: 1s"))
	if err := poll(context.Background(), phaseDeadline, func() (bool, error) {
		ok, _, err := runningTask(context.Background(), suite.docker, b.stack()+"_app")
		return ok, err
	}); err != nil {
		t.Fatalf("no deploy while the status directory is read-only: %v", err)
	}
	if err := poll(context.Background(), time.Minute, func() (bool, error) {
		return slices.ContainsFunc(h.recLogSince(offset), func(l string) bool {
			return strings.Contains(l, b.name) && strings.Contains(l, "is read-only for this process")
		}), nil
	}); err != nil {
		t.Fatalf("the log never said the status of %s cannot be written because the directory is read-only: %v", b.name, err)
	}
	unmount()
	h.waitPhase(b.name, bgen, "Ready")
}
