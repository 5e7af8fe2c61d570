// Package webview is the operators' read-only web view of the reconciler: every app with its
// phase at a glance (/), one app's status as a person reads it (/apps/APP), and live updates
// of both through server-sent events (/events) when a status file changes. It reads the status
// and spec directories the controller writes and reads; it never talks to Docker and never
// changes anything.
package webview

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"golang.org/x/crypto/bcrypt"

	"github.com/swarm-reconciler/reconciler/spec"
)

// Server serves the web view of one status directory and its spec directory.
type Server struct {
	StatusDir string
	SpecsDir  string
	// Defaults are the spec defaults of the reconciler, to find an app's spec as it does.
	Defaults spec.Defaults
	// Users, when set, are the basic-auth users (name to bcrypt hash) every request must
	// name; nil serves without authentication (loopback only: see CheckExposure).
	Users map[string][]byte
	// Now is the clock ages are computed with (time.Now when nil).
	Now func() time.Time
	Log logr.Logger

	hub *hub
}

// New returns a Server of the status and spec directories.
func New(statusDir, specsDir string, d spec.Defaults, log logr.Logger) *Server {
	return &Server{StatusDir: statusDir, SpecsDir: specsDir, Defaults: d, Log: log, hub: newHub()}
}

func (s *Server) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// Handler routes the view's pages; mount it at / of a server of its own or of the metrics
// server.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", s.index)
	mux.HandleFunc("GET /apps/{app}", s.app)
	mux.HandleFunc("GET /events", s.events)
	mux.HandleFunc("GET /style.css", static("style.css", "text/css; charset=utf-8"))
	mux.HandleFunc("GET /live.js", static("live.js", "text/javascript; charset=utf-8"))
	var h http.Handler = mux
	if s.Users != nil {
		h = s.basicAuth(h)
	}
	return secureHeaders(h)
}

// Watch follows the status directory until ctx ends and tells the pages that stream events
// which apps changed. Without it the pages still show the current state on every load.
func (s *Server) Watch(ctx context.Context) error {
	return s.hub.watch(ctx, s.StatusDir, s.updates, s.Log)
}

// secureHeaders forbids what a read-only page of plain HTML never needs: framing, scripts
// and styles from elsewhere, and sniffing content types.
func secureHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'")
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Referrer-Policy", "same-origin")
		h.ServeHTTP(w, r)
	})
}

// basicAuth answers 401 to a request without a known user and its password.
func (s *Server) basicAuth(h http.Handler) http.Handler {
	// A hash to compare with when the user is unknown, so that the answer takes as long.
	dummy, _ := bcrypt.GenerateFromPassword([]byte("unknown user"), bcrypt.MinCost)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, pass, ok := r.BasicAuth()
		hash, known := s.Users[user]
		if !known {
			hash = dummy
		}
		wrong := bcrypt.CompareHashAndPassword(hash, []byte(pass)) != nil
		if !ok || !known || wrong {
			w.Header().Set("WWW-Authenticate", `Basic realm="swarm-reconciler", charset="UTF-8"`)
			http.Error(w, "authentication required", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// ReadUsers reads a basic-auth file in htpasswd's bcrypt form, a "user:hash" line each
// (`htpasswd -nB user` writes one); blank lines and # comments are skipped. Other hash
// forms (MD5, SHA-1, crypt, plain text) are refused: they are not safe to keep.
func ReadUsers(path string) (map[string][]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read --ui-basic-auth file: %w", err)
	}
	users := map[string][]byte{}
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		user, hash, ok := strings.Cut(line, ":")
		if !ok || user == "" {
			return nil, fmt.Errorf("%s, line %d: want user:bcrypt-hash, as `htpasswd -nB USER` writes", path, i+1)
		}
		if _, err := bcrypt.Cost([]byte(hash)); err != nil {
			return nil, fmt.Errorf("%s, line %d: user %s: not a bcrypt hash (%v); make one with `htpasswd -nB %s`", path, i+1, user, err, user)
		}
		users[user] = []byte(hash)
	}
	if len(users) == 0 {
		return nil, fmt.Errorf("%s names no user: add a line made by `htpasswd -nB USER`", path)
	}
	return users, nil
}

// CheckExposure refuses to serve the view without authentication on an address other hosts
// can reach: the pages say what runs on the swarm and why it fails.
func CheckExposure(addr string, auth bool) error {
	if auth {
		return nil
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("--ui-addr %s: %w", addr, err)
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("--ui-addr %s listens beyond this host: serve it on 127.0.0.1 (and reach it through an SSH tunnel or a proxy), or set --ui-basic-auth FILE", addr)
}

// idleTimeout is how long a kept-alive connection may wait for its next request: without it,
// a connection that made one request is held open, with its goroutine, for good, and enough
// of them exhaust the process's file descriptors (the metrics address is served here too).
var idleTimeout = 2 * time.Minute

// Serve serves h on ln until ctx ends.
func Serve(ctx context.Context, ln net.Listener, h http.Handler) error {
	// Requests live in ctx, so that the event streams, which never end on their own, end
	// with it.
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: idleTimeout,
		BaseContext: func(net.Listener) context.Context { return ctx }}
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve on %s: %w", ln.Addr(), err)
	}
	return nil
}
