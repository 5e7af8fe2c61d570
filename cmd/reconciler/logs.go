package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"syscall"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/swarm"
	"github.com/docker/docker/pkg/stdcopy"
	"github.com/spf13/cobra"

	"github.com/swarm-reconciler/reconciler/manifests"
	"github.com/swarm-reconciler/reconciler/swarmstate"
)

// logsEngine is the part of the Engine API logs uses.
type logsEngine interface {
	ServiceList(ctx context.Context, o swarm.ServiceListOptions) ([]swarm.Service, error)
	ServiceLogs(ctx context.Context, id string, o container.LogsOptions) (io.ReadCloser, error)
}

func logsCmd(o *options) *cobra.Command {
	var (
		service, tail, since string
		follow, timestamps   bool
	)
	cmd := &cobra.Command{
		Use:   "logs APP",
		Short: "Print the logs of an app's services",
		Long: "logs prints the log lines of every service of APP (the services this spec directory's\n" +
			"reconciler owns), each line prefixed with its service and task, as `docker service logs`\n" +
			"does, through the Engine API: tasks on other nodes are read where their log driver allows.\n" +
			"A teardown's own jobs on other nodes are left out unless named in full with --service.\n" +
			"--follow streams new lines until interrupted (Ctrl-C).",
		Example: "  reconciler logs ch-1a2b3c\n" +
			"  reconciler logs ch-1a2b3c --service app --tail 50\n" +
			"  reconciler logs ch-1a2b3c --follow --since 10m",
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: completeApps(o),
		RunE: func(cmd *cobra.Command, args []string) error {
			engine, err := newEngine()
			if err != nil {
				return err
			}
			defer engine.Close()
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			lo := container.LogsOptions{ShowStdout: true, ShowStderr: true, Details: true,
				Follow: follow, Tail: tail, Since: since, Timestamps: timestamps}
			err = printLogs(ctx, engine, swarmstate.Owner{App: args[0], Dir: o.ownerOf(o.specs)}, service, lo, cmd.OutOrStdout())
			if ctx.Err() != nil && cmd.Context().Err() == nil {
				return nil // interrupted: the way a --follow ends
			}
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&service, "service", "", "only this service (its name in the recipe, e.g. app)")
	f.StringVar(&tail, "tail", "all", "lines from the end of each task's log")
	f.StringVar(&since, "since", "", "only lines since a time (2026-12-01T10:00:00Z) or for a duration (10m)")
	f.BoolVarP(&follow, "follow", "f", false, "stream new lines until interrupted")
	f.BoolVarP(&timestamps, "timestamps", "t", false, "show each line's time")
	return cmd
}

// printLogs writes the log lines of owner's services (only the one named service, when set)
// to out, all services at once, a line at a time.
func printLogs(ctx context.Context, e logsEngine, owner swarmstate.Owner, service string, lo container.LogsOptions, out io.Writer) error {
	list, err := e.ServiceList(ctx, swarm.ServiceListOptions{Filters: filters.NewArgs(
		filters.Arg("label", manifests.LabelApp+"="+owner.App), filters.Arg("label", manifests.LabelOwner+"="+owner.Dir))})
	if err != nil {
		return fmt.Errorf("list the services of %s: %w", owner.App, err)
	}
	var services []swarm.Service
	var names []string
	for _, s := range list {
		short := shortName(s)
		if s.Spec.Labels[swarmstate.LabelJob] != "" && service != s.Spec.Name {
			continue // the reconciler's own job (a teardown's on another node): by its full name only
		}
		names = append(names, short)
		if service == "" || short == service || s.Spec.Name == service {
			services = append(services, s)
		}
	}
	slices.Sort(names)
	switch {
	case len(list) == 0:
		return fmt.Errorf("app %s has no services that this reconciler owns: see `reconciler status %s` (and pass the --specs it runs with)", owner.App, owner.App)
	case len(services) == 0:
		return fmt.Errorf("app %s has no service %q: it has %s", owner.App, service, strings.Join(names, ", "))
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	errs := make([]error, len(services))
	for i, s := range services {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = serviceLogs(ctx, e, s, lo, &lineWriter{mu: &mu, out: out, service: shortName(s), timestamps: lo.Timestamps})
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func serviceLogs(ctx context.Context, e logsEngine, s swarm.Service, lo container.LogsOptions, w *lineWriter) error {
	rc, err := e.ServiceLogs(ctx, s.ID, lo)
	if err != nil {
		return fmt.Errorf("logs of %s: %w", s.Spec.Name, err)
	}
	defer rc.Close()
	if cs := s.Spec.TaskTemplate.ContainerSpec; cs != nil && cs.TTY {
		_, err = io.Copy(w, rc)
	} else {
		_, err = stdcopy.StdCopy(w, w, rc)
	}
	if err != nil && ctx.Err() == nil {
		return fmt.Errorf("logs of %s: %w", s.Spec.Name, err)
	}
	return w.flush()
}

// shortName is a service's name in its recipe: without its stack's prefix.
func shortName(s swarm.Service) string {
	if ns := s.Spec.Labels[swarmstate.LabelNamespace]; ns != "" {
		if n, ok := strings.CutPrefix(s.Spec.Name, ns+"_"); ok {
			return n
		}
	}
	return s.Spec.Name
}

// lineWriter prints a service's log stream a line at a time as "service.task | message". The
// engine sends each line with its details first (details=true: "k=v,k=v message", after the
// time with timestamps); the task ID comes from them.
type lineWriter struct {
	mu         *sync.Mutex
	out        io.Writer
	service    string
	timestamps bool
	partial    []byte
}

// maxLogLine is how much of a line without its end is held before it is printed as it is: a
// progress bar redrawn with \r, or a terminal's stream, may never end a line.
const maxLogLine = 64 << 10

func (w *lineWriter) Write(b []byte) (int, error) {
	w.partial = append(w.partial, b...)
	for {
		n := bytes.IndexByte(w.partial, '\n')
		switch {
		case n >= 0:
			if err := w.line(string(w.partial[:n])); err != nil {
				return 0, err
			}
			w.partial = w.partial[n+1:]
		case len(w.partial) >= maxLogLine:
			if err := w.line(string(w.partial[:maxLogLine])); err != nil {
				return 0, err
			}
			w.partial = w.partial[maxLogLine:]
		default:
			return len(b), nil
		}
	}
}

func (w *lineWriter) flush() error {
	if len(w.partial) == 0 {
		return nil
	}
	err := w.line(string(w.partial))
	w.partial = nil
	return err
}

func (w *lineWriter) line(s string) error {
	var ts string
	if w.timestamps {
		ts, s, _ = strings.Cut(s, " ")
		ts += " "
	}
	task := ""
	if details, msg, ok := strings.Cut(s, " "); ok && strings.Contains(details, "=") {
		if v, err := url.ParseQuery(strings.ReplaceAll(details, ",", "&")); err == nil {
			s = msg
			if id := v.Get("com.docker.swarm.task.id"); id != "" {
				task = "." + id[:min(len(id), 12)]
			}
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	_, err := fmt.Fprintf(w.out, "%s%s%s | %s\n", ts, w.service, task, s)
	return err
}
