package controller

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"slices"
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
	// logKeep is how much of the end of a task's last lines is kept to be split into lines, and
	// logRead bounds what is read of them at all.
	logKeep = 256 << 10
	logRead = 4 << 20
	// logTimeout bounds the log reads of one pass: a log driver that hangs, or a node that is
	// down, must not hold the pass. What was not read by then is read by a later pass.
	logTimeout = 3 * time.Second
	redacted   = "[redacted]"
)

// redactor removes secret values from log lines: those it knows (the spec's env values whose
// names say they are secret) and those it can recognise by their fingerprint (the secrets the
// reconciler generated or was given, whose values it never keeps).
type redactor struct {
	values []string
	prints []manifests.Fingerprint
}

// newRedactor is the redactor of an app with these secrets and spec env.
func newRedactor(secrets []swarm.Secret, env map[string]string) redactor {
	var r redactor
	for _, s := range secrets {
		if f, err := manifests.ParseFingerprint(s.Spec.Labels[manifests.LabelFingerprint]); err == nil {
			r.prints = append(r.prints, f)
		}
		r.prints = append(r.prints, manifests.ParseLineFingerprints(s.Spec.Labels[manifests.LabelLineFingerprints])...)
	}
	for k, v := range env {
		if !spec.SecretName(k) {
			continue
		}
		if len(v) >= 4 {
			r.values = append(r.values, v)
		}
		// A value written as a YAML block ends in a newline, which no line holds.
		if t := strings.TrimRight(v, "\r\n"); t != v && len(t) >= 4 && !strings.Contains(t, "\n") {
			r.values = append(r.values, t)
		}
		// Logs are read a line at a time: a value of several lines (a PEM key) is found by
		// each of its lines that could not be any line.
		if lines := strings.Split(v, "\n"); len(lines) > 1 {
			for _, l := range lines {
				if l = strings.TrimSpace(l); len(l) >= 8 {
					r.values = append(r.values, l)
				}
			}
		}
	}
	return r
}

// line is one log line as the status keeps it: redacted, then cut to logLineMax bytes of the
// original. The secrets are found in the original line first, and one that starts before the
// cut is replaced whole, so no part of a secret is left at the cut.
func (r redactor) line(s string) string {
	type span struct{ from, to int }
	var spans []span
	for _, v := range r.values {
		for i := 0; i < min(len(s), logLineMax); {
			j := strings.Index(s[i:], v)
			if j < 0 || i+j >= logLineMax {
				break
			}
			spans = append(spans, span{i + j, i + j + len(v)})
			i += j + len(v)
		}
	}
	for _, f := range r.prints {
		for i := 0; i < logLineMax && i+f.Length <= len(s); i++ {
			if f.Matches([]byte(s[i : i+f.Length])) {
				spans = append(spans, span{i, i + f.Length})
				i += f.Length - 1
			}
		}
	}
	slices.SortFunc(spans, func(a, b span) int { return a.from - b.from })
	var out strings.Builder
	pos := 0
	for _, sp := range spans {
		if sp.to <= pos {
			continue // inside a span already replaced
		}
		if sp.from > pos {
			out.WriteString(s[pos:sp.from])
		}
		out.WriteString(redacted)
		pos = sp.to
	}
	if pos < logLineMax {
		out.WriteString(s[pos:min(len(s), logLineMax)])
	}
	if len(s) > max(pos, logLineMax) {
		return strings.ToValidUTF8(out.String(), "") + " [cut]"
	}
	return out.String()
}

// taskLogs reads the last logLines lines of a task through the Engine API (the node that ran
// it answers, where its log driver can be read), redacted; or one line saying why not.
func taskLogs(ctx context.Context, e Engine, t swarm.Task, red redactor) []string {
	rc, err := e.TaskLogs(ctx, t.ID, container.LogsOptions{ShowStdout: true, ShowStderr: true, Tail: fmt.Sprint(logLines)})
	if err != nil && ctx.Err() != nil {
		return nil // out of time: a later pass reads them
	} else if err != nil {
		return []string{"(logs cannot be read: " + red.line(err.Error()) + ")"}
	}
	defer rc.Close()
	buf := &lastBytes{n: logKeep}
	src := &io.LimitedReader{R: rc, N: logRead + 1}
	if cs := t.Spec.ContainerSpec; cs != nil && cs.TTY {
		_, err = io.Copy(buf, src)
	} else {
		_, err = stdcopy.StdCopy(buf, buf, src) // one stream: the lines stay in their order
	}
	if err != nil && ctx.Err() != nil {
		return nil
	}
	data, partial := buf.bytes()
	if partial {
		// The first line kept is the end of a longer one: a secret in it would be cut, and
		// found by no redaction.
		_, data, _ = bytes.Cut(data, []byte("\n"))
	}
	unread := src.N <= 0
	if unread {
		err = nil // the frame our limit cut short: not the engine's fault
		// The same at the other end: the read stopped inside a line.
		if i := bytes.LastIndexByte(data, '\n'); i >= 0 {
			data = data[:i]
		} else {
			data = nil
		}
	}
	var lines []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), logKeep)
	for sc.Scan() {
		lines = append(lines, red.line(sc.Text()))
	}
	lines = lines[max(0, len(lines)-logLines):]
	switch {
	case unread:
		lines = append(lines, fmt.Sprintf("(logs cut short: the last %d lines are over %d MiB; these are the last read)", logLines, logRead>>20))
	case buf.dropped && len(lines) < logLines:
		lines = append([]string{fmt.Sprintf("(earlier lines cut: the last %d lines are over %d KiB)", logLines, logKeep>>10)}, lines...)
	}
	if err != nil {
		lines = append(lines, "(logs cut short: "+red.line(err.Error())+")")
	}
	if len(lines) == 0 {
		lines = []string{"(no log lines)"}
	}
	return lines
}

// lastBytes keeps the last n bytes written to it.
type lastBytes struct {
	buf     []byte
	n       int
	dropped bool // whether bytes found that earlier ones were dropped
}

func (l *lastBytes) Write(p []byte) (int, error) {
	l.buf = append(l.buf, p...)
	if len(l.buf) > 2*l.n {
		// One byte more than is kept: it says whether the kept ones start a line.
		l.buf = append(l.buf[:0], l.buf[len(l.buf)-l.n-1:]...)
	}
	return len(p), nil
}

// bytes are the last n bytes written, and whether they start inside a line (earlier bytes
// were dropped, and the last of them was not a line's end). It sets dropped.
func (l *lastBytes) bytes() ([]byte, bool) {
	if len(l.buf) <= l.n {
		return l.buf, false
	}
	l.dropped = true
	at := len(l.buf) - l.n
	return l.buf[at:], l.buf[at-1] != '\n'
}

// failedTaskLogs reads the logs of the tasks logsWanted names, within logTimeout.
func failedTaskLogs(ctx context.Context, e Engine, cur *swarmstate.Snapshot, prev *spec.Status, env map[string]string) map[string][]string {
	wanted := logsWanted(cur, prev)
	if len(wanted) == 0 {
		return map[string][]string{}
	}
	ctx, cancel := context.WithTimeout(ctx, logTimeout)
	defer cancel()
	red := newRedactor(cur.Secrets, env)
	out := map[string][]string{}
	for _, t := range wanted {
		if l := taskLogs(ctx, e, t, red); l != nil {
			out[t.ID] = l
		}
	}
	return out
}

// logsWanted are the failed tasks the status will show for cur's services whose logs prev
// does not carry yet: a task's logs are read once.
func logsWanted(cur *swarmstate.Snapshot, prev *spec.Status) []swarm.Task {
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
	var out []swarm.Task
	for _, s := range swarmstate.Converged(cur.Services, cur.Tasks, time.Time{}).Services {
		for _, t := range s.Tasks {
			if swarmstate.Failed(t) && !have[t.ID] {
				out = append(out, t)
			}
		}
	}
	return out
}
