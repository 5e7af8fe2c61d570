package e2e

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/docker/docker/api/types/build"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/jsonmessage"
)

// echoImage is the test image every e2e recipe runs. It exists only locally: the suite builds
// it in TestMain and no registry is involved.
const echoImage = "swarm-reconciler-e2e/echo:1"

const echoDockerfile = "FROM scratch\nCOPY echo /echo\nENTRYPOINT [\"/echo\"]\n"

// buildEchoImage compiles testdata/echo as a static binary for the daemon's architecture and
// builds it into echoImage FROM scratch through the Engine API (the classic builder: FROM
// scratch needs no registry and no BuildKit session).
func buildEchoImage(ctx context.Context, docker *client.Client, workDir string) error {
	info, err := docker.Info(ctx)
	if err != nil {
		return fmt.Errorf("docker info: %w", err)
	}
	goarch, ok := map[string]string{"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}[info.Architecture]
	if !ok {
		return fmt.Errorf("daemon architecture %q: no GOARCH for it", info.Architecture)
	}

	bin := filepath.Join(workDir, "echo")
	src, err := filepath.Abs(filepath.Join("testdata", "echo"))
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, ".")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+goarch)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build testdata/echo: %w\n%s", err, out)
	}
	binary, err := os.ReadFile(bin)
	if err != nil {
		return err
	}

	if err := buildImage(ctx, docker, echoImage, []contextFile{
		{"Dockerfile", 0o644, []byte(echoDockerfile)},
		{"echo", 0o755, binary},
	}); err != nil {
		return err
	}
	if _, err := docker.ImageInspect(ctx, echoImage); err != nil {
		return fmt.Errorf("image build %s reported success but the image is missing: %w", echoImage, err)
	}
	return nil
}

// contextFile is one file of a build context.
type contextFile struct {
	name string
	mode int64
	data []byte
}

// buildImage builds tag from a context of files, one of them the Dockerfile, through the
// Engine API with the classic builder (FROM scratch or a local image needs no registry and
// no BuildKit session).
func buildImage(ctx context.Context, docker *client.Client, tag string, files []contextFile) error {
	var buildCtx bytes.Buffer
	tw := tar.NewWriter(&buildCtx)
	for _, f := range files {
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: f.mode, Size: int64(len(f.data))}); err != nil {
			return err
		}
		if _, err := tw.Write(f.data); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	resp, err := docker.ImageBuild(ctx, &buildCtx, build.ImageBuildOptions{
		Tags: []string{tag}, Dockerfile: "Dockerfile", Remove: true, ForceRemove: true, Version: build.BuilderV1,
	})
	if err != nil {
		return fmt.Errorf("image build %s: %w", tag, err)
	}
	defer resp.Body.Close()
	var progress bytes.Buffer
	if err := jsonmessage.DisplayJSONMessagesStream(resp.Body, &progress, 0, false, nil); err != nil {
		return fmt.Errorf("image build %s: %w\n%s", tag, err, progress.String())
	}
	return nil
}
