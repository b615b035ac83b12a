package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rs/zerolog"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
)

// The API process's /readyz follows Redis: ready while it answers, 503
// within a second and a half of it stopping, ready again once it is back;
// and probing often costs Redis about one PING a second.
func TestReadyzFollowsRedis(t *testing.T) {
	r, rdb := testRedis(t)
	ops := httptest.NewServer(pipeline.OpsHandler(pipeline.NewRegistry(), pipeline.RedisReady(rdb), zerolog.Nop()))
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
	// until waits for /readyz to answer want; how long a loaded machine
	// takes is the test's patience, a hang guard.
	until := func(want int) {
		t.Helper()
		patience := time.Now().Add(30 * time.Second)
		for readyz() != want {
			if time.Now().After(patience) {
				t.Fatalf("/readyz never answered %d", want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	until(http.StatusOK)
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
	// The bound is on each probe's own time, taken before it is sent: a
	// probe asked a second and a half after Redis stopped (the shared
	// answer lives 1 s, a check gives up after 0.5 s) that is answered
	// ready is the bug, however long a loaded machine takes to answer it
	// or to send the next.
	killed := time.Now()
	for {
		asked := time.Now()
		code := readyz()
		if code == http.StatusServiceUnavailable {
			t.Logf("/readyz noticed Redis stopped %v after", asked.Sub(killed))
			break
		}
		if late := asked.Sub(killed); code != http.StatusOK || late >= 1500*time.Millisecond {
			t.Fatalf("/readyz asked %v after Redis stopped answered %d", late, code)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := r.Restart(); err != nil {
		t.Fatal(err)
	}
	until(http.StatusOK)
}

// /readyz, on a port anyone who reaches it may ask, names what is down in
// fixed words and never the error, which gave away the servers' addresses
// ("redis: dial tcp 10.0.3.7:6379: connect: connection refused"); the error
// goes to the log, once for a run of probes, not once per probe.
func TestReadyzHidesTheError(t *testing.T) {
	r, rdb := testRedis(t)
	pgAddr := pipelinetest.FreeAddr(t) // nothing listens there
	db, err := pgxpool.New(t.Context(), "postgres://pushpipe@"+pgAddr+"/pushpipe?sslmode=disable")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	var logs pipelinetest.Logs
	ready := pipeline.AllReady(pipeline.RedisReady(rdb), pipeline.PostgresReady(db.Ping))
	ops := httptest.NewServer(pipeline.OpsHandler(pipeline.NewRegistry(), ready, zerolog.New(&logs)))
	t.Cleanup(ops.Close)
	if err := r.Kill(); err != nil {
		t.Fatal(err)
	}
	const want = "not ready\nredis: down\npostgresql: down\n"
	for i := range 50 {
		resp, err := http.Get(ops.URL + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable || string(body) != want {
			t.Fatalf("probe %d: %d %q, want 503 %q", i, resp.StatusCode, body, want)
		}
	}
	log := logs.String()
	if n := strings.Count(log, `"not ready"`); n != 1 {
		t.Errorf("50 probes logged %d lines, want 1:\n%s", n, log)
	}
	// Redis's own error may be a bare EOF; PostgreSQL's names the address.
	for _, detail := range []string{"redis: down: ", "postgresql: down: ", pgAddr} {
		if !strings.Contains(log, detail) {
			t.Errorf("the log does not say what failed (%s):\n%s", detail, log)
		}
	}
}
