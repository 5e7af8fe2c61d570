package webview

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/go-logr/logr"

	"github.com/swarm-reconciler/reconciler/spec"
)

// update is one "app" event: the app's new row of the list ("" once its status is gone), and
// the counts per phase, rendered as the list renders them.
type update struct {
	App    string `json:"app"`
	Phase  string `json:"phase,omitempty"`
	Row    string `json:"row,omitempty"`
	Counts string `json:"counts"`
	Total  int    `json:"total"`
}

// coalesce is how long changes gather before they are sent: a pass writes an app's status
// once, but a resync writes many.
const coalesce = 50 * time.Millisecond

// hub hands the updates of each coalesced batch to the open event streams, a batch at a time:
// a resync, or a node going down, changes many apps at once, and a stream that reads as fast
// as it can must not be ended for that. A stream that falls 64 batches behind (seconds) cannot
// keep up, and is ended; its page reconnects and reads itself again.
type hub struct {
	mu   sync.Mutex
	subs map[chan []update]struct{}
}

func newHub() *hub { return &hub{subs: map[chan []update]struct{}{}} }

func (h *hub) subscribe() (<-chan []update, func()) {
	ch := make(chan []update, 64)
	h.mu.Lock()
	h.subs[ch] = struct{}{}
	h.mu.Unlock()
	return ch, func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		if _, ok := h.subs[ch]; ok {
			delete(h.subs, ch)
			close(ch)
		}
	}
}

func (h *hub) listening() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.subs) > 0
}

func (h *hub) publish(batch []update) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for ch := range h.subs {
		select {
		case ch <- batch:
		default: // too slow: end its stream rather than hold everyone up
			delete(h.subs, ch)
			close(ch)
		}
	}
}

// watch follows dir's status files until ctx ends; the apps whose file changed are built into
// updates (only while a page listens) and published.
func (h *hub) watch(ctx context.Context, dir string, build func(apps []string) []update, log logr.Logger) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("web view: watch %s: %w", dir, err)
	}
	defer w.Close()
	if err := w.Add(dir); err != nil {
		return fmt.Errorf("web view: watch %s: %w", dir, err)
	}
	pending := map[string]bool{}
	timer := time.NewTimer(0)
	<-timer.C
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return nil
			}
			name := filepath.Base(ev.Name)
			app, isStatus := strings.CutSuffix(name, ".json")
			if !isStatus || strings.HasPrefix(name, ".") || ev.Op == fsnotify.Chmod {
				continue
			}
			if len(pending) == 0 {
				timer.Reset(coalesce)
			}
			pending[app] = true
		case <-timer.C:
			apps := make([]string, 0, len(pending))
			for app := range pending {
				apps = append(apps, app)
			}
			clear(pending)
			if !h.listening() {
				continue
			}
			if batch := build(apps); len(batch) > 0 {
				h.publish(batch)
			}
		case err, ok := <-w.Errors:
			if !ok {
				return nil
			}
			log.Error(err, "web view: watching the status directory; pages update on reload", "dir", dir)
		}
	}
}

// updates builds the events of the apps whose status files changed.
func (s *Server) updates(apps []string) []update {
	all, _ := spec.ListStatus(s.StatusDir) // a file that cannot be read is shown by the list
	var counted bytes.Buffer
	if err := templates.ExecuteTemplate(&counted, "counts", counts(all, "")); err != nil {
		s.Log.Error(err, "render web view counts")
		return nil
	}
	byApp := make(map[string]*spec.Status, len(all))
	for _, st := range all {
		byApp[st.App] = st
	}
	now := s.now()
	out := make([]update, 0, len(apps))
	for _, app := range apps {
		u := update{App: app, Counts: counted.String(), Total: len(all)}
		if st := byApp[app]; st != nil {
			var b bytes.Buffer
			r := s.rowOf(st, now)
			if err := templates.ExecuteTemplate(&b, "row", r); err != nil {
				s.Log.Error(err, "render web view row", "app", app)
				continue
			}
			u.Row, u.Phase = b.String(), r.Phase
		}
		out = append(out, u)
	}
	return out
}

// writeTimeout bounds each write to an event stream: a client that stops reading (a laptop
// put to sleep, a stuck proxy) ends its stream instead of holding its handler, its connection
// and their buffers for good.
var writeTimeout = 10 * time.Second

// events is the stream of "app" events, of every app or, with ?app=, of one.
func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	if _, ok := w.(http.Flusher); !ok {
		http.Error(w, "streaming is not supported here", http.StatusInternalServerError)
		return
	}
	rc := http.NewResponseController(w)
	// send writes what write writes and flushes it, each write within writeTimeout; false
	// when the client is gone or does not read.
	send := func(write func() error) bool {
		_ = rc.SetWriteDeadline(time.Now().Add(writeTimeout))
		return write() == nil && rc.Flush() == nil
	}
	only := r.URL.Query().Get("app")
	ch, stop := s.hub.subscribe()
	defer stop()
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // a proxy in front must not hold events back
	if !send(func() error { _, err := fmt.Fprint(w, "retry: 2000\n: connected\n\n"); return err }) {
		return
	}
	ping := time.NewTicker(30 * time.Second) // keeps proxies from closing an idle stream
	defer ping.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-ping.C:
			if !send(func() error { _, err := fmt.Fprint(w, ": ping\n\n"); return err }) {
				return
			}
		case batch, ok := <-ch:
			if !ok {
				return
			}
			if !send(func() error {
				for _, u := range batch {
					if only != "" && u.App != only {
						continue
					}
					data, err := json.Marshal(u)
					if err != nil {
						continue
					}
					_ = rc.SetWriteDeadline(time.Now().Add(writeTimeout)) // per event: a batch may be large
					if _, err := fmt.Fprintf(w, "event: app\ndata: %s\n\n", data); err != nil {
						return err
					}
				}
				return nil
			}) {
				return
			}
		}
	}
}
