package console_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/redis/rueidis"
	"github.com/rs/zerolog"

	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
	"github.com/pushpipe/pushpipe/stages/api"
)

// cancelAt is the real client that cancels the request it serves at its
// round trip number at (from 0): the browser leaving at that moment.
type cancelAt struct {
	rueidis.Client
	at     int64
	n      atomic.Int64
	cancel context.CancelFunc
}

func (c *cancelAt) tick() {
	if c.n.Add(1)-1 == c.at {
		c.cancel()
	}
}

func (c *cancelAt) Do(ctx context.Context, cmd rueidis.Completed) rueidis.RedisResult {
	c.tick()
	return c.Client.Do(ctx, cmd)
}

func (c *cancelAt) DoMulti(ctx context.Context, cmds ...rueidis.Completed) []rueidis.RedisResult {
	c.tick()
	return c.Client.DoMulti(ctx, cmds...)
}

// TestCanceledRequestIsNoOutage: a request the browser cancels part way (a
// page left while it loads) is no outage, and the API's log does not warn
// of one. It logged "console: Pipeline status is unavailable" with
// "context canceled", and on-call looked for a server that was down.
func TestCanceledRequestIsNoOutage(t *testing.T) {
	t.Parallel()
	b := newHTTPBed(t)
	b.get("/ui/pipeline") // signs in: b.session
	tests := []struct {
		name string
		path string
		at   int64 // the round trip to Redis the browser leaves at
	}{
		{"pipeline, at the session", "/ui/pipeline", 0},
		{"pipeline, at its figures", "/ui/pipeline", 1},
		{"pipeline's live part, at its figures", "/ui/pipeline/live", 1},
		{"dead letters, at the list", "/ui/deadletters", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			rdb := &cancelAt{Client: b.rdb, at: tt.at, cancel: cancel}
			logs := &pipelinetest.Logs{}
			h := api.New(api.Config{Redis: rdb, DB: b.db, Keys: b.keys, Log: zerolog.New(logs),
				Auth: api.Auth{AdminToken: adminToken, AppKeys: map[string]string{app: appKey}}})
			req := httptest.NewRequestWithContext(ctx, http.MethodGet, tt.path, nil)
			req.AddCookie(b.session)
			h.ServeHTTP(httptest.NewRecorder(), req)
			if rdb.n.Load() <= tt.at {
				t.Fatalf("%d round trips to Redis, the request was never canceled", rdb.n.Load())
			}
			for line := range strings.SplitSeq(logs.String(), "\n") {
				if strings.Contains(line, `"level":"warn"`) || strings.Contains(line, `"level":"error"`) {
					t.Errorf("a canceled request logged %s", line)
				}
			}
		})
	}
}
