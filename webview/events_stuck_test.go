package webview

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestEventsStreamOfAClientThatStopsReadingEnds: a client that keeps its connection but stops
// reading (a laptop put to sleep, a stuck proxy) has its stream ended by the hub once it
// falls behind; its handler must then end too, and free the connection. It was blocked for
// good in a write that no deadline bounded: a goroutine, a connection and the socket's
// buffers held for as long as the client's TCP stack lives.
func TestEventsStreamOfAClientThatStopsReadingEnds(t *testing.T) {
	old := writeTimeout
	writeTimeout = 500 * time.Millisecond
	defer func() { writeTimeout = old }()
	f := newView(t)
	h := f.srv.Handler()
	ended := make(chan struct{})
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r)
		if r.URL.Path == "/events" {
			close(ended)
		}
	}))
	defer ts.Close()
	conn, err := net.Dial("tcp", ts.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close() // before the server's Close, which waits for the handler
	if _, err := fmt.Fprintf(conn, "GET /events HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	for !f.srv.hub.listening() {
		time.Sleep(time.Millisecond)
	}
	// The client reads nothing: batches of 1 MiB fill the sockets' buffers and the
	// stream's, and the hub ends the stream.
	row := strings.Repeat("x", 1<<20)
	for i := 0; i < 300 && f.srv.hub.listening(); i++ {
		f.srv.hub.publish([]update{{App: "a", Phase: "Ready", Row: row}})
		time.Sleep(5 * time.Millisecond)
	}
	if f.srv.hub.listening() {
		t.Fatal("the hub kept a stream that read nothing of 300 MiB")
	}
	select {
	case <-ended:
	case <-time.After(10 * time.Second):
		t.Fatal("the stream of a client that stopped reading was ended by the hub, but its handler still waits in a write 10 s later")
	}
}

// TestEventsStreamIdleLongerThanWriteTimeout: the write deadline bounds writes, not the time
// between them: a stream idle for longer than writeTimeout still gets the next event.
func TestEventsStreamIdleLongerThanWriteTimeout(t *testing.T) {
	old := writeTimeout
	writeTimeout = 200 * time.Millisecond
	defer func() { writeTimeout = old }()
	f := newView(t)
	ts := httptest.NewServer(f.srv.Handler())
	defer ts.Close()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel() // before the server's Close, which waits for the stream to end
	stream := openStream(t, ctx, ts.URL+"/events")
	for !f.srv.hub.listening() {
		time.Sleep(time.Millisecond)
	}
	for i := range 2 {
		time.Sleep(3 * writeTimeout)
		f.srv.hub.publish([]update{{App: fmt.Sprint("a", i), Phase: "Ready"}})
		select {
		case u, ok := <-stream:
			if !ok || u.App != fmt.Sprint("a", i) {
				t.Fatalf("event %d after an idle stream: %+v, open %v", i, u, ok)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("no event %d after the stream was idle for %s", i, 3*writeTimeout)
		}
	}
}
