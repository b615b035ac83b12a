package ingest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/rueidis"
	"github.com/rs/zerolog"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/devices"
	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
	"github.com/pushpipe/pushpipe/stages/api"
	"github.com/pushpipe/pushpipe/stages/ingest"
)

// runStage runs the ingest stage in this process until the test ends.
func runStage(t testing.TB, c rueidis.Client, db *pgxpool.Pool, keys pipeline.Keys, batch int) *pipeline.Runner {
	t.Helper()
	r := pipeline.NewRunner(c, keys, pipeline.Options{
		Stage: "ingest", Stream: pipeline.StreamIngest, BatchSize: batch, Concurrency: 4,
		Block: 100 * time.Millisecond, ClaimIdle: 2 * time.Second,
	}, ingest.New(ingest.Config{DB: db, Log: zerolog.Nop()}), zerolog.Nop(), nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	pipelinetest.Eventually(t, 10*time.Second, "the stage to start", r.Ready)
	return r
}

// streamEvents reads back every event the ingest stream holds (what the API
// accepted), skipping malformed entries.
func streamEvents(t testing.TB, c rueidis.Client, keys pipeline.Keys) []devices.Event {
	t.Helper()
	var out []devices.Event
	for _, s := range keys.Streams(pipeline.StreamIngest) {
		xs, err := c.Do(context.Background(), c.B().Xrange().Key(s).Start("-").End("+").Build()).AsXRange()
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range xs {
			if e, err := devices.ParseEvent(x.FieldValues, time.Now()); err == nil {
				out = append(out, e)
			}
		}
	}
	return out
}

func send(t testing.TB, method, url string, body any) {
	t.Helper()
	var buf bytes.Buffer
	if body != nil {
		json.NewEncoder(&buf).Encode(body)
	}
	req, _ := http.NewRequest(method, url, &buf)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("%s %s: %s", method, url, resp.Status)
	}
}

type device struct {
	App      string `json:"app"`
	Platform string `json:"platform"`
	Token    string `json:"token"`
	UserID   int64  `json:"user_id"`
	Locale   string `json:"locale,omitempty"`
}

// From the API to the devices table: registrations in batches and one by one,
// moves between users, deletions, re-registrations, provider invalidations,
// and malformed stream entries, which go to the dead-letter stream with their
// reason without holding up the rest.
func TestStageFromAPIToTable(t *testing.T) {
	ctx := context.Background()
	keys := testKeys()
	c := redisClient(t, env.Redis.Addr)
	_, db := testDB(t, 4)
	srv := httptest.NewServer(api.New(api.Config{Redis: c, DB: db, Keys: keys, Log: zerolog.Nop(), Auth: api.Auth{Insecure: true}}))
	t.Cleanup(srv.Close)
	runStage(t, c, db, keys, 100)

	var batch []device
	for i := range 600 {
		d := device{App: "news", Platform: "ios", Token: apnsToken(i), UserID: int64(1 + i/2), Locale: "en"}
		if i%2 == 1 {
			d.Platform, d.Token = "android", fcmToken(i)
		}
		batch = append(batch, d)
	}
	send(t, "POST", srv.URL+"/v1/devices/batch", batch)
	for i := range 100 { // moves to other users, one request each
		d := batch[i]
		d.UserID, d.Locale = 10_000+int64(i), "de"
		send(t, "POST", srv.URL+"/v1/devices", d)
	}
	for _, d := range batch[100:150] {
		send(t, "DELETE", srv.URL+"/v1/devices/news/"+d.Token, nil)
	}
	send(t, "POST", srv.URL+"/v1/devices/batch", batch[140:150]) // registered again
	// deliver's invalidations, stamped with the provider's time
	var invalid []pipeline.Message
	for _, d := range batch[200:220] {
		p, _ := devices.ParsePlatform(d.Platform)
		e := devices.Event{Op: pipeline.OpInvalidate, App: d.App, Token: d.Token, Platform: p, User: d.UserID, At: time.Now().Add(time.Second).UnixMicro()}
		invalid = append(invalid, e.Message(keys))
	}
	// malformed entries, as a buggy producer might write them
	stream := keys.Stream(pipeline.StreamIngest, 3)
	malformed := map[string][]string{
		"op":       {"op", "upsert", "app", "news", "token", apnsToken(1), "at", "1"},
		"token":    {"op", "put", "app", "news", "token", "xyz", "platform", "ios", "user", "1", "at", "1"},
		"platform": {"op", "put", "app", "news", "token", apnsToken(1), "platform", "web", "user", "1", "at", "1"},
		"user":     {"op", "put", "app", "news", "token", apnsToken(1), "platform", "ios", "user", "-1", "at", "1"},
		"at":       {"op", "put", "app", "news", "token", apnsToken(1), "platform", "ios", "user", "1", "at", "9999999999999999"},
		"ev":       {pipeline.FieldEvent, "put\tnews\t" + apnsToken(1) + "\tios\t1\t1"}, // a part short
	}
	for field, f := range malformed {
		// "case" is not an ingest field: it only tells the test which field is bad.
		invalid = append(invalid, pipeline.Message{Stream: stream, Fields: append(f, "case", field)})
	}
	if _, err := pipeline.Emit(ctx, c, invalid...); err != nil {
		t.Fatal(err)
	}

	pipelinetest.Eventually(t, 30*time.Second, "the stage to finish", func() bool { return outstanding(t, c, keys) == 0 })
	want := model{}
	want.apply(streamEvents(t, c, keys)...) // distinct event times: order does not matter
	sameTable(t, db, want)
	if r, _ := rowOf(t, db, "news", batch[0].Token); r.User != 10_000 || r.Locale != "de" {
		t.Fatalf("moved device: %v", r)
	}
	if r, _ := rowOf(t, db, "news", batch[120].Token); r.State != devices.Deleted {
		t.Fatalf("deleted device: %v", r)
	}
	if r, _ := rowOf(t, db, "news", batch[145].Token); r.State != devices.Active {
		t.Fatalf("re-registered device: %v", r)
	}
	if r, _ := rowOf(t, db, "news", batch[210].Token); r.State != devices.Invalidated {
		t.Fatalf("invalidated device: %v", r)
	}

	dead, err := c.Do(ctx, c.B().Xrange().Key(keys.DLQ()).Start("-").End("+").Build()).AsXRange()
	if err != nil {
		t.Fatal(err)
	}
	if len(dead) != len(malformed) {
		t.Fatalf("want %d dead letters, got %d", len(malformed), len(dead))
	}
	for _, d := range dead {
		reason := d.FieldValues[pipeline.DLQError]
		var fields map[string]string
		if err := json.Unmarshal([]byte(d.FieldValues[pipeline.DLQFields]), &fields); err != nil {
			t.Fatal(err)
		}
		if bad := fields["case"]; !strings.Contains(reason, bad+": ") && !strings.Contains(reason, bad+"_id: ") {
			t.Errorf("dead letter of a bad %s: the reason %q does not name it", bad, reason)
		}
	}
}
