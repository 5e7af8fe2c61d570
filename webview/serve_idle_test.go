package webview

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"testing"
	"time"
)

// TestServeClosesIdleConnections: a connection kept alive after its request is closed once it
// has been idle for idleTimeout; it was held open, with its goroutine, for good.
func TestServeClosesIdleConnections(t *testing.T) {
	old := idleTimeout
	idleTimeout = 200 * time.Millisecond
	defer func() { idleTimeout = old }()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	served := make(chan error, 1)
	go func() {
		served <- Serve(ctx, ln, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, "ok") }))
	}()
	defer func() {
		cancel()
		if err := <-served; err != nil {
			t.Error(err)
		}
	}()
	if err := idleConnectionCloses(ln.Addr().String(), "/"); err != nil {
		t.Fatal(err)
	}
}

// idleConnectionCloses makes one request on a kept-alive connection to addr, then waits 5 s
// at most for the server to close the connection.
func idleConnectionCloses(addr, path string) error {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: localhost\r\n\r\n", path); err != nil {
		return err
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.Close {
		return errors.New("the server closed the connection after one request: nothing is tested")
	}
	if err := conn.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
		return err
	}
	_, err = br.ReadByte()
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		return errors.New("a kept-alive connection idle for 5 s is still open")
	case err == nil:
		return errors.New("the server sent bytes nobody asked for")
	}
	return nil // closed by the server
}
