package api

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
	"github.com/pushpipe/pushpipe/stages/campaign"
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
	if n := a.campaignEntries(); n != 1 {
		t.Fatalf("%d campaign entries, want 1", n)
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
		{`{"app":"a","channels":[""],"notification":{"title":"t"}}`, "channels[0]: must be 1–128 characters"},
		{`{"app":"a","channels":["x"],"category":"a/b","notification":{"title":"t"}}`, "category: has only"},
		{`{"app":"a","channels":["x"]}`, "notification: is required"},
		{`{"app":"a","channels":["x"],"notification":{}}`, "notification: a title or a body is required"},
		{`{"app":"a","channels":["x"],"notification":{"title":"t","data":[1]}}`, "notification.data: must be a JSON object"},
		{`{"app":"a","channels":["x"],"notification":{"title":"` + strings.Repeat("x", 4000) + `"}}`, "at most 3500 fit a push payload"},
		{`{` + ok + `,"ttl_seconds":-1}`, "ttl_seconds: must be between 1 and 2419200"},
		{`{` + ok + `,"ttl_seconds":99999999999}`, "ttl_seconds: must be between 1 and 2419200"},
		{`{` + ok + `,"ttl_seconds":"1h"}`, `field "ttl_seconds"`},
		{`{"id":"{tag}",` + ok + `}`, "id: only letters, digits"},
		{`{"id":"` + strings.Repeat("i", 129) + `",` + ok + `}`, "id: must be 1–128 characters"},
		// "." and ".." are path steps: GET /v1/campaigns/.. could never
		// fetch them.
		{`{"id":".",` + ok + `}`, `id: "." is a path step`},
		{`{"id":"..",` + ok + `}`, `id: ".." is a path step`},
		{`{"app":"a","channels":["x"],"notification":{"title":"t","sound":"x"}}`, `unknown field "notification.sound"`},
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
// the answer is 503 + Retry-After; the client's retry once Redis is back
// queues it (201: that retry started it), and the next one is a 200.
func TestCampaignWithRedisDown(t *testing.T) {
	r := pipelinetest.RedisT(t, pipelinetest.RedisOptions{})
	a := newDeviceAPI(t, r.Addr, Auth{Insecure: true})
	body := `{"id":"storm","app":"a","channels":["x"],"notification":{"title":"t"}}`
	if err := r.Kill(); err != nil {
		t.Fatal(err)
	}
	resp := a.do("POST", "/v1/campaigns", body, "")
	if resp.status != http.StatusServiceUnavailable || resp.header.Get("Retry-After") == "" {
		t.Fatalf("with Redis down: %d (Retry-After %q) %s", resp.status, resp.header.Get("Retry-After"), resp.body)
	}
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
