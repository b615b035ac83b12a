package webhook_test

import (
	"context"
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/rs/zerolog"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
	"github.com/pushpipe/pushpipe/stages/webhook"
)

// What the webhook POSTs is what the API reference documents for
// receivers (stages/api/openapi.json's WebhookPost, docs/API.md): every
// body, of a campaign's and a direct message's events, each outcome, a raw
// token's user 0, validates against the schema, and an event names exactly
// one of campaign and message, with DESIGN's field names and no others.
func TestPostsMatchTheDocumentedSchema(t *testing.T) {
	raw, err := os.ReadFile("../api/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	doc, err := openapi3.NewLoader().LoadFromData(raw)
	if err != nil {
		t.Fatal(err)
	}
	ref := doc.Components.Schemas["WebhookPost"]
	if ref == nil {
		t.Fatal("stages/api/openapi.json documents no WebhookPost: receivers have no reference for what the webhook POSTs")
	}
	f := newFixture(t)
	var (
		mu     sync.Mutex
		bodies [][]byte
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		bodies = append(bodies, b)
		mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	log := zerolog.New(io.Discard)
	h, err := webhook.New(webhook.Config{Redis: f.rdb, Keys: f.keys, URL: srv.URL + "/hook", Secrets: [][]byte{[]byte("secret-0123456789abcdef")}, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UnixMilli()
	events := []pipeline.ResultEvent{
		{ID: pipeline.ResultID("c1", "", 7, pipeline.OutcomeSent), Campaign: "c1", App: "com.example.news", UserID: 42, Platform: "ios",
			Token: "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90", Outcome: pipeline.OutcomeSent, AtMs: now},
		{ID: pipeline.ResultID("c1", "", 8, pipeline.OutcomeFailed), Campaign: "c1", App: "com.example.news", UserID: 43, Platform: "android",
			Token: "fcm-token-of-user-43", Outcome: pipeline.OutcomeFailed, Reason: "no credentials", AtMs: now},
		{ID: pipeline.ResultID("", "m1", 3, pipeline.OutcomeInvalid), Message: "m1", App: "com.example.news", UserID: 0, Platform: "android",
			Token: "fcm-raw-token", Outcome: pipeline.OutcomeInvalid, Reason: "UNREGISTERED", AtMs: now},
	}
	var msgs []pipeline.Message
	for _, ev := range events {
		msgs = append(msgs, pipeline.Message{Stream: f.keys.Stream(pipeline.StreamResults, 0), Fields: pipeline.ResultFields(ev)})
	}
	if _, err := pipeline.Emit(f.ctx, f.rdb, msgs...); err != nil {
		t.Fatal(err)
	}
	r := pipeline.NewRunner(f.rdb, f.keys, pipeline.Options{Stage: "webhook", Stream: pipeline.StreamResults, Consumer: "w1",
		ClaimIdle: time.Minute, MaxDeliveries: 10, Block: 100 * time.Millisecond, NewGroupAt: "0"}, h, log, nil)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	defer func() { cancel(); <-done }()
	var got int
	pipelinetest.Eventually(t, 10*time.Second, "every event posted", func() bool {
		mu.Lock()
		defer mu.Unlock()
		got = 0
		for _, b := range bodies {
			var post struct{ Events []json.RawMessage }
			if json.Unmarshal(b, &post) == nil {
				got += len(post.Events)
			}
		}
		return got == len(events)
	})
	mu.Lock()
	defer mu.Unlock()
	for _, b := range bodies {
		var v any
		if err := json.Unmarshal(b, &v); err != nil {
			t.Fatalf("POST body is not JSON: %v: %s", err, b)
		}
		if err := ref.Value.VisitJSON(v); err != nil {
			t.Errorf("POST body does not match stages/api/openapi.json's WebhookPost: %v\n%s", err, b)
		}
		var post struct{ Events []map[string]any }
		json.Unmarshal(b, &post)
		for _, ev := range post.Events {
			_, c := ev["campaign"]
			_, m := ev["message"]
			if c == m {
				t.Errorf("event %v names campaign: %v, message: %v; want exactly one", ev["id"], c, m)
			}
			// DESIGN's names, every one: the schema lets a receiver's
			// unknown fields pass, so a field renamed in the code and the
			// schema alike (reason, which is not required) passed it.
			keys := slices.Sorted(maps.Keys(ev))
			want := []string{"app", "at_ms", "id", "outcome", "platform", "reason", "token", "user_id"}
			if ev["outcome"] == pipeline.OutcomeSent {
				want = slices.DeleteFunc(want, func(k string) bool { return k == "reason" }) // absent when sent
			}
			want = slices.Sorted(slices.Values(append(want, map[bool]string{true: "campaign", false: "message"}[c])))
			if !slices.Equal(keys, want) {
				t.Errorf("event %v has the fields %v, want DESIGN's %v", ev["id"], keys, want)
			}
		}
	}
}
