package manifests

import (
	"fmt"
	"path"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/swarm"
)

// A deploy policy says what a recipe's services may ask of the host, in the spirit of
// Kubernetes' Pod Security Standards (privileged, baseline, restricted) enforced at admission:
// it is checked on the converted service specs, what swarm would run, before anything is
// created. CI deploys compose files written by anyone; a service that mounts the Docker socket
// or joins the host network owns the CI host.

// Level is a policy's strictness.
type Level string

const (
	// Privileged allows everything: for operators who trust their recipes.
	Privileged Level = "privileged"
	// Baseline denies what takes over the host: the Docker socket and system paths mounted,
	// capabilities beyond Docker's default set, devices, the host network, unsafe sysctls,
	// host ports outside the allowed ones.
	Baseline Level = "baseline"
	// Restricted adds: no bind mount at all, no service running as root by its spec.
	Restricted Level = "restricted"
)

// Policy is a level and its allowances (--allow-bind, --allow-ports).
type Policy struct {
	Level Level
	// AllowBind are host paths under which baseline allows bind mounts (absolute, clean).
	AllowBind []string
	// AllowPorts are the published host ports allowed; empty: 1024 and above.
	AllowPorts []PortRange
}

// PortRange is an inclusive range of ports.
type PortRange struct{ From, To uint32 }

// DefaultPolicy is the policy of a reconciler started without --policy.
var DefaultPolicy = Policy{Level: Baseline}

// ParsePolicy reads --policy, --allow-bind and --allow-ports ("1024-65535,80,443").
func ParsePolicy(level string, allowBind []string, allowPorts string) (Policy, error) {
	p := Policy{Level: Level(level)}
	switch p.Level {
	case Privileged, Baseline, Restricted:
	default:
		return Policy{}, fmt.Errorf("--policy %q: use privileged, baseline or restricted", level)
	}
	for _, b := range allowBind {
		if !path.IsAbs(b) {
			return Policy{}, fmt.Errorf("--allow-bind %q: give an absolute host path", b)
		}
		p.AllowBind = append(p.AllowBind, path.Clean(b))
	}
	for _, part := range strings.Split(allowPorts, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		lo, hi, isRange := strings.Cut(part, "-")
		from, err1 := strconv.ParseUint(lo, 10, 16)
		to := from
		var err2 error
		if isRange {
			to, err2 = strconv.ParseUint(hi, 10, 16)
		}
		if err1 != nil || err2 != nil || from == 0 || to < from {
			return Policy{}, fmt.Errorf("--allow-ports %q: use ports and ranges such as 80,443,1024-65535", allowPorts)
		}
		p.AllowPorts = append(p.AllowPorts, PortRange{uint32(from), uint32(to)})
	}
	return p, nil
}

// Violation is one thing a service asks for that the policy denies, or, for a warning, that
// the policy advises against.
type Violation struct {
	Service string // the recipe's name of the service
	Field   string // the compose field, e.g. "volumes", "cap_add", "ports"
	Value   string
	Rule    string // what the level denies, in words
	Allow   string // how to allow it
	Warning bool
}

func (v Violation) String() string {
	s := fmt.Sprintf("service %s: %s: %s: %s", v.Service, v.Field, v.Value, v.Rule)
	if v.Allow != "" {
		s += " (to allow it: " + v.Allow + ")"
	}
	return s
}

// PolicyError is a rendered app that its policy denies: Invalid, nothing created.
type PolicyError struct {
	Level      Level
	Violations []Violation
}

func (e *PolicyError) Error() string {
	parts := make([]string, len(e.Violations))
	for i, v := range e.Violations {
		parts[i] = v.String()
	}
	return fmt.Sprintf("the %s policy denies: %s", e.Level, strings.Join(parts, "; "))
}

// dockerDefaultCaps is the capability set Docker gives a container (moby's
// oci/caps.DefaultCapabilities); cap_add within it changes nothing.
var dockerDefaultCaps = []string{
	"CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "MKNOD", "NET_RAW", "SETGID", "SETUID",
	"SETFCAP", "SETPCAP", "NET_BIND_SERVICE", "SYS_CHROOT", "KILL", "AUDIT_WRITE",
}

// safeSysctls are the namespaced sysctls that cannot reach beyond the container (Kubernetes'
// safe set).
var safeSysctls = []string{
	"kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.tcp_syncookies",
	"net.ipv4.ping_group_range", "net.ipv4.ip_unprivileged_port_start",
}

// systemPaths may not be bind-mounted under baseline, whatever --allow-bind says.
var systemPaths = []string{"/", "/etc", "/proc", "/sys", "/dev", "/var/lib/docker"}

// CheckPolicy checks the converted service specs (Services' result) and the compose fields
// swarm ignores but a person reading the recipe would expect to take effect (devices). It
// returns the denials and, separately, the warnings, sorted by service and field.
func (r *Rendered) CheckPolicy(p Policy, services map[string]swarm.ServiceSpec) (denied, warnings []Violation) {
	if p.Level == Privileged || p.Level == "" {
		return nil, nil
	}
	allow := "--policy privileged"
	add := func(v Violation) {
		if v.Allow == "" {
			v.Allow = allow
		}
		if v.Warning {
			warnings = append(warnings, v)
		} else {
			denied = append(denied, v)
		}
	}
	for full, spec := range services {
		svc := strings.TrimPrefix(full, r.Stack+"_")
		cs := spec.TaskTemplate.ContainerSpec
		if cs == nil {
			continue
		}
		for _, m := range cs.Mounts {
			src := m.Source
			switch {
			case m.Type == mount.TypeBind:
			case m.Type == mount.TypeVolume && m.VolumeOptions != nil && m.VolumeOptions.DriverConfig != nil && localBind(m.VolumeOptions.DriverConfig):
				// A named volume of the local driver with o=bind is a bind mount of its device.
				src = m.VolumeOptions.DriverConfig.Options["device"]
				if !path.IsAbs(src) {
					src = "/" + src // mount(2) takes it against dockerd's working directory, /
				}
			case m.Type == mount.TypeVolume && m.VolumeOptions != nil && m.VolumeOptions.DriverConfig != nil && localHostMount(m.VolumeOptions.DriverConfig):
				// dockerd mounts the device on the host: a disk of the host (type: ext4,
				// device: /dev/sda1), or its folders stacked (type: overlay, o: lowerdir=/etc).
				d := m.VolumeOptions.DriverConfig.Options
				add(Violation{Service: svc, Field: "volumes", Value: m.Source + ":" + m.Target + " (driver_opts type=" + d["type"] + " device=" + d["device"] + ")",
					Rule: "a local volume that mounts a device or file system of the host: baseline denies it (tmpfs, nfs and cifs volumes are allowed)"})
				continue
			default:
				continue
			}
			src = path.Clean(src)
			switch {
			case strings.HasSuffix(src, "docker.sock") || strings.HasSuffix(src, "containerd.sock") ||
				slices.ContainsFunc(engineSockets, func(sock string) bool { return under(sock, src) }):
				// The socket, or a folder that holds it (/run, /var/run, /run/containerd).
				add(Violation{Service: svc, Field: "volumes", Value: m.Source + ":" + m.Target, Rule: "the Docker socket controls the host: baseline denies it"})
			case slices.ContainsFunc(systemPaths, func(sys string) bool { return src == sys || sys != "/" && (under(src, sys) || under(sys, src)) }):
				// A system path, a path inside one, or a folder that holds one (/var holds /var/lib/docker).
				add(Violation{Service: svc, Field: "volumes", Value: m.Source + ":" + m.Target, Rule: "a system path of the host: baseline denies bind mounts of /, /etc, /proc, /sys, /dev and /var/lib/docker"})
			case p.Level == Restricted:
				add(Violation{Service: svc, Field: "volumes", Value: m.Source + ":" + m.Target, Rule: "restricted denies every bind mount", Allow: "--policy baseline --allow-bind " + src})
			case !slices.ContainsFunc(p.AllowBind, func(a string) bool { return under(src, a) }):
				add(Violation{Service: svc, Field: "volumes", Value: m.Source + ":" + m.Target, Rule: "baseline allows bind mounts only under --allow-bind paths", Allow: "--allow-bind " + src})
			}
		}
		for _, c := range cs.CapabilityAdd {
			name := strings.TrimPrefix(strings.ToUpper(c), "CAP_")
			if name == "ALL" || !slices.Contains(dockerDefaultCaps, name) {
				add(Violation{Service: svc, Field: "cap_add", Value: c, Rule: "baseline allows no capability beyond Docker's default set"})
			}
		}
		for _, k := range sortedKeysOf(cs.Sysctls) {
			if !slices.Contains(safeSysctls, k) {
				add(Violation{Service: svc, Field: "sysctls", Value: k + "=" + cs.Sysctls[k], Rule: "baseline allows only the namespaced safe sysctls (" + strings.Join(safeSysctls, ", ") + ")"})
			}
		}
		for _, n := range spec.TaskTemplate.Networks {
			if n.Target == "host" {
				add(Violation{Service: svc, Field: "networks", Value: "host", Rule: "the host network shares the host's interfaces and ports: baseline denies it"})
			}
		}
		if ep := spec.EndpointSpec; ep != nil {
			for _, port := range ep.Ports {
				if port.PublishedPort != 0 && !p.portAllowed(port.PublishedPort) {
					add(Violation{Service: svc, Field: "ports", Value: fmt.Sprintf("%d:%d/%s", port.PublishedPort, port.TargetPort, port.Protocol),
						Rule: "host port outside --allow-ports (default 1024 and above)", Allow: fmt.Sprintf("--allow-ports %d", port.PublishedPort)})
				}
			}
		}
		if p.Level == Restricted {
			switch u := strings.TrimSpace(cs.User); {
			case u == "":
				add(Violation{Service: svc, Field: "user", Value: "(unset)", Rule: "the image's user is used, which may be root: set user in the recipe", Warning: true})
			case rootUser(u):
				add(Violation{Service: svc, Field: "user", Value: u, Rule: "restricted denies services running as root", Allow: "--policy baseline"})
			}
			if !cs.ReadOnly {
				add(Violation{Service: svc, Field: "read_only", Value: "false", Rule: "a writable root filesystem: restricted advises read_only: true", Warning: true})
			}
		}
	}
	if r.config != nil {
		for _, s := range r.config.Services {
			for _, d := range s.Devices {
				add(Violation{Service: s.Name, Field: "devices", Value: d, Rule: "host devices: baseline denies them (swarm ignores the field today, but a recipe that asks for one expects it)"})
			}
			if s.Privileged {
				add(Violation{Service: s.Name, Field: "privileged", Value: "true", Rule: "a privileged container owns the host: baseline denies it (swarm ignores the field today)"})
			}
			if s.NetworkMode == "host" {
				add(Violation{Service: s.Name, Field: "network_mode", Value: "host", Rule: "the host network: baseline denies it (swarm ignores the field today)"})
			}
		}
	}
	for _, list := range [][]Violation{denied, warnings} {
		sort.SliceStable(list, func(i, j int) bool {
			if list[i].Service != list[j].Service {
				return list[i].Service < list[j].Service
			}
			return list[i].Field < list[j].Field
		})
	}
	return denied, warnings
}

// localBind reports whether a volume's driver options make it a bind mount of a host path
// (the local driver with `o: bind`, as `driver_opts: {type: none, o: bind, device: /path}`).
func localBind(d *mount.Driver) bool {
	if d.Name != "" && d.Name != "local" {
		return false
	}
	for _, o := range strings.Split(d.Options["o"], ",") {
		if o = strings.TrimSpace(o); o == "bind" || o == "rbind" {
			return true
		}
	}
	return false
}

// engineSockets are where the engine's sockets live on a host: a bind of any of them, or of a
// folder above one, hands the container the engine.
var engineSockets = []string{
	"/run/docker.sock", "/var/run/docker.sock", "/run/docker", "/var/run/docker",
	"/run/containerd", "/var/run/containerd",
}

// localHostMount reports whether a volume's driver options make the local driver mount a
// device or file system of the host (anything but a bind, which localBind judges, tmpfs and
// the network file systems).
func localHostMount(d *mount.Driver) bool {
	if d.Name != "" && d.Name != "local" {
		return false
	}
	t := strings.ToLower(strings.TrimSpace(d.Options["type"]))
	if t == "" && d.Options["device"] == "" {
		return false // a plain volume under /var/lib/docker/volumes
	}
	switch t {
	case "tmpfs", "nfs", "nfs4", "cifs", "smb3":
		return false
	}
	return true
}

// rootUser reports whether a service's user is root: "root" or uid 0 however spelt, with or
// without a group.
func rootUser(u string) bool {
	name, _, _ := strings.Cut(strings.TrimSpace(u), ":")
	if name == "root" {
		return true
	}
	// As the engine reads it (moby/sys/user.GetExecUser: strconv.Atoi), so "+0" and "-0" are 0.
	n, err := strconv.Atoi(name)
	return err == nil && n == 0
}

func (p Policy) portAllowed(port uint32) bool {
	if len(p.AllowPorts) == 0 {
		return port >= 1024
	}
	return slices.ContainsFunc(p.AllowPorts, func(r PortRange) bool { return port >= r.From && port <= r.To })
}

// under reports whether p is dir or inside it (both clean, absolute).
func under(p, dir string) bool {
	return p == dir || dir == "/" || strings.HasPrefix(p, dir+"/")
}

func sortedKeysOf(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
