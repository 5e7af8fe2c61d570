package controller

import (
	"archive/tar"
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"slices"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/swarm"
	"github.com/docker/docker/api/types/system"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"
	"github.com/go-logr/logr"
	"github.com/klauspost/compress/zstd"

	"github.com/swarm-reconciler/reconciler/manifests"
	"github.com/swarm-reconciler/reconciler/spec"
	"github.com/swarm-reconciler/reconciler/swarmstate"
)

// BackupEngine is the part of the Engine API backups use: the node's ID (a volume is read
// through a container on this node), exec for hooks and checks, and archives to read and
// write a volume through the container that mounts it. *client.Client satisfies it.
type BackupEngine interface {
	Info(ctx context.Context) (system.Info, error)
	ContainerExecCreate(ctx context.Context, container string, o container.ExecOptions) (container.ExecCreateResponse, error)
	ContainerExecAttach(ctx context.Context, execID string, o container.ExecAttachOptions) (types.HijackedResponse, error)
	ContainerExecInspect(ctx context.Context, execID string) (container.ExecInspect, error)
	CopyFromContainer(ctx context.Context, containerID, srcPath string) (io.ReadCloser, container.PathStat, error)
	CopyToContainer(ctx context.Context, containerID, dstPath string, content io.Reader, o container.CopyToContainerOptions) error
	ContainerStatPath(ctx context.Context, containerID, path string) (container.PathStat, error)
}

var _ BackupEngine = (*client.Client)(nil)

// postHookTimeout bounds the post-hooks of a job that was cut short: they have that long
// from the moment it was (its deadline, the process stopping), and until then the job's own
// time.
const postHookTimeout = 2 * time.Minute

// archiveExt names a volume's archive: tar compressed with zstd at its fastest level, which
// keeps up with the engine's archive endpoint several times over on one core and stores a text
// dump in a tenth of its size (BenchmarkArchiveCompression, docs/benchmarks.md).
const archiveExt = ".tar.zst"

// hookLines is how many of a hook's last output lines a run keeps, as a failed task's logs.
const hookLines = 10

// backupRunner carries out one backup or restore of an app: the effects of a backupJob that
// decide chose. Every hook, check and volume is recorded in run as it happens, so the status
// says how far it got whatever stops it.
type backupRunner struct {
	eng   BackupEngine
	store spec.BackupStore
	app   string
	owner string // the spec directory's ID: whose partial backups these are
	plan  *manifests.BackupPlan
	// containers are the running containers on this node by recipe service name, and mounts
	// what their tasks mount.
	containers map[string]string
	mounts     map[string][]mount.Mount
	red        redactor
	run        *spec.BackupRun
	// step is called after each step that changed something (a hook run, a volume moved),
	// for the fault-injection tests.
	step func(what string)
	// checkpoint writes the status with the run as it stands: after each restore pre-hook and
	// post-hook, so that a process killed later leaves a record of the post-hooks owed, and
	// of those that ran (a post-hook that loads a dump must not run twice).
	checkpoint func()
}

// The hooks' names in a run's record.
const (
	hookRestorePre  = "restore pre-hook"
	hookRestorePost = "restore post-hook"
)

// failure is a backup or restore that did not do what it should: its message is the run's
// and, for the backup tier, the app's.
type failure struct{ msg string }

func (f failure) Error() string { return f.msg }

func (b *backupRunner) did(what string) {
	if b.step != nil {
		b.step(what)
	}
}

// container is the running container of service on this node; volume, when set, is the
// volume to be read or written through it.
func (b *backupRunner) container(service, volume string) (string, error) {
	id := b.containers[service]
	if id == "" {
		what := "service " + service
		if volume != "" {
			what = fmt.Sprintf("volume %s (mounted by service %s)", volume, service)
		}
		return "", failure{fmt.Sprintf("%s: no running task of %s on the reconciler's node: backups read and write volumes through the container that mounts them, so place %s on the node the reconciler runs on (a placement constraint), or run the reconciler there", what, service, service)}
	}
	return id, nil
}

// volumeContainer is container for volume v of service, after making sure the container's
// task mounts at v's target the app's own volume (full, its name in the swarm): a service
// changed by hand (`docker service update --mount-add`) may mount another volume there, or a
// directory of the host, which a backup must not read nor a restore overwrite.
func (b *backupRunner) volumeContainer(service, volume, full, target string) (string, error) {
	cid, err := b.container(service, volume)
	if err != nil {
		return "", err
	}
	for _, m := range b.mounts[service] {
		if path.Clean(m.Target) != path.Clean(target) {
			continue
		}
		if m.Type == mount.TypeVolume && m.Source == full {
			return cid, nil
		}
		return "", failure{fmt.Sprintf("volume %s: the running task of service %s mounts %s %q at %s, not the app's volume %s (changed by hand?): nothing is read or written through it; the reconciler sets the service back to its spec, ask again once it has", volume, service, m.Type, m.Source, target, full)}
	}
	return "", failure{fmt.Sprintf("volume %s: the running task of service %s mounts nothing at %s, where the recipe mounts the app's volume %s (changed by hand?): the reconciler sets the service back to its spec, ask again once it has", volume, service, target, full)}
}

// exec runs a hook or a check and records it; a non-zero exit is a failure naming it.
func (b *backupRunner) exec(ctx context.Context, service, hook, command string) error {
	cid, err := b.container(service, "")
	if err != nil {
		return err
	}
	code, out, err := execShell(ctx, b.eng, cid, command)
	if gone := containerGone(ctx, b.eng, cid, "/", err); gone != nil {
		err = gone
	} else if cerrdefs.IsConflict(err) {
		// The engine's answer to an exec in a container that stopped; its volumes can still
		// be read and written, but no hook or check runs there.
		err = fmt.Errorf("container %.12s has stopped: its task ended meanwhile (%w); ask again once the service runs", cid, err)
	}
	// A hook's command is a label after env interpolation: it may hold a secret value.
	command = b.red.line(command)
	h := spec.HookRun{Service: service, Hook: hook, Command: command, ExitCode: code}
	for _, l := range out {
		h.Output = append(h.Output, b.red.line(l))
	}
	if err != nil {
		h.ExitCode = -1
		h.Output = append(h.Output, err.Error())
		h.NotRun = errors.As(err, new(execNotStarted))
	}
	b.run.Hooks = append(b.run.Hooks, h)
	if (hook == hookRestorePre || hook == hookRestorePost) && b.checkpoint != nil {
		b.checkpoint()
	}
	b.did(hook + " " + service)
	if err != nil {
		return fmt.Errorf("%s in service %s (%s) could not run: %w", hook, service, command, err)
	}
	if code != 0 {
		last := "no output"
		if len(h.Output) > 0 {
			last = "last output: " + strings.Join(h.Output[max(0, len(h.Output)-3):], " | ")
		}
		return failure{fmt.Sprintf("%s in service %s (%s) exited %d; %s", hook, service, command, code, last)}
	}
	return nil
}

// execNotStarted is an exec the engine refused to create: its command did not run.
type execNotStarted struct{ error }

func (e execNotStarted) Unwrap() error { return e.error }

// execShell runs command with /bin/sh -c in container cid, with the container's environment,
// and returns its exit code and last output lines (stdout and stderr).
func execShell(ctx context.Context, e BackupEngine, cid, command string) (int, []string, error) {
	created, err := e.ContainerExecCreate(ctx, cid, container.ExecOptions{
		Cmd: []string{"/bin/sh", "-c", command}, AttachStdout: true, AttachStderr: true,
	})
	if err != nil {
		return 0, nil, execNotStarted{err}
	}
	att, err := e.ContainerExecAttach(ctx, created.ID, container.ExecAttachOptions{})
	if err != nil {
		return 0, nil, err
	}
	// The client no longer watches ctx once the connection is hijacked: a hook that hangs is
	// cut off by closing it.
	stop := context.AfterFunc(ctx, att.Close)
	defer stop()
	tail := &lastLines{n: hookLines}
	_, err = stdcopy.StdCopy(tail, tail, att.Reader)
	att.Close()
	if ctx.Err() != nil {
		return 0, tail.lines(), context.Cause(ctx)
	}
	if err != nil && !errors.Is(err, io.EOF) {
		return 0, tail.lines(), err
	}
	// The stream ends as the process does; the exit code lands in the exec's state a moment
	// after.
	for wait := time.Millisecond; ; wait = min(wait*2, 100*time.Millisecond) {
		ins, err := e.ContainerExecInspect(ctx, created.ID)
		if err != nil {
			return 0, tail.lines(), err
		}
		if !ins.Running {
			return ins.ExitCode, tail.lines(), nil
		}
		select {
		case <-ctx.Done():
			return 0, tail.lines(), context.Cause(ctx)
		case <-time.After(wait):
		}
	}
}

// lastLines keeps the last n lines written to it.
type lastLines struct {
	n    int
	done []string
	part []byte
}

func (l *lastLines) Write(p []byte) (int, error) {
	for _, c := range p {
		if c == '\n' {
			l.push(string(l.part))
			l.part = l.part[:0]
			continue
		}
		if len(l.part) < logLineMax*2 {
			l.part = append(l.part, c)
		}
	}
	return len(p), nil
}

func (l *lastLines) push(s string) {
	l.done = append(l.done, strings.TrimRight(s, "\r"))
	if len(l.done) > l.n {
		l.done = l.done[len(l.done)-l.n:]
	}
}

func (l *lastLines) lines() []string {
	if len(l.part) > 0 {
		l.push(string(l.part))
		l.part = nil
	}
	return l.done
}

// checks runs the spec's checks of one kind, in order; the first that fails ends the run.
func (b *backupRunner) checks(ctx context.Context, kind string, list []spec.Check) error {
	for i, c := range list {
		if err := b.exec(ctx, c.Service, fmt.Sprintf("check %s[%d]", kind, i), c.Run); err != nil {
			return err
		}
	}
	return nil
}

// hooks runs the given pre-hook of every service of the plan that has one, and returns the
// services whose post-hooks are to run whatever happens next: those whose pre-hook ran, and
// once every pre-hook succeeded, those without one.
func (b *backupRunner) hooks(ctx context.Context, name string, pre func(manifests.BackupService) string) (ran []manifests.BackupService, err error) {
	for _, s := range b.plan.Services {
		if cmd := pre(s); cmd != "" {
			ran = append(ran, s)
			if err := b.exec(ctx, s.Name, name, cmd); err != nil {
				return ran, err
			}
		}
	}
	for _, s := range b.plan.Services {
		if pre(s) == "" {
			ran = append(ran, s)
		}
	}
	return ran, nil
}

// postHooks runs the post-hook of each service ran names, also after a failure; each
// post-hook's error is joined to err (the job's, if it failed before them).
func (b *backupRunner) postHooks(ctx context.Context, name string, ran []manifests.BackupService, post func(manifests.BackupService) string, err error) error {
	// They run also when the job was cut short (its deadline, the process stopping): a
	// pre-hook may have put the service in maintenance. Until then the job's own time bounds
	// them, not postHookTimeout (a post-hook that loads a dump takes as long as the dump is
	// large: the spec's timeout is what a person raises for that); from then on,
	// postHookTimeout more.
	hctx, cancel := context.WithCancelCause(context.WithoutCancel(ctx))
	defer cancel(nil)
	stop := context.AfterFunc(ctx, func() {
		t := time.AfterFunc(postHookTimeout, func() {
			cancel(fmt.Errorf("%w: not done %s after the job was cut short (%v)", context.DeadlineExceeded, postHookTimeout, context.Cause(ctx)))
		})
		context.AfterFunc(hctx, func() { t.Stop() })
	})
	defer stop()
	for _, s := range ran {
		if cmd := post(s); cmd != "" {
			perr := b.exec(hctx, s.Name, name, cmd)
			switch {
			case perr == nil:
			case err == nil:
				err = perr
			default:
				// A post-hook that failed after the job did may leave the service as its
				// pre-hook put it: the message says so too, not only the first failure.
				err = fmt.Errorf("%w; then %w", err, perr)
			}
		}
	}
	return err
}

// backup makes backup m.ID: the beforeBackup checks, every pre-hook, each volume read into its
// archive, every post-hook; the backup is listed only when all of that succeeded.
func (b *backupRunner) backup(ctx context.Context, m *spec.BackupManifest, checks []spec.Check) (err error) {
	if err := b.checks(ctx, "beforeBackup", checks); err != nil {
		return err
	}
	pending, err := b.store.Begin(b.app, m.ID, b.owner)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			pending.Abort()
		}
	}()
	pre := func(s manifests.BackupService) string { return s.PreHook }
	post := func(s manifests.BackupService) string { return s.PostHook }
	ran, err := b.hooks(ctx, "backup pre-hook", pre)
	if err == nil {
		err = b.readVolumes(ctx, pending, m)
	}
	if err = b.postHooks(ctx, "backup post-hook", ran, post, err); err != nil {
		return err
	}
	m.Finished = time.Now().UTC()
	if err := pending.Commit(m); err != nil {
		return err
	}
	b.did("commit " + m.ID)
	return nil
}

func (b *backupRunner) readVolumes(ctx context.Context, pending *spec.PendingBackup, m *spec.BackupManifest) error {
	for _, s := range b.plan.Services {
		for _, v := range s.Volumes {
			cid, err := b.volumeContainer(s.Name, v.Name, v.Full, v.Target)
			if err != nil {
				return err
			}
			vb := spec.VolumeBackup{Name: v.Name, Full: v.Full, Service: s.Name, Target: v.Target, Paths: v.Paths, Skip: v.Skip, Archive: v.Name + archiveExt}
			f, err := pending.Create(vb.Archive)
			if err != nil {
				return fmt.Errorf("volume %s: %w", v.Name, err)
			}
			w := bufio.NewWriterSize(f, 1<<20)
			zw, err := zstd.NewWriter(w, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1))
			if err != nil {
				f.Close()
				return err
			}
			tw := tar.NewWriter(zw)
			err = readVolume(ctx, b.eng, cid, v, func(h *tar.Header, r io.Reader) error {
				if err := tw.WriteHeader(h); err != nil {
					return err
				}
				if h.Typeflag != tar.TypeReg {
					return nil
				}
				sum := sha256.New()
				n, err := io.Copy(io.MultiWriter(tw, sum), r)
				if err != nil {
					return err
				}
				vb.Files = append(vb.Files, spec.BackedUpFile{Path: h.Name, Size: n, SHA256: hex.EncodeToString(sum.Sum(nil))})
				vb.Bytes += n
				return nil
			})
			if err == nil {
				err = tw.Close()
			}
			if cerr := zw.Close(); err == nil {
				err = cerr
			}
			if err == nil {
				err = w.Flush()
			}
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return fmt.Errorf("back up volume %s through service %s (%s): %w", v.Name, s.Name, v.Target, err)
			}
			m.Volumes = append(m.Volumes, vb)
			b.run.Volumes = append(b.run.Volumes, spec.VolumeRun{Name: v.Name, Paths: v.Paths, Files: len(vb.Files), Bytes: vb.Bytes})
			b.run.Files += len(vb.Files)
			b.run.Bytes += vb.Bytes
			b.did("read volume " + v.Name)
		}
	}
	return nil
}

// readVolume streams the volume's included paths out of container cid, each entry named by
// its path relative to the volume's root, to each.
func readVolume(ctx context.Context, e BackupEngine, cid string, v manifests.BackupVolume, each func(*tar.Header, io.Reader) error) error {
	paths := v.Paths
	if len(paths) == 0 {
		paths = []string{""}
	}
	for _, p := range paths {
		src := path.Join(v.Target, p)
		rc, stat, err := e.CopyFromContainer(ctx, cid, src)
		if err != nil {
			if gone := containerGone(ctx, e, cid, v.Target, err); gone != nil {
				return gone
			}
			if cerrdefs.IsNotFound(err) && p != "" {
				return failure{fmt.Sprintf("path %s of volume %s is not there (%s in the container): the backup would not hold it; the recipe's pre-hook should write it", p, v.Name, src)}
			}
			return err
		}
		if stat.Mode&os.ModeSymlink != 0 {
			rc.Close()
			return failure{fmt.Sprintf("path %s of volume %s is a symbolic link (to %s): the backup would hold the link, not the data; name what it points to", path.Join(".", p), v.Name, stat.LinkTarget)}
		}
		// The archive's names start with the base name of what was asked for.
		base := path.Base(src)
		err = eachEntry(rc, func(h *tar.Header, r io.Reader) error {
			rel, ok := rebase(h.Name, base, p)
			if !ok || under(rel, v.Skip) {
				return nil
			}
			h.Name = rel
			if h.Typeflag == tar.TypeLink {
				// A hard link names its target in the archive's naming too.
				target, ok := rebase(h.Linkname, base, p)
				if !ok {
					return failure{fmt.Sprintf("volume %s: %s is a hard link to %s, outside the paths backed up: include both", v.Name, rel, h.Linkname)}
				}
				h.Linkname = target
			}
			if h.Typeflag == tar.TypeDir && !strings.HasSuffix(h.Name, "/") {
				h.Name += "/"
			}
			return each(h, r)
		})
		rc.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

// containerGone says so when err, an archive call's error on container cid, is not found
// because the container itself is gone (its task ended or was replaced meanwhile), not a path
// in it: the mount target, which a running container always has, is not found either.
func containerGone(ctx context.Context, e BackupEngine, cid, target string, err error) error {
	if !cerrdefs.IsNotFound(err) {
		return nil
	}
	if _, serr := e.ContainerStatPath(ctx, cid, target); !cerrdefs.IsNotFound(serr) {
		return nil
	}
	return fmt.Errorf("container %.12s is gone: its task ended or was replaced meanwhile (%w); ask again once the service runs", cid, err)
}

// under reports whether rel (a path in a volume) is one of dirs or inside one of them.
func under(rel string, dirs []string) bool {
	rel = path.Clean(rel)
	for _, d := range dirs {
		if rel == d || strings.HasPrefix(rel, d+"/") {
			return true
		}
	}
	return false
}

// rebase names an entry of an archive of path p of a volume (base: the name the archive's
// entries start with) by its path in the volume; the volume's root itself has none.
func rebase(name, base, p string) (string, bool) {
	name = strings.TrimPrefix(strings.TrimSuffix(name, "/"), "./")
	rest, ok := strings.CutPrefix(name, base)
	if !ok || rest != "" && rest[0] != '/' {
		return "", false
	}
	rel := path.Clean(path.Join(p, strings.TrimPrefix(rest, "/")))
	if rel == "." || rel == "" || strings.HasPrefix(rel, "../") {
		return "", false
	}
	return rel, true
}

func eachEntry(r io.Reader, each func(*tar.Header, io.Reader) error) error {
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := each(h, tr); err != nil {
			return err
		}
	}
}

// restore writes backup m back: the beforeRestore checks, every restore pre-hook, each
// volume's archive into the container that mounts it, a read-back of every restored file
// compared with the manifest, every restore post-hook, and the afterRestore checks.
func (b *backupRunner) restore(ctx context.Context, m *spec.BackupManifest, before, after []spec.Check) error {
	m, err := b.current(m)
	if err != nil {
		return err
	}
	if err := b.checks(ctx, "beforeRestore", before); err != nil {
		return err
	}
	pre := func(s manifests.BackupService) string { return s.RestorePre }
	post := func(s manifests.BackupService) string { return s.RestorePost }
	ran, err := b.hooks(ctx, hookRestorePre, pre)
	if err == nil {
		if err = b.writeVolumes(ctx, m); err == nil {
			// Before the post-hooks, which may consume what was restored (load a dump, remove it).
			err = b.verify(ctx, m)
		}
		if err != nil {
			err = partialRestore{err}
			// What the volumes hold now is not the backup: a post-hook that loads a dump
			// would replace live data with it. Only those owed to a pre-hook that ran still
			// run (as after a kill); backup-bot-two runs none once its restore failed.
			ran = slices.DeleteFunc(ran, func(s manifests.BackupService) bool { return s.RestorePre == "" })
		}
	}
	if err = b.postHooks(ctx, hookRestorePost, ran, post, err); err != nil {
		return err
	}
	return b.checks(ctx, "afterRestore", after)
}

// partialRestore is a restore that failed once it had begun to write: the volumes may hold
// part of the backup.
type partialRestore struct{ err error }

func (e partialRestore) Error() string { return e.err.Error() }
func (e partialRestore) Unwrap() error { return e.err }

// current is m with each volume's service and mount target as the recipe's backup plan says
// now: a volume is written back where the running release mounts it, which may have moved
// since the backup. A volume the plan no longer has cannot be restored.
func (b *backupRunner) current(m *spec.BackupManifest) (*spec.BackupManifest, error) {
	c := *m
	c.Volumes = slices.Clone(m.Volumes)
	for i, v := range c.Volumes {
		found := false
		for _, s := range b.plan.Services {
			for _, pv := range s.Volumes {
				if pv.Name == v.Name {
					c.Volumes[i].Service, c.Volumes[i].Target, c.Volumes[i].Skip, c.Volumes[i].Full, found = s.Name, pv.Target, pv.Skip, pv.Full, true
				}
			}
		}
		if !found {
			return nil, failure{fmt.Sprintf("volume %s of backup %s is not backed up by this release of the recipe (its backupbot labels no longer name it): restore it with a release that does", v.Name, m.ID)}
		}
	}
	return &c, nil
}

func (b *backupRunner) writeVolumes(ctx context.Context, m *spec.BackupManifest) error {
	for _, v := range m.Volumes {
		cid, err := b.volumeContainer(v.Service, v.Name, v.Full, v.Target)
		if err != nil {
			return err
		}
		// The archive's owners are kept (CopyUIDGID would give every file the container's user).
		f, err := b.store.Open(m.App, m.ID, v.Archive)
		if err != nil {
			return fmt.Errorf("restore volume %s: %w", v.Name, err)
		}
		var archive io.Reader = bufio.NewReaderSize(f, 1<<20)
		var zr *zstd.Decoder
		if strings.HasSuffix(v.Archive, ".zst") {
			if zr, err = zstd.NewReader(archive, zstd.WithDecoderConcurrency(1)); err != nil {
				f.Close()
				return err
			}
			archive = zr
		}
		checked := checkArchive(archive, m.ID, v)
		err = b.eng.CopyToContainer(ctx, cid, v.Target, checked, container.CopyToContainerOptions{})
		if cerr := checked.Close(); cerr != nil {
			err = cerr // the engine saw the archive end early; this says why
		}
		if zr != nil {
			zr.Close()
		}
		f.Close()
		if gone := containerGone(ctx, b.eng, cid, v.Target, err); gone != nil {
			err = gone
		}
		if err != nil {
			return fmt.Errorf("restore volume %s through service %s (%s): %w", v.Name, v.Service, v.Target, err)
		}
		b.run.Volumes = append(b.run.Volumes, spec.VolumeRun{Name: v.Name, Paths: v.Paths, Files: len(v.Files), Bytes: v.Bytes})
		b.run.Files += len(v.Files)
		b.run.Bytes += v.Bytes
		b.did("write volume " + v.Name)
	}
	return nil
}

// checkArchive passes the archive of volume v of backup id on, entry by entry, as long as it
// holds what its backup wrote: names inside the volume that pass through no symbolic link of
// the archive, hard links to such names, and every regular file one the manifest lists, of
// its size. The engine extracts whatever it is given, as root, where the container
// mounts the volume: a damaged or altered archive stops there, and Close says why.
func checkArchive(r io.Reader, id string, v spec.VolumeBackup) io.ReadCloser {
	pr, pw := io.Pipe()
	c := &checkedArchive{PipeReader: pr, done: make(chan struct{})}
	go func() {
		defer close(c.done)
		c.err = copyChecked(pw, r, id, v)
		pw.CloseWithError(c.err) // nil: the reader sees EOF
	}()
	return c
}

type checkedArchive struct {
	*io.PipeReader
	done chan struct{}
	err  error
}

// Close ends the check and returns its error, if it found one.
func (c *checkedArchive) Close() error {
	c.PipeReader.CloseWithError(errors.New("restore ended"))
	<-c.done
	var d damagedArchive
	if errors.As(c.err, &d) {
		return c.err
	}
	return nil
}

// manifestPath is how the manifest (JSON) names the file an archive entry names: a byte
// that is not UTF-8 is written there as U+FFFD.
func manifestPath(name string) string {
	return strings.ToValidUTF8(path.Clean(name), "\uFFFD")
}

// damagedArchive is an archive in the store that holds what its backup did not write.
type damagedArchive struct{ failure }

func copyChecked(w io.Writer, r io.Reader, id string, v spec.VolumeBackup) error {
	files := map[string]int64{}
	for _, f := range v.Files {
		files[f.Path] = f.Size
	}
	bad := func(name, why string) error {
		return damagedArchive{failure{fmt.Sprintf("archive of volume %s in backup %s: entry %q %s: the backup is damaged or was altered, and nothing from that entry on was restored: restore another backup", v.Name, id, name, why)}}
	}
	links := map[string]bool{} // the archive's symbolic links
	inside := func(name string) string {
		clean := path.Clean(name)
		if path.IsAbs(clean) || clean == ".." || strings.HasPrefix(clean, "../") {
			return "is outside the volume"
		}
		for dir := path.Dir(clean); dir != "."; dir = path.Dir(dir) {
			if links[dir] {
				return "goes through the symbolic link " + dir
			}
		}
		return ""
	}
	tr, tw := tar.NewReader(r), tar.NewWriter(w)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return tw.Close()
		}
		if err != nil {
			return err
		}
		if why := inside(h.Name); why != "" {
			return bad(h.Name, why)
		}
		if under(h.Name, v.Skip) {
			continue // where the service now mounts something else: not written through this volume
		}
		switch h.Typeflag {
		case tar.TypeReg:
			if size, ok := files[manifestPath(h.Name)]; !ok || size != h.Size {
				return bad(h.Name, "is not a file of the backup's manifest")
			}
		case tar.TypeLink:
			if why := inside(h.Linkname); why != "" {
				return bad(h.Name, "links to "+h.Linkname+", which "+why)
			}
			if links[path.Clean(h.Linkname)] {
				links[path.Clean(h.Name)] = true // a hard link to a symbolic link is one too
			}
		case tar.TypeSymlink:
			links[path.Clean(h.Name)] = true
		case tar.TypeDir, tar.TypeFifo, tar.TypeChar, tar.TypeBlock:
			// No data; a device node made in a volume opens nothing the container's device
			// rules do not allow, and a backup of a volume that holds one must restore.
		default:
			return bad(h.Name, fmt.Sprintf("is of a kind a backup does not hold (tar type %q)", h.Typeflag))
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if _, err := io.Copy(tw, tr); err != nil {
			return err
		}
	}
}

// verify reads every restored file back and compares it with the manifest.
func (b *backupRunner) verify(ctx context.Context, m *spec.BackupManifest) error {
	for _, v := range m.Volumes {
		cid, err := b.volumeContainer(v.Service, v.Name, v.Full, v.Target)
		if err != nil {
			return err
		}
		want := map[string]spec.BackedUpFile{}
		for _, f := range v.Files {
			want[f.Path] = f
		}
		seen := map[string]bool{}
		var mismatch []string
		err = readVolume(ctx, b.eng, cid, manifests.BackupVolume{Name: v.Name, Target: v.Target, Paths: v.Paths, Skip: v.Skip}, func(h *tar.Header, r io.Reader) error {
			name := manifestPath(h.Name)
			f, ok := want[name]
			if !ok || h.Typeflag != tar.TypeReg {
				return nil
			}
			sum := sha256.New()
			if _, err := io.Copy(sum, r); err != nil {
				return err
			}
			seen[name] = true
			if got := hex.EncodeToString(sum.Sum(nil)); got != f.SHA256 {
				mismatch = append(mismatch, fmt.Sprintf("%s (sha256 %s, backup has %s)", name, got[:12], f.SHA256[:min(12, len(f.SHA256))]))
			}
			return nil
		})
		if err != nil {
			var fl failure
			if !errors.As(err, &fl) {
				return fmt.Errorf("verify volume %s: %w", v.Name, err)
			}
		}
		for _, f := range v.Files {
			if !seen[f.Path] && !under(f.Path, v.Skip) { // an older backup may hold what is now another mount's
				mismatch = append(mismatch, f.Path+" (missing after the restore)")
			}
		}
		if len(mismatch) > 0 {
			slices.Sort(mismatch)
			return failure{fmt.Sprintf("restored volume %s does not match backup %s: %s", v.Name, m.ID, strings.Join(mismatch[:min(5, len(mismatch))], ", "))}
		}
	}
	return nil
}

// runJob carries out the decision's backup or restore and folds its end into the decision.
// A job cut short by the process stopping is left Running in the status: the next process
// finds it so and says it was interrupted.
func (r *Reconciler) runJob(ctx context.Context, log logr.Logger, w *world, d decision) decision {
	job := d.Job
	run := d.Status.LastBackup
	if job.Restore {
		run = d.Status.LastRestore
	}
	log.Info("backup job", "restore", job.Restore, "trigger", job.Trigger, "id", job.ID)
	// The job's deadline is the spec's timeout, not the pass's (a large volume takes minutes);
	// the process stopping still cuts it short.
	proc := processOf(ctx)
	jctx, cancel := context.WithTimeout(logr.NewContext(proc, log), w.Desired.Spec.Timeout.Duration)
	defer cancel()
	checkpoint := func() {
		if err := r.persist(d.status(r.Now()), r.Now()); err != nil {
			log.Error(err, "the status with the restore hooks run so far is not written; a process killed now would not know which post-hooks are owed")
		}
	}
	err := r.doJob(jctx, log, w, job, run, checkpoint)
	if proc.Err() != nil || errors.Is(ctx.Err(), context.Canceled) {
		// The process is stopping: Run's context cancelled, or the end of `once`'s pass
		// (its --timeout), which is not the job's own deadline. (Reconcile writes no status
		// for a pass cancelled.)
		if err != nil || !job.Restore || len(job.PostHooks) > 0 {
			return d
		}
		// A restore that completed, verified, as the process was asked to stop (its last
		// step, the post-hooks, runs on): said now, as the stopping pass writes no status,
		// and a restore the next process finds Running is taken for one cut short. (A backup
		// is found committed in the store.)
		d = finishJob(d, run, nil, r.Now())
		if perr := r.persist(d.status(r.Now()), r.Now()); perr != nil {
			log.Error(perr, "the status of the restore completed as the process stops is not written; the next process takes it for interrupted")
		}
		return d
	}
	if len(job.PostHooks) > 0 {
		return owedPostHooksRun(d, job, err)
	}
	if errors.Is(jctx.Err(), context.DeadlineExceeded) {
		err = fmt.Errorf("not done within the spec's timeout of %s (raise timeout for large volumes): %w", w.Desired.Spec.Timeout.Duration, err)
	}
	w.Now = r.Now() // the status says when the job ended, not when the world was read
	if err != nil {
		log.Info("backup job failed", "restore", job.Restore, "id", job.ID, "error", err.Error())
	}
	return finishJob(d, run, err, r.Now())
}

func (r *Reconciler) doJob(ctx context.Context, log logr.Logger, w *world, job *backupJob, run *spec.BackupRun, checkpoint func()) error {
	eng := r.BackupEngine
	if eng == nil {
		var ok bool
		if eng, ok = r.Engine.(BackupEngine); !ok {
			return errors.New("this engine cannot run backups")
		}
	}
	if r.Backups.Dir == "" {
		return errors.New("no backup directory: run the reconciler with --backups DIR")
	}
	node, err := r.nodeID(ctx, eng)
	if err != nil {
		return fmt.Errorf("find this engine's swarm node: %w", err)
	}
	if w.Backup == nil {
		why := "the recipe's backup plan was not read"
		if w.BackupErr != nil {
			why = fmt.Sprintf("the recipe's backup plan cannot be read: %v", w.BackupErr)
		}
		return errors.New(why)
	}
	cur := w.Snap.ByStack()[w.Stack]
	if cur == nil {
		cur = &swarmstate.Snapshot{}
	}
	s := w.Desired.Spec
	// An owed post-hook runs also in a container whose health check has not passed yet: the
	// pre-hook that owes it may be what fails that check (maintenance mode).
	containers, mounts := localContainers(cur, w.Stack, node, len(job.PostHooks) > 0)
	br := &backupRunner{
		eng: eng, store: r.Backups, app: w.App, owner: r.Owner, plan: w.Backup,
		containers: containers,
		mounts:     mounts,
		red:        newRedactor(cur.Secrets, s.Env),
		run:        run,
		step: func(what string) {
			log.Info("backup step", "step", what)
			if n := r.steps.Add(1); r.Step != nil {
				r.Step(n, Action{Kind: BackupStep, Name: what})
			}
		},
	}
	br.checkpoint = checkpoint
	if len(job.PostHooks) > 0 {
		var owed []manifests.BackupService
		for _, name := range job.PostHooks {
			i := slices.IndexFunc(w.Backup.Services, func(s manifests.BackupService) bool { return s.Name == name })
			if i < 0 || w.Backup.Services[i].RestorePost == "" {
				// The recipe's release deployed now has no such post-hook: none is left to run.
				run.Hooks = append(run.Hooks, spec.HookRun{Service: name, Hook: hookRestorePost,
					Output: []string{"the release deployed now has no restore post-hook for this service: none run"}})
				continue
			}
			owed = append(owed, w.Backup.Services[i])
		}
		return br.postHooks(ctx, hookRestorePost, owed, func(s manifests.BackupService) string { return s.RestorePost }, nil)
	}
	if job.Restore {
		m, err := r.Backups.Manifest(w.App, job.ID)
		if err != nil {
			return err
		}
		return br.restore(ctx, m, job.Before, job.After)
	}
	m := &spec.BackupManifest{App: w.App, ID: job.ID, Recipe: s.Recipe, Version: s.Version, Revision: w.Rendered.Revision,
		Trigger: job.Trigger, Request: job.Request, Time: run.Started.UTC()}
	return br.backup(ctx, m, job.Before)
}

// pruneBackups keeps the newest keep complete backups of app (decision.KeepBackups).
func (r *Reconciler) pruneBackups(log logr.Logger, app string, keep int) {
	if keep <= 0 {
		return
	}
	removed, err := r.Backups.Prune(app, r.Owner, keep)
	if err != nil {
		log.Info("old backups not pruned; the next backup tries again", "error", err.Error())
	}
	if len(removed) > 0 {
		log.Info("pruned old backups", "keep", keep, "removed", removed)
	}
}

// nodeID is the swarm node ID of the engine, asked once.
func (r *Reconciler) nodeID(ctx context.Context, eng BackupEngine) (string, error) {
	r.mu.Lock()
	node := r.node
	r.mu.Unlock()
	if node != "" {
		return node, nil
	}
	info, err := eng.Info(ctx)
	if err != nil {
		return "", err
	}
	if info.Swarm.NodeID == "" {
		return "", errors.New("the engine is not part of a swarm")
	}
	r.mu.Lock()
	r.node = info.Swarm.NodeID
	r.mu.Unlock()
	return info.Swarm.NodeID, nil
}

// localContainers are the running containers on node of the stack's services, by the
// service's name in the recipe; of several replicas, the one that started last; and what the
// task of each mounts. With starting, a task whose container runs but whose health check
// has not passed yet (swarm's state starting) counts too, after any running one: swarm may
// end it any moment.
func localContainers(cur *swarmstate.Snapshot, stack, node string, starting bool) (map[string]string, map[string][]mount.Mount) {
	names := map[string]string{}
	for _, s := range cur.Services {
		names[s.ID] = strings.TrimPrefix(s.Spec.Name, stack+"_")
	}
	out, mounts := map[string]string{}, map[string][]mount.Mount{}
	newest, running := map[string]time.Time{}, map[string]bool{}
	for _, t := range cur.Tasks {
		name, ok := names[t.ServiceID]
		runs := t.Status.State == swarm.TaskStateRunning
		if !ok || t.NodeID != node || !runs && !(starting && t.Status.State == swarm.TaskStateStarting) ||
			t.DesiredState != swarm.TaskStateRunning || t.Status.ContainerStatus == nil || t.Status.ContainerStatus.ContainerID == "" {
			continue
		}
		if at, seen := newest[name]; seen && (running[name] && !runs || running[name] == runs && !t.Status.Timestamp.After(at)) {
			continue
		}
		newest[name], running[name] = t.Status.Timestamp, runs
		out[name] = t.Status.ContainerStatus.ContainerID
		mounts[name] = nil
		if t.Spec.ContainerSpec != nil {
			mounts[name] = t.Spec.ContainerSpec.Mounts
		}
	}
	return out, mounts
}

// processKey carries the context of the process (cancelled when it stops) in a pass's context,
// whose deadline is the pass's.
type processKey struct{}

// withProcess records proc, the process's context, in ctx.
func withProcess(ctx, proc context.Context) context.Context {
	return context.WithValue(ctx, processKey{}, proc)
}

// processOf is the process's context recorded in ctx; without one, ctx without its deadline
// (a pass run directly, as the unit tests do), cancelled when ctx is cancelled.
func processOf(ctx context.Context) context.Context {
	if proc, ok := ctx.Value(processKey{}).(context.Context); ok {
		return proc
	}
	proc, cancel := context.WithCancel(context.WithoutCancel(ctx))
	context.AfterFunc(ctx, func() {
		if errors.Is(ctx.Err(), context.Canceled) {
			cancel()
		}
	})
	return proc
}
