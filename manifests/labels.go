package manifests

import (
	"maps"
	"strconv"

	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/swarm"
)

// appService is the service abra stamps its recipe labels on and exposes the app env to.
const appService = "app"

// ownLabels returns labels (copied, never modified) plus the ownership labels every object we
// create carries.
func (r *Rendered) ownLabels(labels map[string]string) map[string]string {
	out := make(map[string]string, len(labels)+3)
	maps.Copy(out, labels)
	out[LabelApp] = r.App
	if r.Domain != "" {
		out[LabelDomain] = r.Domain
	}
	if r.Owner != "" {
		out[LabelOwner] = r.Owner
	}
	out[LabelNamespace] = r.Stack
	return out
}

// abraLabels are the labels `abra app deploy` sets on the app service, so abra and the
// Co-op Cloud tooling (abra app ls, backupbot, ...) recognise what runs.
func (r *Rendered) abraLabels() map[string]string {
	chaosVersion := "false"
	if r.Chaos {
		chaosVersion = shortHash(r.Commit)
	}
	p := "coop-cloud." + r.Stack + "."
	return map[string]string{
		p + "recipe":        r.Recipe,
		p + "version":       r.Version,
		p + "chaos":         strconv.FormatBool(r.Chaos),
		p + "chaos-version": chaosVersion,
	}
}

// stampService sets our labels on a converted service: ownership on the service and on the
// stack's named volumes (so swarm creates the volumes carrying them), abra's labels on the app
// service, and the spec hash last, over everything else. Only service labels (Annotations) are
// touched, never the task template's container labels: a change there restarts every task.
// Maps shared with the loaded compose config are copied, never written.
func (r *Rendered) stampService(short string, spec *swarm.ServiceSpec) {
	labels := r.ownLabels(spec.Annotations.Labels)
	if short == appService {
		maps.Copy(labels, r.abraLabels())
	}
	delete(labels, LabelSpecHash)
	spec.Annotations.Labels = labels

	if cs := spec.TaskTemplate.ContainerSpec; cs != nil {
		// The container labels stay as docker stack deploy makes them; only the map is copied.
		cs.Labels = maps.Clone(cs.Labels)
	}
	if cs := spec.TaskTemplate.ContainerSpec; cs != nil && len(cs.Mounts) > 0 {
		mounts := make([]mount.Mount, len(cs.Mounts))
		copy(mounts, cs.Mounts)
		for i, m := range mounts {
			// convert.Volumes sets VolumeOptions.Labels only for the stack's own named volumes;
			// external and anonymous volumes are not ours to label.
			if m.Type != mount.TypeVolume || m.VolumeOptions == nil || m.VolumeOptions.Labels == nil {
				continue
			}
			vo := *m.VolumeOptions
			vo.Labels = r.ownLabels(vo.Labels)
			mounts[i].VolumeOptions = &vo
		}
		cs.Mounts = mounts
	}

	spec.Annotations.Labels[LabelSpecHash] = SpecHash(*spec)
}
