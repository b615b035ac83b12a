package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/campaign"
	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
	"github.com/pushpipe/pushpipe/stages/deliver"
	"github.com/pushpipe/pushpipe/stages/deliver/apns"
	"github.com/pushpipe/pushpipe/stages/deliver/fcm"
	"github.com/pushpipe/pushpipe/stages/deliver/push"
)

func (a *deviceAPI) campaignEntries() int64 {
	a.t.Helper()
	var n int64
	for _, s := range a.keys.Streams(pipeline.StreamCampaigns) {
		l, err := a.rdb.Do(context.Background(), a.rdb.B().Xlen().Key(s).Build()).AsInt64()
		if err != nil {
			a.t.Fatal(err)
		}
		n += l
	}
	return n
}

// TestCampaignIsIdempotentByID: 201 with the id, then 200 with the same id
// and no new campaign entry; the id with other content is a 409.
func TestCampaignIsIdempotentByID(t *testing.T) {
	t.Parallel()
	a := newDeviceAPI(t, env.Redis.Addr, Auth{AdminToken: "op"})
	body := `{"id":"launch-7","app":"com.example.news","channels":["breaking","sport"],"category":"alerts",
		"notification":{"title":"Hi","body":"There","data":{"url":"https://example.com"}},"ttl_seconds":600}`
	r := a.do("POST", "/v1/campaigns", body, "op")
	if r.status != http.StatusCreated || !strings.Contains(r.body, `"id":"launch-7"`) {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	r = a.do("POST", "/v1/campaigns", body, "op")
	if r.status != http.StatusOK || !strings.Contains(r.body, `"id":"launch-7"`) {
		t.Fatalf("same id again: %d %s", r.status, r.body)
	}
	// Channels are a set: another order, or a repeat, is the same campaign.
	for _, chans := range []string{`["sport","breaking"]`, `["breaking","sport","breaking"]`} {
		r = a.do("POST", "/v1/campaigns", strings.Replace(body, `["breaking","sport"]`, chans, 1), "op")
		if r.status != http.StatusOK {
			t.Fatalf("same id, channels %s: %d %s", chans, r.status, r.body)
		}
	}
	if n := a.campaignEntries(); n != 1 {
		t.Fatalf("%d campaign entries, want 1", n)
	}
	r = a.do("POST", "/v1/campaigns", strings.Replace(body, `["breaking","sport"]`, `["breaking"]`, 1), "op")
	if r.status != http.StatusConflict {
		t.Fatalf("same id, fewer channels: %d %s", r.status, r.body)
	}
	r = a.do("POST", "/v1/campaigns", strings.Replace(body, `"Hi"`, `"Hello"`, 1), "op")
	if r.status != http.StatusConflict || !strings.Contains(r.error(), "launch-7") {
		t.Fatalf("same id, other content: %d %s", r.status, r.body)
	}
	c, err := campaign.Load(context.Background(), a.db, "launch-7")
	if err != nil {
		t.Fatal(err)
	}
	if c.App != "com.example.news" || len(c.Channels) != 2 || c.Category != "alerts" || c.TTL.Seconds() != 600 ||
		!strings.Contains(string(c.Data), "example.com") {
		t.Fatalf("stored %+v", c)
	}
	// without an id, each request is a new campaign with a generated id
	r1 := a.do("POST", "/v1/campaigns", `{"app":"a","channels":["x"],"notification":{"body":"b"}}`, "op")
	r2 := a.do("POST", "/v1/campaigns", `{"app":"a","channels":["x"],"notification":{"body":"b"}}`, "op")
	if r1.status != http.StatusCreated || r2.status != http.StatusCreated || r1.body == r2.body {
		t.Fatalf("two campaigns without ids: %d %s, %d %s", r1.status, r1.body, r2.status, r2.body)
	}
}

func TestCampaignProgressAndUnknown(t *testing.T) {
	t.Parallel()
	a := newDeviceAPI(t, env.Redis.Addr, Auth{AdminToken: "op"})
	if r := a.do("POST", "/v1/campaigns", `{"id":"p1","app":"a","channels":["x"],"notification":{"title":"t"}}`, "op"); r.status != 201 {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	r := a.do("GET", "/v1/campaigns/p1", "", "op")
	var rep map[string]any
	if err := json.Unmarshal([]byte(r.body), &rep); r.status != 200 || err != nil {
		t.Fatalf("progress: %d %s", r.status, r.body)
	}
	for _, k := range []string{"id", "state", "targets", "sent", "failed", "muted", "invalid_tokens",
		"duplicates_suppressed", "first_send_ms", "last_send_ms"} {
		if _, ok := rep[k]; !ok {
			t.Errorf("progress has no %q: %s", k, r.body)
		}
	}
	if rep["state"] != "splitting" || rep["id"] != "p1" {
		t.Errorf("progress of a campaign nobody split yet: %s", r.body)
	}
	// It expires its default TTL (24 h) after it was created.
	created, _ := time.Parse(time.RFC3339Nano, fmt.Sprint(rep["created_at"]))
	expires, _ := time.Parse(time.RFC3339Nano, fmt.Sprint(rep["expires_at"]))
	if created.IsZero() || !expires.Equal(created.Add(campaign.DefaultTTL)) {
		t.Errorf("created_at %v, expires_at %v: want it to expire %v after its creation", rep["created_at"], rep["expires_at"], campaign.DefaultTTL)
	}
	for _, id := range []string{"nope", "bad%7Bid%7D", "%2e%2e"} {
		if r := a.do("GET", "/v1/campaigns/"+id, "", "op"); r.status != 404 || r.error() == "" {
			t.Errorf("GET %s: %d %s, want 404 with a message", id, r.status, r.body)
		}
	}
	if r := a.do("GET", "/v1/campaigns/p1", "", ""); r.status != 401 {
		t.Errorf("GET without a token: %d", r.status)
	}
}

func TestMalformedCampaign(t *testing.T) {
	t.Parallel()
	a := newDeviceAPI(t, env.Redis.Addr, Auth{Insecure: true})
	ok := `"app":"a","channels":["x"],"notification":{"title":"t"}`
	tests := []struct{ body, want string }{
		{``, "empty body"},
		{`{` + ok, "bad JSON"},
		{`{` + ok + `,"extra":1}`, `unknown field "extra"`},
		{`{"channels":["x"],"notification":{"title":"t"}}`, "app: is required"},
		{`{"app":"a","notification":{"title":"t"}}`, "channels: at least one channel is required"},
		{`{"app":"a","channels":[],"notification":{"title":"t"}}`, "channels: at least one channel is required"},
		{`{"app":"a","channels":"x","notification":{"title":"t"}}`, `field "channels"`},
		{`{"app":"a","channels":["ok","bad channel"],"notification":{"title":"t"}}`, "channels[1]: has only A-Z"},
		{`{"app":"a","channels":["ok",1.5],"notification":{"title":"t"}}`, "channels[1]: must be a string or an integer, got 1.5"},
		{`{"app":"a","channels":[null],"notification":{"title":"t"}}`, "channels[0]: must be a string or an integer, got null"},
		{`{"app":"a","channels":[""],"notification":{"title":"t"}}`, "channels[0]: must be 1–128 characters"},
		{`{"app":"a","channels":["x"],"category":"a/b","notification":{"title":"t"}}`, "category: has only"},
		{`{"app":"a","channels":["x"]}`, "notification: is required"},
		{`{"app":"a","channels":["x"],"notification":{}}`, "notification: a title or a body is required"},
		{`{"app":"a","channels":["x"],"notification":{"title":"t","data":[1]}}`, "notification.data: must be a JSON object"},
		{`{"app":"a","channels":["x"],"notification":{"title":"` + strings.Repeat("x", 4097) + `"}}`, "title and body are 4097 bytes together; at most 4096"},
		// 0 is the documented default (openapi.json: 0–2419200), and is
		// accepted: the message said 1 was the least.
		{`{` + ok + `,"ttl_seconds":-1}`, "ttl_seconds: must be between 1 and 2419200 (28 days), or 0 or left out for 24 hours; got -1"},
		{`{` + ok + `,"ttl_seconds":99999999999}`, "ttl_seconds: must be between 1 and 2419200"},
		{`{` + ok + `,"ttl_seconds":"1h"}`, `field "ttl_seconds": expected an integer, got string`},
		{`{"id":"{tag}",` + ok + `}`, "id: only letters, digits"},
		{`{"id":"` + strings.Repeat("i", 129) + `",` + ok + `}`, "id: must be 1–128 characters"},
		// An empty key is no key: it made a new campaign at every retry.
		{`{"id":"",` + ok + `}`, `id: is empty: give the campaign's idempotency key`},
		{`{"id":null,` + ok + `}`, `id: is null: give the campaign's idempotency key`},
		// "." and ".." are path steps: GET /v1/campaigns/.. could never
		// fetch them.
		{`{"id":".",` + ok + `}`, `id: "." is a path step`},
		{`{"id":"..",` + ok + `}`, `id: ".." is a path step`},
		{`{"app":"a","channels":["x"],"notification":{"title":"t","sounds":"x"}}`, `unknown field "notification.sounds"`},
	}
	for _, tt := range tests {
		r := a.do("POST", "/v1/campaigns", tt.body, "")
		if r.status != http.StatusBadRequest || !strings.Contains(r.error(), tt.want) {
			t.Errorf("POST %.80s: got %d %s, want 400 with %q", tt.body, r.status, r.body, tt.want)
		}
	}
	if n := a.campaignEntries(); n != 0 {
		t.Fatalf("%d campaign entries after only malformed requests", n)
	}
}

// TestCampaignWithRedisDown: the row is stored but nothing can be queued, so
// the answer is 503 + Retry-After saying so, with the campaign's id (a
// client that sent none learns it); the client's retry with that id once
// Redis is back queues it (201: that retry started it), and the next one is
// a 200.
func TestCampaignWithRedisDown(t *testing.T) {
	t.Parallel()
	r := pipelinetest.RedisT(t, pipelinetest.RedisOptions{})
	a := newDeviceAPI(t, r.Addr, Auth{Insecure: true})
	if err := r.Kill(); err != nil {
		t.Fatal(err)
	}
	resp := a.do("POST", "/v1/campaigns", `{"app":"a","channels":["x"],"notification":{"title":"t"}}`, "")
	var answer struct{ ID, Error string }
	json.Unmarshal([]byte(resp.body), &answer)
	if resp.status != http.StatusServiceUnavailable || resp.header.Get("Retry-After") == "" || answer.ID == "" ||
		!strings.Contains(answer.Error, "campaign "+answer.ID+" is stored but could not be queued") ||
		!strings.Contains(answer.Error, `"id":"`+answer.ID+`"`) {
		t.Fatalf("with Redis down: %d (Retry-After %q) %s, want 503 naming the stored campaign's id", resp.status, resp.header.Get("Retry-After"), resp.body)
	}
	body := `{"id":"` + answer.ID + `","app":"a","channels":["x"],"notification":{"title":"t"}}`
	if err := r.Restart(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for resp = a.do("POST", "/v1/campaigns", body, ""); resp.status == http.StatusServiceUnavailable && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
		resp = a.do("POST", "/v1/campaigns", body, "")
	}
	if resp.status != http.StatusCreated {
		t.Fatalf("the retry after the outage: %d %s, want 201", resp.status, resp.body)
	}
	if resp = a.do("POST", "/v1/campaigns", body, ""); resp.status != http.StatusOK {
		t.Fatalf("once more: %d %s, want 200", resp.status, resp.body)
	}
	if n := a.campaignEntries(); n != 1 {
		t.Fatalf("%d campaign entries, want 1", n)
	}
}

// A campaign is measured as each provider receives it: the APNs payload and
// FCM's notification and data, rendered by deliver's own senders from the
// data as PostgreSQL gives it back. Escapes count ('<' is six bytes), and
// so do the digits jsonb writes out for an exponent; the answer names the
// size. What is accepted renders within 4096 bytes for both.
func TestCampaignPayloadAsRendered(t *testing.T) {
	t.Parallel()
	a := newDeviceAPI(t, env.Redis.Addr, Auth{Insecure: true})
	many := make([]string, 14)
	for i := range many {
		many[i] = fmt.Sprintf(`"n%d":1e300`, i) // 14 × 301 digits once stored
	}
	tests := []struct {
		name, notification string
		status             int
		want               string
	}{
		{"700 '<' in the title", `{"title":"` + strings.Repeat("<", 700) + `"}`, 400, "renders to 4230 bytes for APNs"},
		{"700 '&' in the body", `{"body":"` + strings.Repeat("&", 700) + `"}`, 400, "bytes for APNs, over the 4096"},
		{"exponents spelled out", `{"title":"t","data":{` + strings.Join(many, ",") + `}}`, 400, "bytes for APNs"},
		{"a number past numeric's range", `{"title":"t","data":{"n":1e200000}}`, 400, "PostgreSQL cannot store"},
		{"600 '<' in the title", `{"title":"` + strings.Repeat("<", 600) + `"}`, 201, ""},
		{"4000 plain bytes", `{"title":"` + strings.Repeat("a", 4000) + `"}`, 201, ""},
		{"data of every JSON type", `{"title":"t","data":{"s":"<&>","n":1e3,"b":true,"z":null,"a":[1,"x"],"o":{"k":"v"}}}`, 201, ""},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := fmt.Sprintf("size-%d", i)
			r := a.do("POST", "/v1/campaigns", `{"id":"`+id+`","app":"a","channels":["x"],"notification":`+tt.notification+`}`, "")
			if r.status != tt.status || !strings.Contains(r.error(), tt.want) {
				t.Fatalf("got %d %.300s, want %d with %q", r.status, r.body, tt.status, tt.want)
			}
			if r.status != http.StatusCreated {
				return
			}
			c, err := campaign.Load(t.Context(), a.db, id)
			if err != nil {
				t.Fatal(err)
			}
			_, notes, err := deliver.Render(c)
			if err != nil {
				t.Fatal(err)
			}
			n := notes[""]
			for name, render := range map[string]func(push.Notification) ([]byte, error){"APNs": apns.Payload, "FCM": fcm.Payload} {
				if b, err := render(n); err != nil || len(b) > campaign.MaxPayload {
					t.Errorf("accepted, but renders to %d bytes for %s (%v)", len(b), name, err)
				}
			}
		})
	}
}

// Values PostgreSQL cannot store (a NUL in text or jsonb, a lone surrogate)
// are the client's mistake: 400 naming the field, never 503.
func TestCampaignValuesThatCannotBeStored(t *testing.T) {
	t.Parallel()
	a := newDeviceAPI(t, env.Redis.Addr, Auth{Insecure: true})
	tests := []struct{ name, notification, want string }{
		{"NUL in the title", `{"title":"a\u0000b"}`, "notification.title: contains a NUL"},
		{"NUL in the body", `{"title":"t","body":"\u0000"}`, "notification.body: contains a NUL"},
		{"NUL in a data value", `{"title":"t","data":{"k":"\u0000"}}`, "notification.data/k: contains a NUL"},
		{"NUL in a data key", `{"title":"t","data":{"k\u0000":"v"}}`, "contains a NUL"},
		{"NUL deep in data", `{"title":"t","data":{"k":[{"x":["y","\u0000"]}]}}`, "notification.data/k/0/x/1: contains a NUL"},
		{"lone surrogate in data", `{"title":"t","data":{"k":"\ud800"}}`, "invalid surrogate"},
		{"lone low surrogate in the title", `{"title":"\udc00"}`, "invalid surrogate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := a.do("POST", "/v1/campaigns", `{"app":"a","channels":["x"],"notification":`+tt.notification+`}`, "")
			if r.status != http.StatusBadRequest || !strings.Contains(r.error(), tt.want) || r.header.Get("Retry-After") != "" {
				t.Fatalf("got %d %s, want 400 with %q", r.status, r.body, tt.want)
			}
		})
	}
	if n := a.campaignEntries(); n != 0 {
		t.Fatalf("%d campaign entries after only refused campaigns", n)
	}
}

// Data keys a provider keeps for itself are refused at creation: FCM fails
// every send that carries one, and APNs's "aps" would replace the alert.
func TestReservedDataKeys(t *testing.T) {
	t.Parallel()
	a := newDeviceAPI(t, env.Redis.Addr, Auth{Insecure: true})
	tests := []struct {
		give   string
		status int
	}{
		{"from", 400}, {"message_type", 400}, {"collapse_key", 400}, {"notification", 400},
		{"google.c.a.e", 400}, {"google", 400}, {"googleAnalytics", 400}, {"Google.x", 400},
		{"gcm.notification.title", 400}, {"GCM_x", 400}, {"aps", 400},
		{"fromage", 201}, {"my_google", 201}, {"url", 201}, {"Aps", 201},
	}
	for i, tt := range tests {
		t.Run(tt.give, func(t *testing.T) {
			body := fmt.Sprintf(`{"id":"key-%d","app":"a","channels":["x"],"notification":{"title":"t","data":{%q:"v"}}}`, i, tt.give)
			r := a.do("POST", "/v1/campaigns", body, "")
			if r.status != tt.status || tt.status == 400 && !strings.Contains(r.error(), fmt.Sprintf("key %q is", tt.give)) {
				t.Fatalf("got %d %s, want %d", r.status, r.body, tt.status)
			}
		})
	}
}
