package pipeline_test

import (
	"context"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/pushpipe/pushpipe/pipeline"
)

// TestHeaderCap: every listener (the API's and the ops port) refuses
// headers past pipeline.MaxHeaderBytes with 431, and serves requests with
// headers of any real client's size. (Past the cap only by a little: the
// whole request fits the socket's buffers, so the client reads the 431
// rather than a reset while it still writes.)
func TestHeaderCap(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- pipeline.ServeListener(ctx, ln, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}), zerolog.Nop())
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
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
