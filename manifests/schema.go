package manifests

import (
	"embed"
	"sync"

	interp "github.com/docker/cli/cli/compose/interpolation"
	"github.com/docker/cli/cli/compose/loader"
	composetypes "github.com/docker/cli/cli/compose/types"
	"github.com/xeipuuv/gojsonschema"
)

// composeSchemas are docker/cli's compose schemas, copied byte for byte (composeschema/README.md;
// TestEmbeddedSchemasMatchDockerCLI keeps them so). docker/cli keeps its own private.
//
//go:embed composeschema/config_schema_v*.json
var composeSchemas embed.FS

// compiledSchemas holds the schemas compiled so far, by compose version. Only versions with a
// schema file are stored, so compose files naming junk versions cannot grow it.
var compiledSchemas sync.Map // string -> *gojsonschema.Schema

// compiledSchema compiles the schema of version exactly as docker's schema.Validate does, once.
// nil means there is none under that exact name ("3" and "" are normalised by docker's loader,
// not here): the caller then leaves validation to docker.
func compiledSchema(version string) *gojsonschema.Schema {
	if s, ok := compiledSchemas.Load(version); ok {
		return s.(*gojsonschema.Schema)
	}
	b, err := composeSchemas.ReadFile("composeschema/config_schema_v" + version + ".json")
	if err != nil {
		return nil
	}
	s, err := gojsonschema.NewSchema(gojsonschema.NewStringLoader(string(b)))
	if err != nil {
		return nil
	}
	// A compiled Schema is only read while validating, so it is shared by concurrent renders.
	compiledSchemas.Store(version, s)
	return s
}

// skipValidatedSchema is a loader.Load option. docker's Load validates every compose file,
// after interpolation, against the JSON schema of details.Version, which it compiles anew each
// time: with many apps of a recipe that compile was most of a render's CPU. This option does the
// same interpolation (Load's own options, so the same variables and type casts; interpolation
// does not modify its input) and validates against a once-compiled copy of the same schema, and
// only when every file passes does it tell Load to skip validating. When anything fails, Load
// validates as always, so errors are docker's own, word for word.
func skipValidatedSchema(details composetypes.ConfigDetails) func(*loader.Options) {
	return func(o *loader.Options) {
		if o.SkipValidation || o.SkipInterpolation || o.Interpolate == nil {
			return
		}
		s := compiledSchema(details.Version)
		if s == nil {
			return
		}
		for _, f := range details.ConfigFiles {
			dict, err := interp.Interpolate(f.Config, *o.Interpolate)
			if err != nil {
				return
			}
			res, err := s.Validate(gojsonschema.NewGoLoader(dict))
			if err != nil || !res.Valid() {
				return
			}
		}
		o.SkipValidation = true
	}
}
