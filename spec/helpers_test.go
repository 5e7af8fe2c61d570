package spec

import (
	"encoding/json"

	"gopkg.in/yaml.v3"
)

func jsonMarshal(v any) ([]byte, error)   { return json.Marshal(v) }
func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }
func yamlMarshal(v any) ([]byte, error)   { return yaml.Marshal(v) }
func yamlUnmarshal(b []byte, v any) error { return yaml.Unmarshal(b, v) }
