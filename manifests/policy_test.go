package manifests

import (
	"context"
	"strings"
	"testing"

	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/swarm"
)

// hostileServices are compose service bodies that take over, or reach into, the host; the
// e2e suite deploys the same set (e2e/policy_test.go).
var hostileServices = []struct {
	name, body, field string
	onlyRestricted    bool
}{
	{"docker socket", "volumes: [\"/var/run/docker.sock:/var/run/docker.sock\"]", "volumes", false},
	{"host root", "volumes: [\"/:/host\"]", "volumes", false},
	{"host etc", "volumes: [\"/etc:/host-etc:ro\"]", "volumes", false},
	{"any bind outside --allow-bind", "volumes: [\"/srv/data:/data\"]", "volumes", false},
	{"cap_add SYS_ADMIN", "cap_add: [SYS_ADMIN]", "cap_add", false},
	{"cap_add ALL", "cap_add: [ALL]", "cap_add", false},
	{"device", "devices: [\"/dev/fuse:/dev/fuse\"]", "devices", false},
	{"privileged", "privileged: true", "privileged", false},
	{"host network", "networks: [hostnet]", "networks", false},
	{"port 22", "ports: [{target: 22, published: 22, mode: host}]", "ports", false},
	{"unsafe sysctl", "sysctls: {net.core.somaxconn: \"1024\"}", "sysctls", false},
	{"root user", "user: root", "user", true},
	{"uid 0", "user: \"0:0\"", "user", true},
}

// renderService renders a one-service recipe whose service "app" has body (compose YAML at the
// service's indentation), with a network "hostnet" (the host's) and a volume "data" declared.
func renderService(t testing.TB, body string) *Rendered {
	t.Helper()
	recipesDir := t.TempDir()
	repo := newTestRepo(t, recipesDir, "hostile")
	compose := "version: \"3.8\"\nservices:\n  app:\n    image: nginx:1.0\n    " + strings.ReplaceAll(body, "\n", "\n    ") +
		"\nnetworks:\n  hostnet:\n    external: true\n    name: host\nvolumes:\n  data:\n"
	h := repo.commit(map[string]string{"compose.yml": compose, ".env.sample": "TYPE=hostile\n"})
	repo.tag("1.0.0+1", h, true)
	r, err := Render(context.Background(), recipesDir, Request{App: "h", Recipe: "hostile", Version: "1.0.0+1", Domain: "h.example", Stack: "h_example"})
	if err != nil {
		t.Fatalf("render %q: %v", body, err)
	}
	return r
}

func TestPolicyDeniesHostileServices(t *testing.T) {
	for _, tc := range hostileServices {
		t.Run(tc.name, func(t *testing.T) {
			r := renderService(t, tc.body)
			services, err := r.Services(context.Background(), PlaceholderResolver())
			if err != nil {
				t.Fatal(err)
			}
			for _, level := range []Level{Privileged, Baseline, Restricted} {
				denied, _ := r.CheckPolicy(Policy{Level: level}, services)
				want := level == Restricted || level == Baseline && !tc.onlyRestricted
				if got := len(denied) > 0; got != want {
					t.Errorf("%s: denied %v, want denial %v", level, denied, want)
					continue
				}
				if want && (denied[0].Service != "app" || denied[0].Field != tc.field || denied[0].Allow == "") {
					t.Errorf("%s: %+v does not name service app, field %s and how to allow it", level, denied[0], tc.field)
				}
			}
		})
	}
}

func TestPolicyAllowances(t *testing.T) {
	tests := []struct {
		body, bind, ports string
		level             Level
		denied            bool
	}{
		{"volumes: [\"/srv/data:/data\"]", "/srv", "", Baseline, false},
		{"volumes: [\"/srv/data:/data\"]", "/srv/data", "", Baseline, false},
		{"volumes: [\"/srv/database:/data\"]", "/srv/data", "", Baseline, true},
		{"volumes: [\"/srv/data:/data\"]", "/srv", "", Restricted, true},
		{"volumes: [\"/var/run/docker.sock:/s\"]", "/var/run", "", Baseline, true},
		{"volumes: [\"/etc/ssl:/ssl\"]", "/etc", "", Baseline, true},
		{"volumes: [\"data:/data\"]\nuser: \"1000\"", "", "", Restricted, false},
		{"ports: [{target: 80, published: 80, mode: host}]", "", "80,443", Baseline, false},
		{"ports: [{target: 80, published: 8080, mode: host}]", "", "80,443", Baseline, true},
		{"ports: [{target: 80, published: 8080, mode: host}]", "", "", Baseline, false},
		{"cap_add: [NET_BIND_SERVICE, CAP_CHOWN]", "", "", Baseline, false},
		{"sysctls: {net.ipv4.ip_unprivileged_port_start: \"0\"}", "", "", Baseline, false},
		{"user: \"1000\"\nread_only: true", "", "", Restricted, false},
		{"user: \"00\"", "", "", Restricted, true},
		{"user: \"root:1000\"", "", "", Restricted, true},
	}
	for _, tc := range tests {
		r := renderService(t, tc.body)
		services, err := r.Services(context.Background(), PlaceholderResolver())
		if err != nil {
			t.Fatal(err)
		}
		var bind []string
		if tc.bind != "" {
			bind = []string{tc.bind}
		}
		p, err := ParsePolicy(string(tc.level), bind, tc.ports)
		if err != nil {
			t.Fatal(err)
		}
		denied, _ := r.CheckPolicy(p, services)
		if (len(denied) > 0) != tc.denied {
			t.Errorf("%s with --allow-bind %q --allow-ports %q under %s: denied %v, want %v", tc.body, tc.bind, tc.ports, tc.level, denied, tc.denied)
		}
	}
}

func TestParsePolicy(t *testing.T) {
	for _, bad := range []struct{ level, bind, ports string }{
		{"lax", "", ""}, {"baseline", "relative/path", ""}, {"baseline", "", "0"}, {"baseline", "", "90-80"}, {"baseline", "", "http"}, {"baseline", "", "70000"},
	} {
		var bind []string
		if bad.bind != "" {
			bind = []string{bad.bind}
		}
		if _, err := ParsePolicy(bad.level, bind, bad.ports); err == nil {
			t.Errorf("ParsePolicy(%q, %q, %q) accepted", bad.level, bad.bind, bad.ports)
		}
	}
	p, err := ParsePolicy("restricted", []string{"/srv/x/"}, "80, 1024-2048")
	if err != nil || p.AllowBind[0] != "/srv/x" || len(p.AllowPorts) != 2 || !p.portAllowed(1500) || p.portAllowed(3000) {
		t.Errorf("ParsePolicy: %+v %v", p, err)
	}
}

// FuzzCheckPolicy: whatever a service asks for and whatever the allowances say, the checker
// does not panic, privileged denies nothing, and restricted denies at least what baseline does.
func FuzzCheckPolicy(f *testing.F) {
	f.Add("/var/run/docker.sock", "SYS_ADMIN", "net.core.somaxconn", uint32(22), "root", "/srv", "80,1024-65535")
	f.Add("/srv/data", "CAP_CHOWN", "kernel.shm_rmid_forced", uint32(8080), "1000", "", "")
	f.Add("relative/../..", "", "", uint32(0), "0:0", "/", "1-2")
	f.Fuzz(func(t *testing.T, source, capability, sysctl string, port uint32, user, allowBind, allowPorts string) {
		spec := swarm.ServiceSpec{
			TaskTemplate: swarm.TaskSpec{
				ContainerSpec: &swarm.ContainerSpec{
					User:          user,
					Mounts:        []mount.Mount{{Type: mount.TypeBind, Source: source, Target: "/t"}},
					CapabilityAdd: []string{capability},
					Sysctls:       map[string]string{sysctl: "1"},
				},
				Networks: []swarm.NetworkAttachmentConfig{{Target: source}},
			},
			EndpointSpec: &swarm.EndpointSpec{Ports: []swarm.PortConfig{{PublishedPort: port, TargetPort: 80}}},
		}
		r := &Rendered{Stack: "s"}
		services := map[string]swarm.ServiceSpec{"s_app": spec}
		counts := map[Level]int{}
		for _, level := range []Level{Privileged, Baseline, Restricted} {
			var bind []string
			if allowBind != "" {
				bind = []string{allowBind}
			}
			p, err := ParsePolicy(string(level), bind, allowPorts)
			if err != nil {
				p = Policy{Level: level}
			}
			denied, _ := r.CheckPolicy(p, services)
			for _, v := range denied {
				if v.Service != "app" || v.Field == "" || v.Allow == "" {
					t.Fatalf("%s: violation without service, field or allowance: %+v", level, v)
				}
			}
			counts[level] = len(denied)
		}
		if counts[Privileged] != 0 || counts[Restricted] < counts[Baseline] {
			t.Fatalf("denials: %v", counts)
		}
	})
}
