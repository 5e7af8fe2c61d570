package controller

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/swarm"
	"github.com/docker/docker/pkg/stdcopy"

	"github.com/swarm-reconciler/reconciler/manifests"
	"github.com/swarm-reconciler/reconciler/spec"
	"github.com/swarm-reconciler/reconciler/swarmstate"
)

// The evidence of a failed task: its last log lines in the status, so CI reads why a task
// exited without `docker service logs` on the right host before the teardown removes them.
const (
	logLines = 20
	// logLineMax is how many bytes of one line the status keeps, after redaction.
	logLineMax = 400
	// logRead bounds what is read of a task's logs at all.
	logRead = 256 << 10
	// logTimeout bounds the call: a log driver that hangs must not hold the pass.
	logTimeout = 5 * time.Second
	redacted   = "[redacted]"
)

// redactor removes secret values from log lines: those it knows (the spec's env values whose
// names say they are secret) and those it can recognise by their fingerprint (the secrets the
// reconciler generated or was given, whose values it never keeps).
type redactor struct {
	values []string
	prints []manifests.Fingerprint
	// longest is the longest fingerprinted value: a line is redacted this far past the cut.
	longest int
}

// newRedactor is the redactor of an app with these secrets and spec env.
func newRedactor(secrets []swarm.Secret, env map[string]string) redactor {
	var r redactor
	for _, s := range secrets {
		if f, err := manifests.ParseFingerprint(s.Spec.Labels[manifests.LabelFingerprint]); err == nil {
			r.prints = append(r.prints, f)
			r.longest = max(r.longest, f.Length)
		}
	}
	for k, v := range env {
		if secretEnvKey(k) && len(v) >= 4 {
			r.values = append(r.values, v)
		}
	}
	return r
}

// secretEnvKey says whether an env value is a secret by its name, as people name them.
func secretEnvKey(k string) bool {
	u := strings.ToUpper(k)
	if strings.HasSuffix(u, "_VERSION") {
		return false // SECRET_X_VERSION names a secret's version, not its value
	}
	for _, w := range []string{"PASSWORD", "PASSWD", "SECRET", "TOKEN", "PRIVATE", "CREDENTIAL"} {
		if strings.Contains(u, w) {
			return true
		}
	}
	return strings.HasSuffix(u, "KEY")
}

// line is one log line as the status keeps it: redacted, then cut to logLineMax. A secret that
// starts before the cut is redacted whole, so no part of it is left at the cut.
func (r redactor) line(s string) string {
	cut := len(s) > logLineMax
	if cut {
		s = s[:min(len(s), logLineMax+r.longest)]
	}
	for _, v := range r.values {
		s = strings.ReplaceAll(s, v, redacted)
	}
	for _, f := range r.prints {
		for i := 0; i+f.Length <= len(s); i++ {
			if f.Matches([]byte(s[i : i+f.Length])) {
				s = s[:i] + redacted + s[i+f.Length:]
				i += len(redacted) - 1
			}
		}
	}
	if cut && len(s) > logLineMax {
		s = strings.ToValidUTF8(s[:logLineMax], "") + " [cut]"
	}
	return s
}

// taskLogs reads the last logLines lines of a task through the Engine API (the node that ran
// it answers, where its log driver can be read), redacted; or one line saying why not.
func taskLogs(ctx context.Context, e Engine, t swarm.Task, red redactor) []string {
	ctx, cancel := context.WithTimeout(ctx, logTimeout)
	defer cancel()
	rc, err := e.TaskLogs(ctx, t.ID, container.LogsOptions{ShowStdout: true, ShowStderr: true, Tail: fmt.Sprint(logLines)})
	if err != nil {
		return []string{"(logs cannot be read: " + red.line(err.Error()) + ")"}
	}
	defer rc.Close()
	var buf bytes.Buffer
	src := io.LimitReader(rc, logRead)
	if cs := t.Spec.ContainerSpec; cs != nil && cs.TTY {
		_, err = io.Copy(&buf, src)
	} else {
		_, err = stdcopy.StdCopy(&buf, &buf, src) // one stream: the lines stay in their order
	}
	var lines []string
	sc := bufio.NewScanner(&buf)
	sc.Buffer(make([]byte, 64<<10), logRead)
	for sc.Scan() {
		lines = append(lines, red.line(sc.Text()))
	}
	lines = lines[max(0, len(lines)-logLines):]
	if err != nil {
		lines = append(lines, "(logs cut short: "+red.line(err.Error())+")")
	}
	if len(lines) == 0 {
		lines = []string{"(no log lines)"}
	}
	return lines
}

// failedTaskLogs reads the logs of the failed tasks the status will show for cur's services,
// except those prev already carries: a task's logs are read once.
func failedTaskLogs(ctx context.Context, e Engine, cur *swarmstate.Snapshot, prev *spec.Status, env map[string]string) map[string][]string {
	have := map[string]bool{}
	if prev != nil {
		for _, s := range prev.Services {
			for _, t := range s.Tasks {
				if t.ID != "" && len(t.Logs) > 0 {
					have[t.ID] = true
				}
			}
		}
	}
	var red *redactor
	out := map[string][]string{}
	for _, s := range swarmstate.Converged(cur.Services, cur.Tasks, time.Time{}).Services {
		for _, t := range s.Tasks {
			if !swarmstate.Failed(t) || have[t.ID] {
				continue
			}
			if red == nil {
				r := newRedactor(cur.Secrets, env)
				red = &r
			}
			out[t.ID] = taskLogs(ctx, e, t, *red)
		}
	}
	return out
}
