package pipeline_test

import (
	"bufio"
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/pushpipe/pushpipe/pipeline"
)

// TestHeaderCap: every listener (the API's and the ops port) refuses
// headers past pipeline.MaxHeaderBytes with 431, and serves requests with
// headers of any real client's size. (Past the cap only by a little: the
// whole request fits the socket's buffers, so the client reads the 431
// rather than a reset while it still writes.)
func TestHeaderCap(t *testing.T) {
	ln := serving(t, func(ctx context.Context, ln net.Listener) error {
		return pipeline.ServeListener(ctx, ln, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}), zerolog.Nop())
	})
	tests := []struct {
		name   string
		header int // bytes of one header's value
		want   int
	}{
		{"a bearer token", 64, http.StatusOK},
		{"a browser's cookies", 16 << 10, http.StatusOK},
		{"past the cap", pipeline.MaxHeaderBytes + 8<<10, http.StatusRequestHeaderFieldsTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequestWithContext(t.Context(), "GET", "http://"+ln.Addr().String()+"/", nil)
			req.Header.Set("X-Filler", strings.Repeat("a", tt.header))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.want {
				t.Errorf("%d bytes of header: %d, want %d", tt.header, resp.StatusCode, tt.want)
			}
		})
	}
}

// TestOpsConnectionCap: the --http port serves at most OpsConns connections
// at once, so whoever reaches it cannot take the descriptors the process
// needs for Redis and PostgreSQL; one past the cap is served as soon as a
// connection closes.
func TestOpsConnectionCap(t *testing.T) {
	ln := serving(t, func(ctx context.Context, ln net.Listener) error {
		return pipeline.ServeOps(ctx, ln, pipeline.OpsHandler(pipeline.NewRegistry(), nil, zerolog.Nop()), zerolog.Nop())
	})
	var held []net.Conn
	t.Cleanup(func() { // before serving's own: the server waits for them
		for _, c := range held {
			c.Close()
		}
	})
	// get sends GET /healthz on a new connection, kept open afterwards.
	get := func() (net.Conn, *bufio.Reader) {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
		if _, err := c.Write([]byte("GET /healthz HTTP/1.1\r\nHost: ops\r\n\r\n")); err != nil {
			t.Fatal(err)
		}
		return c, bufio.NewReader(c)
	}
	answered := func(c net.Conn, br *bufio.Reader, within time.Duration) bool {
		c.SetReadDeadline(time.Now().Add(within))
		resp, err := http.ReadResponse(br, nil)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return false
		}
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}
	for i := 0; i < pipeline.OpsConns; i++ {
		if c, br := get(); !answered(c, br, 10*time.Second) {
			t.Fatalf("connection %d of %d not served", i+1, pipeline.OpsConns)
		}
	}
	extra, br := get()
	if answered(extra, br, time.Second) {
		t.Fatalf("connection %d served while %d are open", pipeline.OpsConns+1, pipeline.OpsConns)
	}
	held[0].Close()
	if !answered(extra, br, 10*time.Second) {
		t.Fatal("the connection past the cap was not served once one closed")
	}
}

// serving runs serve on a new loopback listener until the test ends (then
// it must return nil), and returns the listener.
func serving(t *testing.T, serve func(ctx context.Context, ln net.Listener) error) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return ln
}
