package controller

import (
	"os"
	"testing"

	"github.com/swarm-reconciler/reconciler/manifests"
)

func TestMain(m *testing.M) {
	code := m.Run()
	manifests.Cleanup() // the exported recipe trees the tests rendered from
	os.Exit(code)
}
