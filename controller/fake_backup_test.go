package controller

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path"
	"sort"
	"strings"
	"sync"

	"github.com/docker/docker/api/types"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/swarm"
	"github.com/docker/docker/api/types/system"
	"github.com/docker/docker/errdefs"
	"github.com/docker/docker/pkg/stdcopy"
)

// fakeLink marks a file of the fake containers that is a hard link to the path that follows.
const fakeLink = "\x00link:"

// fakeNode is the node the fake engine runs every task on, and the one it says it is.
const fakeNode = "node1"

// fakeBackup is the in-memory engine's containers, as backups see them: one filesystem per
// service (its volumes), a shell that runs scripted commands, and archives in and out. It
// says no as an engine does: a path that is not there is not found, a hook exits non-zero.
type fakeBackup struct {
	f     *fakeEngine
	mu    sync.Mutex
	files map[string]map[string]string // service name in the swarm -> path -> content
	// shell runs a command in a service's files and says its exit code and output; nil: every
	// command exits 0 and prints "ok".
	shell func(service, cmd string, files map[string]string) (int, string)
	// corrupt, when set, changes what a restore writes.
	corrupt func(name, content string) string
	execs   map[string]container.ExecInspect
	ran     []string // "service: command" of every exec, in order
	outputs map[string]string
	// node, when set, is the node the engine says it is instead of fakeNode, where the tasks run.
	node string
	// execErr, when set, is the engine's answer to an exec in container cid before it starts
	// (nil: it starts).
	execErr func(cid string) error
}

func newFakeBackup(f *fakeEngine) *fakeBackup {
	return &fakeBackup{f: f, files: map[string]map[string]string{}, execs: map[string]container.ExecInspect{}, outputs: map[string]string{}}
}

// service is the swarm service whose task runs container cid.
func (b *fakeBackup) service(cid string) (string, error) {
	b.f.mu.Lock()
	defer b.f.mu.Unlock()
	for _, t := range b.f.tasks {
		// A task starting (its health check not passed yet) runs its container too.
		runs := t.Status.State == swarm.TaskStateRunning || t.Status.State == swarm.TaskStateStarting
		if t.Status.ContainerStatus != nil && t.Status.ContainerStatus.ContainerID == cid && runs {
			for _, s := range b.f.services {
				if s.ID == t.ServiceID {
					return s.Spec.Name, nil
				}
			}
		}
	}
	return "", errdefs.NotFound(fmt.Errorf("No such container: %s", cid))
}

func (b *fakeBackup) fs(service string) map[string]string {
	if b.files[service] == nil {
		b.files[service] = map[string]string{}
	}
	return b.files[service]
}

func (b *fakeBackup) Info(context.Context) (system.Info, error) {
	if b.node != "" {
		return system.Info{Swarm: swarm.Info{NodeID: b.node}}, nil
	}
	return system.Info{Swarm: swarm.Info{NodeID: fakeNode}}, nil
}

func (b *fakeBackup) ContainerExecCreate(_ context.Context, cid string, o container.ExecOptions) (container.ExecCreateResponse, error) {
	svc, err := b.service(cid)
	if err != nil {
		return container.ExecCreateResponse{}, err
	}
	if b.execErr != nil {
		if err := b.execErr(cid); err != nil {
			return container.ExecCreateResponse{}, err
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	cmd := o.Cmd[len(o.Cmd)-1]
	b.ran = append(b.ran, svc+": "+cmd)
	code, out := 0, "ok\n"
	if b.shell != nil {
		code, out = b.shell(svc, cmd, b.fs(svc))
	}
	id := fmt.Sprintf("exec%d", len(b.ran))
	b.execs[id] = container.ExecInspect{ExecID: id, ExitCode: code}
	b.outputs[id] = out
	return container.ExecCreateResponse{ID: id}, nil
}

func (b *fakeBackup) ContainerExecAttach(_ context.Context, id string, _ container.ExecAttachOptions) (types.HijackedResponse, error) {
	b.mu.Lock()
	out := b.outputs[id]
	b.mu.Unlock()
	var buf bytes.Buffer
	_, _ = stdcopy.NewStdWriter(&buf, stdcopy.Stdout).Write([]byte(out))
	c1, c2 := net.Pipe()
	c2.Close()
	return types.HijackedResponse{Conn: c1, Reader: bufio.NewReader(&buf)}, nil
}

func (b *fakeBackup) ContainerExecInspect(_ context.Context, id string) (container.ExecInspect, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.execs[id], nil
}

func (b *fakeBackup) CopyFromContainer(_ context.Context, cid, src string) (io.ReadCloser, container.PathStat, error) {
	svc, err := b.service(cid)
	if err != nil {
		return nil, container.PathStat{}, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	files := b.fs(svc)
	var names []string
	for p := range files {
		if p == src || strings.HasPrefix(p, src+"/") {
			names = append(names, p)
		}
	}
	if len(names) == 0 {
		return nil, container.PathStat{}, errdefs.NotFound(fmt.Errorf("Could not find the file %s in container %s", src, cid))
	}
	sort.Strings(names)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	base := path.Base(src)
	if len(names) > 1 || names[0] != src {
		_ = tw.WriteHeader(&tar.Header{Name: base + "/", Typeflag: tar.TypeDir, Mode: 0o755})
	}
	for _, p := range names {
		name := base + strings.TrimPrefix(p, src)
		if target, ok := strings.CutPrefix(files[p], fakeLink); ok {
			// A hard link, named as the engine names it: from the base name of src.
			_ = tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeLink, Linkname: base + strings.TrimPrefix(target, src), Mode: 0o644})
			continue
		}
		_ = tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(files[p]))})
		_, _ = tw.Write([]byte(files[p]))
	}
	_ = tw.Close()
	return io.NopCloser(&buf), container.PathStat{Name: base}, nil
}

func (b *fakeBackup) ContainerStatPath(_ context.Context, cid, p string) (container.PathStat, error) {
	svc, err := b.service(cid)
	if err != nil {
		return container.PathStat{}, err
	}
	b.f.mu.Lock()
	for _, s := range b.f.services {
		if s.Spec.Name != svc || s.Spec.TaskTemplate.ContainerSpec == nil {
			continue
		}
		for _, m := range s.Spec.TaskTemplate.ContainerSpec.Mounts {
			if m.Target == p { // a mount target is there, empty or not
				b.f.mu.Unlock()
				return container.PathStat{Name: path.Base(p), Mode: os.ModeDir | 0o755}, nil
			}
		}
	}
	b.f.mu.Unlock()
	b.mu.Lock()
	defer b.mu.Unlock()
	for name := range b.fs(svc) {
		if name == p || strings.HasPrefix(name, p+"/") {
			return container.PathStat{Name: path.Base(p)}, nil
		}
	}
	return container.PathStat{}, errdefs.NotFound(fmt.Errorf("Could not find the file %s in container %s", p, cid))
}

func (b *fakeBackup) CopyToContainer(_ context.Context, cid, dst string, r io.Reader, _ container.CopyToContainerOptions) error {
	svc, err := b.service(cid)
	if err != nil {
		return err
	}
	tr := tar.NewReader(r)
	b.mu.Lock()
	defer b.mu.Unlock()
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if h.Typeflag == tar.TypeLink {
			target := path.Join(dst, h.Linkname)
			if _, ok := b.fs(svc)[target]; !ok {
				return fmt.Errorf("hard link %s to %s: no such file", h.Name, target)
			}
			b.fs(svc)[path.Join(dst, h.Name)] = fakeLink + target
			continue
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		data, _ := io.ReadAll(tr)
		content := string(data)
		if b.corrupt != nil {
			content = b.corrupt(h.Name, content)
		}
		b.fs(svc)[path.Join(dst, h.Name)] = content
	}
}
