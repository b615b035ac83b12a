package api

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/campaign"
)

// TestPatchCampaignRate: PATCH /v1/campaigns/{id} changes a campaign's own
// cap while it goes out and answers its status (as GET does) with the new
// rate, which the record and Redis then hold; each refusal has its code
// and names what is wrong, and changes nothing.
func TestPatchCampaignRate(t *testing.T) {
	t.Parallel()
	a := newDeviceAPI(t, env.Redis.Addr, Auth{Insecure: true})
	create := func(id, extra string) {
		t.Helper()
		body := `{"id":"` + id + `","app":"a","channels":["x"],"notification":{"title":"t"},"allow_empty":true,"rate_per_second":40` + extra + `}`
		if r := a.do("POST", "/v1/campaigns", body, ""); r.status != http.StatusCreated {
			t.Fatalf("create %s: %d %s", id, r.status, r.body)
		}
	}
	for _, id := range []string{"live", "zero", "bad", "gone", "done"} {
		create(id, "")
	}
	create("later", `,"send_at":"`+time.Now().Add(time.Hour).UTC().Format(time.RFC3339)+`"`)
	if r := a.do("POST", "/v1/messages", `{"id":"msg","app":"a","users":[1],"notification":{"title":"t"}}`, ""); r.status != http.StatusAccepted {
		t.Fatalf("message: %d %s", r.status, r.body)
	}
	if r := a.do("POST", "/v1/campaigns/gone/cancel", "", ""); r.status != http.StatusOK {
		t.Fatalf("cancel: %d %s", r.status, r.body)
	}
	if _, err := a.db.Exec(t.Context(), `UPDATE campaigns SET state = 'done', finished_at = now() WHERE id = 'done'`); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		id, body string
		status   int
		want     string // in the body
		rate     string // the rate then in Redis
	}{
		{"live", `{"rate_per_second":10}`, 200, `"rate_per_second":10,`, "10"},
		{"live", `{"rate_per_second":500}`, 200, `"rate_per_second":500,`, "500"},
		{"later", `{"rate_per_second":7}`, 200, `"state":"scheduled"`, "7"},
		{"zero", `{"rate_per_second":0}`, 200, `"state":"splitting"`, "0"},
		{"bad", `{"rate_per_second":-1}`, 400, "rate_per_second: must be a whole number of sends per second from 0 (no cap of its own) to 1000000, got -1", "40"},
		{"bad", `{"rate_per_second":1000001}`, 400, "rate_per_second: must be a whole number", "40"},
		{"bad", `{"rate_per_second":99999999999999999999}`, 400, `field "rate_per_second"`, "40"},
		{"bad", `{"rate_per_second":2.5}`, 400, `field "rate_per_second"`, "40"},
		{"bad", `{"rate_per_second":"50"}`, 400, `field "rate_per_second"`, "40"},
		{"bad", `{"rate_per_second":null}`, 400, "rate_per_second: required", "40"},
		{"bad", `{}`, 400, "rate_per_second: required", "40"},
		{"bad", `{"rate_per_second":5,"priority":"high"}`, 400, `unknown field "priority"`, "40"},
		{"bad", `{"rate_per_second":5} {}`, 400, "send exactly one", "40"},
		{"bad", ``, 400, "empty body", "40"},
		{"nope", `{"rate_per_second":5}`, 404, "no campaign nope", ""},
		{"msg", `{"rate_per_second":5}`, 404, "a message has no rate of its own", ""},
		{"gone", `{"rate_per_second":5}`, 409, "campaign gone is already canceled: its rate can no longer change", "40"},
		{"done", `{"rate_per_second":5}`, 409, "campaign done is already done", "40"},
	}
	for _, tt := range tests {
		r := a.do("PATCH", "/v1/campaigns/"+tt.id, tt.body, "")
		said := r.body
		if r.status >= 400 {
			said = r.error()
		}
		if r.status != tt.status || !strings.Contains(said, tt.want) {
			t.Errorf("PATCH %s %s: %d %s, want %d with %q", tt.id, tt.body, r.status, r.body, tt.status, tt.want)
			continue
		}
		if tt.status == 200 {
			// The same document GET answers.
			if g := a.do("GET", "/v1/campaigns/"+tt.id, "", ""); !strings.Contains(g.body, tt.want) || !strings.Contains(g.body, `"id":"`+tt.id+`"`) {
				t.Errorf("GET %s after the PATCH: %s, want %q", tt.id, g.body, tt.want)
			}
		}
		if tt.rate == "" {
			continue
		}
		got, err := a.rdb.Do(t.Context(), a.rdb.B().Hget().Key(a.keys.Campaign(tt.id)).Field(campaign.HashRatePerSecond).Build()).ToString()
		if err != nil || got != tt.rate {
			t.Errorf("after PATCH %s %s: Redis says rate %q (%v), want %s", tt.id, tt.body, got, err, tt.rate)
		}
		var rec string
		if err := a.db.QueryRow(t.Context(), `SELECT rate_per_second::text FROM campaigns WHERE id = $1`, tt.id).Scan(&rec); err != nil || rec != tt.rate {
			t.Errorf("after PATCH %s %s: the record says %q (%v), want %s", tt.id, tt.body, rec, err, tt.rate)
		}
	}
	if r := a.do("PATCH", "/v1/campaigns/zero", `{"rate_per_second":0}`, ""); strings.Contains(r.body, `"rate_per_second"`) {
		t.Errorf("a campaign without a cap reports one: %s", r.body)
	}
}

// TestRetryAfterRatePatch: a client whose POST /v1/campaigns timed out
// retries it with exactly the body it sent, after an operator changed the
// campaign's rate (PATCH): that is its own request, 200 with the
// campaign's id, and the campaign keeps the rate set; the same id with
// another rate, the one set by the PATCH included, is a 409.
func TestRetryAfterRatePatch(t *testing.T) {
	t.Parallel()
	a := newDeviceAPI(t, env.Redis.Addr, Auth{Insecure: true})
	body := func(rate string) string {
		return `{"id":"retried","app":"a","channels":["x"],"notification":{"title":"t"},"allow_empty":true` + rate + `}`
	}
	if r := a.do("POST", "/v1/campaigns", body(`,"rate_per_second":40`), ""); r.status != http.StatusCreated {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	if r := a.do("PATCH", "/v1/campaigns/retried", `{"rate_per_second":10}`, ""); r.status != http.StatusOK {
		t.Fatalf("PATCH: %d %s", r.status, r.body)
	}
	tests := []struct {
		give   string // the retry's rate_per_second
		status int
		want   string // in the body
	}{
		{`,"rate_per_second":40`, http.StatusOK, `{"id":"retried"}`},
		{`,"rate_per_second":10`, http.StatusConflict, "campaign id retried is already used for different content"},
		{`,"rate_per_second":7`, http.StatusConflict, "campaign id retried is already used for different content"},
		{``, http.StatusConflict, "campaign id retried is already used for different content"},
		{`,"rate_per_second":40`, http.StatusOK, `{"id":"retried"}`}, // again, after the 409s
	}
	for _, tt := range tests {
		if r := a.do("POST", "/v1/campaigns", body(tt.give), ""); r.status != tt.status || !strings.Contains(r.body, tt.want) {
			t.Errorf("retry with %q: %d %s, want %d with %s", tt.give, r.status, r.body, tt.status, tt.want)
		}
	}
	if g := a.do("GET", "/v1/campaigns/retried", "", ""); !strings.Contains(g.body, `"rate_per_second":10,`) {
		t.Errorf("GET after the retries: %s, want the rate set by the PATCH, 10", g.body)
	}
	if n, err := a.rdb.Do(t.Context(), a.rdb.B().Xlen().Key(a.keys.Stream(pipeline.StreamCampaigns, a.keys.HashPartition("retried"))).Build()).AsInt64(); err != nil || n != 1 {
		t.Errorf("campaigns stream holds %d entries (%v), want the one of the create: a retry sends nothing new", n, err)
	}
}
