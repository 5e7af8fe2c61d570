package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/docker/docker/api/types/swarm"
	"github.com/docker/docker/client"

	"github.com/swarm-reconciler/reconciler/manifests"
)

// suite is what TestMain prepares once per run.
var suite struct {
	docker  *client.Client
	workDir string // removed after the run
	lockDir string
	// binary is the built reconciler; binaryErr says why it could not be built. Tests that
	// need the binary fail with binaryErr (never skip); the fixture tests still run.
	binary    string
	binaryErr error
}

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	docker, why := dockerForE2E()
	if why != "" {
		if os.Getenv("CI") != "" {
			fmt.Fprintf(os.Stderr, "e2e: FAIL: CI is set and %s\n", why)
			return 1
		}
		fmt.Fprintf(os.Stderr, "e2e: skipped: %s (set CI to make this a failure)\n", why)
		return 0
	}
	defer docker.Close()
	suite.docker = docker

	workDir, err := os.MkdirTemp("", "swarm-reconciler-e2e-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
		return 1
	}
	defer os.RemoveAll(workDir)
	suite.workDir = workDir

	suite.lockDir, err = lockDir(workDir)
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: lock dir: %v\n", err)
		return 1
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	start := time.Now()
	if err := buildEchoImage(ctx, docker, workDir); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: FAIL: building the test image: %v\n", err)
		return 1
	}
	fmt.Fprintf(os.Stderr, "e2e: built %s in %s\n", echoImage, time.Since(start).Round(time.Millisecond))

	start = time.Now()
	suite.binary, suite.binaryErr = buildReconciler(ctx, workDir)
	if suite.binaryErr != nil {
		fmt.Fprintf(os.Stderr, "e2e: cannot build the reconciler; every test that runs it fails:\n%v\n", suite.binaryErr)
	} else {
		fmt.Fprintf(os.Stderr, "e2e: built %s in %s (lock dir %s)\n", suite.binary, time.Since(start).Round(time.Millisecond), suite.lockDir)
	}
	if os.Getenv("CI") != "" && suite.binaryErr == nil && suite.lockDir != filepath.Join(workDir, "locks") {
		// A CI machine may keep the swarm of a run that was stopped half-way (its processes end,
		// its services do not). The product's own janitor reaps what such a run left, so the
		// leftovers neither load the two CPUs nor hold ports; it leaves anything whose lock a
		// live reconciler holds, and anything it does not own. Not with this run's private
		// lock directory: there the janitor could not see other reconcilers' locks.
		if err := janitor(ctx, workDir); err != nil {
			fmt.Fprintf(os.Stderr, "e2e: FAIL: reaping what earlier runs left: %v\n", err)
			return 1
		}
	}
	defer manifests.Cleanup() // recipe trees rendered in this process (the conformance test)
	code := m.Run()
	sweepCtx, cancelSweep := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancelSweep()
	late, err := sweepRemovedStacks(sweepCtx)
	if len(late) > 0 {
		// docker stack rm's race, not the reconciler's: its stacks are the tests' own.
		fmt.Fprintf(os.Stderr, "e2e: removed what swarm made of docker stack deploy's stacks after their removal: %v\n", late)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: FAIL: removing what is left of the stacks docker stack deploy made: %v\n", err)
		return 1
	}
	return code
}

// janitor runs `reconciler janitor` once against an empty spec directory.
func janitor(ctx context.Context, workDir string) error {
	dir := filepath.Join(workDir, "janitor")
	start := time.Now()
	cmd := exec.CommandContext(ctx, suite.binary, "janitor", "--log-format", "console",
		"--specs", filepath.Join(dir, "specs"), "--status", filepath.Join(dir, "status"),
		"--recipes", filepath.Join(dir, "recipes"), "--lock-dir", suite.lockDir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%v\n%s", err, out)
	}
	statuses, _ := filepath.Glob(filepath.Join(dir, "status", "*.json"))
	fmt.Fprintf(os.Stderr, "e2e: janitor reaped %d apps left by earlier runs in %s\n", len(statuses), time.Since(start).Round(time.Millisecond))
	return nil
}

// dockerForE2E returns a client for a daemon in an active swarm, or why there is none.
func dockerForE2E() (*client.Client, string) {
	docker, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return nil, fmt.Sprintf("no Docker client: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if _, err := docker.Ping(ctx); err != nil {
		docker.Close()
		return nil, fmt.Sprintf("the Docker daemon does not answer: %v", err)
	}
	info, err := docker.Info(ctx)
	if err != nil {
		docker.Close()
		return nil, fmt.Sprintf("docker info: %v", err)
	}
	if info.Swarm.LocalNodeState != swarm.LocalNodeStateActive || !info.Swarm.ControlAvailable {
		docker.Close()
		return nil, fmt.Sprintf("this node is not an active swarm manager (state %q; run scripts/swarm-up)", info.Swarm.LocalNodeState)
	}
	return docker, ""
}

// lockDir is the --lock-dir of every reconciler the suite starts: $E2E_LOCK_DIR, else the
// product's default, so that the suite's reconcilers and any other reconciler on this host see
// each other's app locks and none sweeps another's apps as orphans; a private directory only
// when the default cannot be created.
func lockDir(workDir string) (string, error) {
	if dir := os.Getenv("E2E_LOCK_DIR"); dir != "" {
		return dir, os.MkdirAll(dir, 0o755)
	}
	const productDefault = "/run/lock/swarm-reconciler"
	if err := os.MkdirAll(productDefault, 0o755); err == nil {
		if f, err := os.CreateTemp(productDefault, ".e2e-probe-"); err == nil {
			f.Close()
			os.Remove(f.Name())
			return productDefault, nil
		}
	}
	dir := filepath.Join(workDir, "locks")
	return dir, os.MkdirAll(dir, 0o755)
}

// buildReconciler builds ./cmd/reconciler of this module into workDir.
func buildReconciler(ctx context.Context, workDir string) (string, error) {
	root, err := filepath.Abs("..")
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		return "", fmt.Errorf("module root: %w", err)
	}
	bin := filepath.Join(workDir, "reconciler")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/reconciler")
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build ./cmd/reconciler: %w\n%s", err, out)
	}
	return bin, nil
}

// needBinary fails the test when the reconciler could not be built.
func needBinary(t testing.TB) string {
	t.Helper()
	if suite.binaryErr != nil {
		t.Fatalf("the reconciler binary is not available: %v", suite.binaryErr)
	}
	if suite.binary == "" {
		t.Fatal(errors.New("TestMain did not build the reconciler"))
	}
	return suite.binary
}
