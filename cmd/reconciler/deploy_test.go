package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/docker/cli/cli/compose/loader"
	composetypes "github.com/docker/cli/cli/compose/types"
)

// TestDeployComposeFiles: deploy/compose.yml and deploy/compose.ha.yml load as `docker stack
// deploy` loads them, every RECONCILER_* variable they set is a flag of `reconciler run`, and
// the HA form is one replica per manager with leader election on.
func TestDeployComposeFiles(t *testing.T) {
	run := runCmd(&options{})
	root := newRoot(&options{})
	for _, file := range []string{"compose.yml", "compose.ha.yml"} {
		path := filepath.Join("..", "..", "deploy", file)
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		dict, err := loader.ParseYAML(raw)
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		cfg, err := loader.Load(composetypes.ConfigDetails{
			WorkingDir:  filepath.Dir(path),
			ConfigFiles: []composetypes.ConfigFile{{Filename: path, Config: dict}},
			Environment: map[string]string{"RECONCILER_OWNER": "prod", "RECONCILER_SHARE": "/mnt/reconciler"},
		})
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		svc := cfg.Services[0]
		for name := range svc.Environment {
			flag, ok := strings.CutPrefix(name, "RECONCILER_")
			if !ok {
				continue
			}
			flag = strings.ReplaceAll(strings.ToLower(flag), "_", "-")
			if run.Flags().Lookup(flag) == nil && root.PersistentFlags().Lookup(flag) == nil {
				t.Errorf("%s sets %s, and `reconciler run` has no --%s", file, name, flag)
			}
		}
		if file == "compose.ha.yml" {
			if svc.Deploy.Mode != "global" || svc.Environment["RECONCILER_LEADER_ELECT"] == nil || *svc.Environment["RECONCILER_LEADER_ELECT"] != "true" ||
				*svc.Environment["RECONCILER_SPECS"] != "/mnt/reconciler/specs" || *svc.Environment["RECONCILER_OWNER"] != "prod" {
				t.Errorf("%s: mode %q, env %v", file, svc.Deploy.Mode, svc.Environment)
			}
		}
	}
}
