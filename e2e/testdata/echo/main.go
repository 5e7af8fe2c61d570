// Command echo is the e2e suite's test image: a tiny HTTP server, built static and packaged
// FROM scratch, so the suite needs no registry.
//
//	GET /         the value of $MESSAGE
//	GET /healthz  "ok"
//	GET /config   the content of the file named by $CONFIG_FILE (a swarm config mount)
//	GET /secret   the length of the file named by $SECRET_FILE (a swarm secret mount), not
//	              its content
//	GET /secret-value         the content of the file named by $SECRET_FILE, for the secret
//	                          tests only: they check the generated value and grep for it
//	GET /secret-value/{name}  the content of /run/secrets/{name} (one path element)
//
// It listens on :$PORT (default 8080) and exits cleanly on SIGTERM. With $CRASH set it exits
// 3 at once: a release whose tasks never stay up, for the rollback tests. With $HEALTHY_AFTER
// (a Go duration) /healthz answers 503 until that long after the start. With $CRASH_AFTER (a
// Go duration) it serves, then exits 3 that long after the start: an app that loses its
// database a moment after it came up, for the stability window's tests. With $PRINT_SECRET
// set it logs the content of $SECRET_FILE at the start, as a careless app does, for the tests
// that the reconciler redacts it.
//
// With $POISON_FILE set (a path on a volume), POST /poison creates that file and exits 3, and
// a start that finds the file exits 3 at once: a live app turned into a crash loop that no
// update of its service can end, for the tests of an app that stays Degraded.
//
// `echo check` is a healthcheck command (the image has no shell): it exits 0 when
// http://127.0.0.1:$PORT/healthz answers 200, 1 otherwise.
package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "check" {
		os.Exit(check())
	}
	if os.Getenv("CRASH") != "" {
		log.Print("echo: CRASH is set: exiting")
		os.Exit(3)
	}
	poison := os.Getenv("POISON_FILE")
	if poison != "" {
		if _, err := os.Stat(poison); err == nil {
			log.Printf("echo: %s exists: exiting", poison)
			os.Exit(3)
		}
	}
	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}
	message := os.Getenv("MESSAGE")
	started := time.Now()
	var healthyAfter time.Duration
	if v := os.Getenv("HEALTHY_AFTER"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			log.Fatalf("echo: HEALTHY_AFTER: %v", err)
		}
		healthyAfter = d
	}

	if os.Getenv("PRINT_SECRET") != "" {
		b, err := os.ReadFile(os.Getenv("SECRET_FILE"))
		log.Printf("echo: the secret is %s (read error: %v)", b, err)
	}
	if v := os.Getenv("CRASH_AFTER"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			log.Fatalf("echo: CRASH_AFTER: %v", err)
		}
		time.AfterFunc(d, func() {
			log.Printf("echo: CRASH_AFTER %s passed: exiting", d)
			os.Exit(3)
		})
	}

	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprint(w, message)
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		if time.Since(started) < healthyAfter {
			http.Error(w, "not healthy yet", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprint(w, "ok")
	})
	// readFile answers 404 with the error when path cannot be read.
	readFile := func(w http.ResponseWriter, path string) ([]byte, bool) {
		b, err := os.ReadFile(path)
		if err != nil {
			http.Error(w, err.Error(), http.StatusNotFound)
			return nil, false
		}
		return b, true
	}
	// envFile reads the file named by the environment variable env; 404 when it is not set.
	envFile := func(w http.ResponseWriter, env string) ([]byte, bool) {
		path := os.Getenv(env)
		if path == "" {
			http.Error(w, env+" is not set", http.StatusNotFound)
			return nil, false
		}
		return readFile(w, path)
	}
	mux.HandleFunc("GET /config", func(w http.ResponseWriter, _ *http.Request) {
		if b, ok := envFile(w, "CONFIG_FILE"); ok {
			w.Write(b)
		}
	})
	mux.HandleFunc("GET /secret", func(w http.ResponseWriter, _ *http.Request) {
		if b, ok := envFile(w, "SECRET_FILE"); ok {
			fmt.Fprint(w, len(b))
		}
	})
	// The secret's content, for the e2e secret tests only (a real app never serves it).
	mux.HandleFunc("GET /secret-value", func(w http.ResponseWriter, _ *http.Request) {
		if b, ok := envFile(w, "SECRET_FILE"); ok {
			w.Write(b)
		}
	})
	mux.HandleFunc("GET /secret-value/{name}", func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("name")
		if name == "" || name == "." || name == ".." || strings.ContainsAny(name, `/\`) {
			http.Error(w, "not a secret name", http.StatusBadRequest)
			return
		}
		if b, ok := readFile(w, "/run/secrets/"+name); ok {
			w.Write(b)
		}
	})

	mux.HandleFunc("POST /poison", func(w http.ResponseWriter, _ *http.Request) {
		if poison == "" {
			http.Error(w, "POISON_FILE is not set", http.StatusNotFound)
			return
		}
		if err := os.WriteFile(poison, []byte("poisoned\n"), 0o644); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		fmt.Fprint(w, "poisoned")
		w.(http.Flusher).Flush()
		go func() {
			time.Sleep(100 * time.Millisecond) // the answer leaves first
			log.Printf("echo: poisoned: exiting")
			os.Exit(3)
		}()
	})

	srv := &http.Server{Addr: ":" + port, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(shutdown)
	}()
	log.Printf("echo: listening on :%s", port)
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Fatal(err)
	}
}

// check is the healthcheck: GET /healthz on the local port.
func check() int {
	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get("http://127.0.0.1:" + port + "/healthz")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintln(os.Stderr, resp.Status)
		return 1
	}
	return 0
}
