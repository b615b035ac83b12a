package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/pushpipe/pushpipe/pipeline"
)

// The API process's /readyz follows Redis: ready while it answers, 503
// within a second and a half of it stopping, ready again once it is back;
// and probing often costs Redis about one PING a second.
func TestReadyzFollowsRedis(t *testing.T) {
	r, rdb := testRedis(t)
	ops := httptest.NewServer(pipeline.OpsHandler(pipeline.NewRegistry(), pipeline.RedisReady(rdb)))
	t.Cleanup(ops.Close)
	readyz := func() int {
		resp, err := http.Get(ops.URL + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	pings := func() int64 {
		info, err := rdb.Do(t.Context(), rdb.B().Info().Section("commandstats").Build()).ToString()
		if err != nil {
			t.Fatal(err)
		}
		_, after, _ := strings.Cut(info, "cmdstat_ping:calls=")
		var n int64
		for _, c := range after {
			if c < '0' || c > '9' {
				break
			}
			n = n*10 + int64(c-'0')
		}
		return n
	}
	until := func(want int, within time.Duration) time.Duration {
		t.Helper()
		start := time.Now()
		for readyz() != want {
			if time.Since(start) > within {
				t.Fatalf("/readyz never answered %d within %v", want, within)
			}
			time.Sleep(20 * time.Millisecond)
		}
		return time.Since(start)
	}
	until(http.StatusOK, 5*time.Second)
	before := pings()
	start := time.Now()
	for range 50 {
		if readyz() != http.StatusOK {
			t.Fatal("not ready with Redis up")
		}
	}
	if n, most := pings()-before, int64(time.Since(start)/time.Second)+2; n > most {
		t.Fatalf("50 probes in %v cost Redis %d PINGs, want at most %d", time.Since(start), n, most)
	}
	if err := r.Kill(); err != nil {
		t.Fatal(err)
	}
	if took := until(http.StatusServiceUnavailable, 5*time.Second); took > 2*time.Second {
		t.Fatalf("/readyz took %v to notice Redis stopped", took)
	}
	if err := r.Restart(); err != nil {
		t.Fatal(err)
	}
	until(http.StatusOK, 10*time.Second)
}
