package e2e

import (
	"fmt"
	"strings"
	"sync"
	"testing"
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
