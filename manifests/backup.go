package manifests

import (
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"

	composetypes "github.com/docker/cli/cli/compose/types"
)

// The label contract of backup-bot-two, which Co-op Cloud recipes use to declare their backups.
// The labels are a service's deploy labels, read after env interpolation.
const (
	labelBackup        = "backupbot.backup"
	labelBackupVolumes = "backupbot.backup.volumes."
	labelPreHook       = "backupbot.backup.pre-hook"
	labelPostHook      = "backupbot.backup.post-hook"
	labelRestorePre    = "backupbot.restore.pre-hook"
	labelRestorePost   = "backupbot.restore.post-hook"
)

// BackupPlan is what a backup of an app reads and runs, as its recipe's labels say.
type BackupPlan struct {
	// Services are those with backupbot.backup true, by name.
	Services []BackupService `json:"services"`
}

// Enabled reports whether the recipe asks for a backup at all.
func (p *BackupPlan) Enabled() bool { return p != nil && len(p.Services) > 0 }

// BackupService is one service with backup enabled: the volumes it mounts that are backed up,
// and the hooks run in its container (`/bin/sh -c`, with its environment).
type BackupService struct {
	// Name is the service's name in the recipe, e.g. "db".
	Name        string         `json:"name"`
	Volumes     []BackupVolume `json:"volumes"`
	PreHook     string         `json:"preHook,omitempty"`
	PostHook    string         `json:"postHook,omitempty"`
	RestorePre  string         `json:"restorePreHook,omitempty"`
	RestorePost string         `json:"restorePostHook,omitempty"`
}

// BackupVolume is a volume to back up, read through the mount of the service's container.
type BackupVolume struct {
	// Name is the volume's key in the recipe, e.g. "db-data"; Full its name in the swarm.
	Name string `json:"name"`
	Full string `json:"full"`
	// Target is where the service mounts it.
	Target string `json:"target"`
	// Paths limit it to these paths, relative to the volume's root; none: the whole volume.
	Paths []string `json:"paths,omitempty"`
	// Skip are the paths, relative to the volume's root, where the service mounts something
	// else (another volume, a bind, a tmpfs): what is there is not this volume's, and is
	// neither read nor written back through this one. (backup-bot-two reads each volume at
	// its own mountpoint, where nothing else shows.)
	Skip []string `json:"skip,omitempty"`
}

// BackupPlan reads the backup plan from the services' labels. A volume mounted by several
// services with backup enabled is read through the first of them by name. A label that cannot
// mean anything (backupbot.backup not a boolean, a path that leaves the volume, a volume label
// for a volume the service does not mount) is an input error naming it.
func (r *Rendered) BackupPlan() (*BackupPlan, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	p := &BackupPlan{}
	taken := map[string]bool{}
	names := make([]int, len(r.config.Services))
	for i := range names {
		names[i] = i
	}
	slices.SortFunc(names, func(a, b int) int { return strings.Compare(r.config.Services[a].Name, r.config.Services[b].Name) })
	// A restore writes through the planned mount, which the engine refuses when it is read-only:
	// a volume that some backed-up service mounts writable is planned through that mount.
	writable := map[string]bool{}
	for _, i := range names {
		svc := r.config.Services[i]
		if on, err := strconv.ParseBool(strings.TrimSpace(svc.Deploy.Labels[labelBackup])); err != nil || !on {
			continue
		}
		for _, m := range svc.Volumes {
			if m.Type == "volume" && m.Source != "" && !m.ReadOnly && backupOn(svc.Deploy.Labels, m.Source) {
				writable[m.Source] = true
			}
		}
	}
	for _, i := range names {
		svc := r.config.Services[i]
		labels := svc.Deploy.Labels
		v, ok := labels[labelBackup]
		if !ok {
			continue
		}
		on, err := strconv.ParseBool(strings.TrimSpace(v))
		if err != nil {
			return nil, fmt.Errorf("%w: service %s: label %s=%q is not true or false", ErrInput, svc.Name, labelBackup, v)
		}
		if !on {
			continue
		}
		bs := BackupService{Name: svc.Name, PreHook: labels[labelPreHook], PostHook: labels[labelPostHook],
			RestorePre: labels[labelRestorePre], RestorePost: labels[labelRestorePost]}
		mounted := map[string]bool{}
		for _, m := range svc.Volumes {
			if m.Type != "volume" || m.Source == "" {
				continue // binds and tmpfs are not the app's data in the swarm
			}
			mounted[m.Source] = true
			if v, ok := r.config.Volumes[m.Source]; ok && v.External.External {
				// Declared external: made by someone else (another stack, by hand), carrying no
				// ownership labels of ours. A backup does not read it, nor a restore write into it.
				continue
			}
			if off, set := labels[labelBackupVolumes+m.Source]; set {
				if b, err := strconv.ParseBool(strings.TrimSpace(off)); err != nil {
					return nil, fmt.Errorf("%w: service %s: label %s%s=%q is not true or false", ErrInput, svc.Name, labelBackupVolumes, m.Source, off)
				} else if !b {
					continue
				}
			}
			if taken[m.Source] || m.ReadOnly && writable[m.Source] {
				continue
			}
			taken[m.Source] = true
			bv := BackupVolume{Name: m.Source, Full: r.volumeName(m.Source), Target: m.Target}
			if raw, set := labels[labelBackupVolumes+m.Source+".path"]; set {
				if bv.Paths, err = backupPaths(raw); err != nil {
					return nil, fmt.Errorf("%w: service %s: label %s%s.path: %v", ErrInput, svc.Name, labelBackupVolumes, m.Source, err)
				}
			}
			bv.Skip = nestedMounts(svc.Volumes, m.Target)
			bs.Volumes = append(bs.Volumes, bv)
		}
		for key := range labels {
			vol, ok := strings.CutPrefix(key, labelBackupVolumes)
			if !ok {
				continue
			}
			vol = strings.TrimSuffix(vol, ".path")
			if !mounted[vol] {
				return nil, fmt.Errorf("%w: service %s: label %s names volume %q, which the service does not mount", ErrInput, svc.Name, key, vol)
			}
		}
		p.Services = append(p.Services, bs)
	}
	return p, nil
}

// backupOn reports whether a service with backups on backs volume up: unless its volume label
// says false.
func backupOn(labels composetypes.Labels, volume string) bool {
	v, set := labels[labelBackupVolumes+volume]
	if !set {
		return true
	}
	b, err := strconv.ParseBool(strings.TrimSpace(v))
	return err != nil || b
}

// nestedMounts are the targets of mounts below target, relative to it, in name order.
func nestedMounts(mounts []composetypes.ServiceVolumeConfig, target string) []string {
	var out []string
	for _, m := range mounts {
		if rel, ok := strings.CutPrefix(path.Clean(m.Target), strings.TrimSuffix(path.Clean(target), "/")+"/"); ok && rel != "" {
			out = append(out, rel)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// volumeName is the swarm name of the recipe's volume key: its explicit name, else the stack's.
func (r *Rendered) volumeName(key string) string {
	if v, ok := r.config.Volumes[key]; ok && v.Name != "" {
		return v.Name
	}
	return r.namespace + "_" + key
}

// backupPaths reads a comma-separated list of paths relative to a volume's root.
func backupPaths(raw string) ([]string, error) {
	var out []string
	for _, p := range strings.Split(raw, ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		clean := path.Clean(p)
		if path.IsAbs(p) || clean == ".." || strings.HasPrefix(clean, "../") {
			return nil, fmt.Errorf("%q is not a path inside the volume", p)
		}
		out = append(out, clean)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%q names no path", raw)
	}
	return out, nil
}
