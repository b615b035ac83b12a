package api

import (
	"encoding/json"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/rueidis"
	"github.com/rs/zerolog"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/campaign"
	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
)

// newAPIOwnPostgres is newDeviceAPI on a PostgreSQL server of the test's
// own, which the test may stop: the package's shared one serves the other
// tests.
func newAPIOwnPostgres(t *testing.T) (*deviceAPI, *pipelinetest.Postgres, *pipelinetest.Logs) {
	t.Helper()
	pg := pipelinetest.PostgresT(t)
	_, db := pipelinetest.MigratedT(t, pg)
	seedAudience(t, db)
	rdb, err := pipeline.NewRedis(env.Redis.Addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rdb.Close)
	keys := pipeline.NewKeys("t"+strconv.FormatUint(rand.Uint64(), 36), 16)
	logs := &pipelinetest.Logs{}
	s := New(Config{Redis: rdb, DB: db, Keys: keys, Log: zerolog.New(logs), Auth: Auth{Insecure: true}})
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return &deviceAPI{t: t, url: srv.URL, keys: keys, rdb: rdb, db: db, srv: s}, pg, logs
}

// get is a GET of url from any goroutine; a request that fails is a
// response of status 0 whose body says why.
func get(t *testing.T, url string) response {
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	if err != nil {
		return response{body: err.Error()}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return response{body: err.Error()}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

// sending writes what the stages leave in Redis of campaign id: split
// done, one range of 4 people resolved and read, done of them done, 3
// devices sent.
func sending(t *testing.T, rdb rueidis.Client, keys pipeline.Keys, id string, done int) {
	t.Helper()
	now := time.Now().UnixMilli()
	for _, r := range rdb.DoMulti(t.Context(),
		rdb.B().Hset().Key(keys.Campaign(id)).FieldValue().FieldValue(pipeline.CampaignSplitDone, "1").
			FieldValue(pipeline.CampaignRangesTotal, "1").Build(),
		rdb.B().Hset().Key(keys.RangeUsers(id)).FieldValue().FieldValue("x/0.0", "4").Build(),
		rdb.B().Hset().Key(keys.Stats(1, id)).FieldValue().FieldValue(pipeline.StatIn, "4").
			FieldValue(pipeline.StatTargets, "4").FieldValue(pipeline.StatUsersDone, strconv.Itoa(done)).FieldValue(pipeline.StatSent, "3").
			FieldValue(pipeline.StatFirstMs, strconv.FormatInt(now-2000, 10)).FieldValue(pipeline.StatLastMs, strconv.FormatInt(now, 10)).
			FieldValue(pipeline.StatDoneMs, strconv.FormatInt(now, 10)).Build(),
	) {
		if err := r.Error(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestReadsWithPostgresDown: while PostgreSQL is stopped (a failover, a
// restart) or frozen (a failover whose old primary hangs, a partition), a
// campaign or message Redis holds is still reported, from Redis: its
// counts and state, with record_unavailable saying the record is missing.
// It answered 503 "PostgreSQL or Redis is unreachable" (stopped) or "did
// not answer within 5s" (frozen), and the console's page of a launch going
// out showed nothing. What needs PostgreSQL (the lists, an id Redis does
// not hold, a user and their preferences) stays 503, naming it and, for
// a read, saying it is one. Once PostgreSQL is back, the full report
// returns.
func TestReadsWithPostgresDown(t *testing.T) {
	t.Parallel()
	for _, outage := range []struct {
		name     string
		down, up func(*pipelinetest.Postgres) error
	}{
		{"stopped", (*pipelinetest.Postgres).Stop, (*pipelinetest.Postgres).Start},
		{"frozen", (*pipelinetest.Postgres).Freeze, func(pg *pipelinetest.Postgres) error { pg.Thaw(); return nil }},
	} {
		t.Run(outage.name, func(t *testing.T) {
			t.Parallel() // a PostgreSQL server of its own (newAPIOwnPostgres)
			readsWithPostgresDown(t, outage.name, outage.down, outage.up)
		})
	}
}

func readsWithPostgresDown(t *testing.T, outage string, down, up func(*pipelinetest.Postgres) error) {
	a, pg, logs := newAPIOwnPostgres(t)
	sendAt := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	for _, c := range []struct{ id, more string }{
		{"live-1", `,"rate_per_second":50`},
		{"done-1", ""},
		{"cancel-1", ""},
		{"sched-1", `,"send_at":"` + sendAt.Format(time.RFC3339) + `"`},
	} {
		if r := a.do("POST", "/v1/campaigns", `{"id":"`+c.id+`","app":"a","channels":["x"],"notification":{"title":"t"}`+c.more+`}`, ""); r.status != http.StatusCreated {
			t.Fatalf("create %s: %d %s", c.id, r.status, r.body)
		}
	}
	sending(t, a.rdb, a.keys, "live-1", 2)
	sending(t, a.rdb, a.keys, "done-1", 4) // done by its counters, never read so: not recorded
	if r := a.do("POST", "/v1/campaigns/cancel-1/cancel", "", ""); r.status != http.StatusOK {
		t.Fatalf("cancel: %d %s", r.status, r.body)
	}
	if r := a.do("POST", "/v1/messages", `{"id":"m-1","app":"a","users":[1,2],"notification":{"title":"t"}}`, ""); r.status != http.StatusAccepted {
		t.Fatalf("create message: %d %s", r.status, r.body)
	}
	if err := down(pg); err != nil {
		t.Fatal(err)
	}
	partial := `"record_unavailable":"` + campaign.RecordUnavailable + `"`
	tests := []struct {
		path   string
		status int
		want   []string // in the body
		pgOnly bool     // asks PostgreSQL alone: a frozen one takes the whole 5 s, as before
	}{
		{"/v1/campaigns/live-1", http.StatusOK, []string{`"state":"running"`, `"targets":4`, `"sent":3`, `"expected_finish_ms":`, partial}, false},
		{"/v1/campaigns/done-1", http.StatusOK, []string{`"state":"done"`, `"targets":4`, partial}, false},
		{"/v1/campaigns/cancel-1", http.StatusOK, []string{`"state":"canceled"`, partial}, false},
		{"/v1/campaigns/sched-1", http.StatusOK, []string{`"state":"scheduled"`, `"send_at":"` + sendAt.Format(time.RFC3339) + `"`, partial}, false},
		{"/v1/messages/m-1", http.StatusOK, []string{`"state":"sending"`, partial}, false},
		{"/v1/messages/live-1", http.StatusNotFound, []string{"it is a campaign"}, false},
		{"/v1/campaigns/m-1", http.StatusNotFound, []string{"it is a direct message"}, false},
		{"/v1/campaigns/nobody", http.StatusServiceUnavailable, []string{"PostgreSQL is unreachable", "Redis holds no campaign nobody"}, false},
		{"/v1/messages/nobody", http.StatusServiceUnavailable, []string{"PostgreSQL is unreachable", "Redis holds no message nobody"}, false},
		{"/v1/campaigns", http.StatusServiceUnavailable, []string{"PostgreSQL is unreachable", "GET /v1/campaigns/{id}"}, true},
		{"/v1/messages", http.StatusServiceUnavailable, []string{"PostgreSQL is unreachable", "GET /v1/messages/{id}"}, true},
		// A read, not a write: "nothing was accepted" puzzled its caller.
		{"/v1/users/7", http.StatusServiceUnavailable, []string{"PostgreSQL is unreachable: user 7 could not be read; retry in a moment"}, true},
		{"/v1/users/7/preferences", http.StatusServiceUnavailable,
			[]string{"PostgreSQL is unreachable: the preferences of user 7 could not be read; retry in a moment"}, true},
	}
	// Asked all at once: a frozen PostgreSQL costs each read its patience
	// (2 s), and t.Parallel would run only GOMAXPROCS of them at a time.
	answers := make([]response, len(tests))
	var wg sync.WaitGroup
	for i, tt := range tests {
		if tt.pgOnly && outage == "frozen" {
			continue
		}
		wg.Go(func() { answers[i] = get(t, a.url+tt.path) })
	}
	wg.Wait()
	for i, tt := range tests {
		if tt.pgOnly && outage == "frozen" {
			continue
		}
		t.Run(tt.path, func(t *testing.T) {
			r := answers[i]
			t.Logf("GET %s with PostgreSQL %s: %d %s", tt.path, outage, r.status, r.body)
			if r.status != tt.status {
				t.Errorf("got %d, want %d", r.status, tt.status)
			}
			for _, w := range tt.want {
				if !strings.Contains(r.body, w) {
					t.Errorf("the answer does not say %q", w)
				}
			}
		})
	}
	// Six reports from Redis alone, in less than the sampler's 10 s: one
	// line says so, not one a read (the console reads every open page
	// once a second through an outage).
	if n := strings.Count(logs.String(), "reported from Redis alone (said once"); n != 1 {
		t.Errorf("%d log lines of reports from Redis alone, want 1:\n%s", n, logs.String())
	}
	if err := up(pg); err != nil {
		t.Fatal(err)
	}
	var rep map[string]any
	pipelinetest.Eventually(t, 30*time.Second, "the full report once PostgreSQL is back", func() bool {
		r := a.do("GET", "/v1/campaigns/live-1", "", "")
		rep = nil
		return r.status == http.StatusOK && json.Unmarshal([]byte(r.body), &rep) == nil && rep["record_unavailable"] == nil
	})
	if rep["state"] != campaign.StateRunning || rep["sent"] != 3.0 || rep["rate_per_second"] != 50.0 || rep["created_at"] == "0001-01-01T00:00:00Z" {
		t.Errorf("once PostgreSQL is back: %v, want the full report", rep)
	}
	// The done seen while PostgreSQL was down is recorded by the first
	// reading after.
	if r := a.do("GET", "/v1/campaigns/done-1", "", ""); r.status != http.StatusOK || !strings.Contains(r.body, `"state":"done"`) ||
		!strings.Contains(r.body, `"finished_at"`) || strings.Contains(r.body, "record_unavailable") {
		t.Errorf("done-1 once PostgreSQL is back: %d %s, want done with its finished_at", r.status, r.body)
	}
}

// TestMessageWithPostgresDown: a message posted without an id while
// PostgreSQL is stopped or frozen is a 503 + Retry-After naming the id the
// API gave it, with nothing appended; the client's retry with that id once
// PostgreSQL is back is the 202 that queues it, each user once, and the
// next a 200. (Had PostgreSQL committed the row and lost the connection
// before its answer, a retry without the id would send a second message.)
func TestMessageWithPostgresDown(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		down, up func(*pipelinetest.Postgres) error
	}{
		{"stopped", (*pipelinetest.Postgres).Stop, (*pipelinetest.Postgres).Start},
		{"frozen", (*pipelinetest.Postgres).Freeze, func(pg *pipelinetest.Postgres) error { pg.Thaw(); return nil }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel() // a PostgreSQL server of its own (newAPIOwnPostgres)
			a, pg, _ := newAPIOwnPostgres(t)
			if err := tt.down(pg); err != nil {
				t.Fatal(err)
			}
			// Posted without an id: the 503 names the one the API gave it,
			// for the retry (the row may be stored without the API knowing).
			r := a.do("POST", "/v1/messages", `{"app":"a","users":[1,2,3],"notification":{"title":"t"}}`, "")
			var answer struct{ ID string }
			json.Unmarshal([]byte(r.body), &answer)
			if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "" || answer.ID == "" ||
				!strings.Contains(r.error(), `POST the same request with "id":"`+answer.ID+`"`) {
				t.Fatalf("with PostgreSQL %s: %d (Retry-After %q) %s, want 503 naming the id to retry with", tt.name, r.status, r.header.Get("Retry-After"), r.body)
			}
			body := `{"id":"` + answer.ID + `","app":"a","users":[1,2,3],"notification":{"title":"t"}}`
			if _, n := a.dedupeEntries(pipeline.Express); n != 0 {
				t.Errorf("%d users appended while PostgreSQL was %s", n, tt.name)
			}
			if err := tt.up(pg); err != nil {
				t.Fatal(err)
			}
			pipelinetest.Eventually(t, 30*time.Second, "the retry accepted", func() bool {
				r = a.do("POST", "/v1/messages", body, "")
				return r.status != http.StatusServiceUnavailable
			})
			if r.status != http.StatusAccepted {
				t.Fatalf("the retry: %d %s, want 202", r.status, r.body)
			}
			if r := a.do("POST", "/v1/messages", body, ""); r.status != http.StatusOK {
				t.Errorf("once more: %d %s, want 200", r.status, r.body)
			}
			if _, n := a.dedupeEntries(pipeline.Express); n != 3 {
				t.Errorf("%d users appended, want 3 (each once)", n)
			}
		})
	}
}
