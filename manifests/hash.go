package manifests

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"maps"

	"github.com/docker/docker/api/types/swarm"
)

// SpecHash is the hash stored in LabelSpecHash: sha256 (hex) over the JSON of the service spec
// with LabelSpecHash removed and secret/config IDs blanked. IDs change whenever a secret or
// config is recreated under the same name (a teardown and reinstall, an engine placeholder in
// `render`), which is no change of the desired spec. s is not modified.
func SpecHash(s swarm.ServiceSpec) string {
	if _, ok := s.Annotations.Labels[LabelSpecHash]; ok {
		s.Annotations.Labels = maps.Clone(s.Annotations.Labels)
		delete(s.Annotations.Labels, LabelSpecHash)
	}
	if cs := s.TaskTemplate.ContainerSpec; cs != nil {
		c := *cs
		c.Secrets = make([]*swarm.SecretReference, len(cs.Secrets))
		for i, ref := range cs.Secrets {
			if ref != nil {
				r := *ref
				r.SecretID = ""
				ref = &r
			}
			c.Secrets[i] = ref
		}
		c.Configs = make([]*swarm.ConfigReference, len(cs.Configs))
		for i, ref := range cs.Configs {
			if ref != nil {
				r := *ref
				r.ConfigID = ""
				ref = &r
			}
			c.Configs[i] = ref
		}
		s.TaskTemplate.ContainerSpec = &c
	}
	// encoding/json writes map keys sorted, so equal specs give equal bytes. A ServiceSpec
	// always marshals: it is the Engine API's own wire type.
	b, err := json.Marshal(s)
	if err != nil {
		panic("manifests: marshal service spec: " + err.Error())
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
