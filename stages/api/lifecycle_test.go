package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pushpipe/pushpipe/pipeline/campaign"
	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
)

func TestMalformedLifecycle(t *testing.T) {
	t.Parallel()
	a := newDeviceAPI(t, env.Redis.Addr, Auth{Insecure: true})
	ok := `"app":"a","channels":["x"],"notification":{"title":"t"}`
	far := time.Now().Add(91 * 24 * time.Hour).UTC().Format(time.RFC3339)
	tests := []struct{ body, want string }{
		{`{` + ok + `,"send_at":"tomorrow"}`, "send_at: must be an RFC 3339 time"},
		{`{` + ok + `,"send_at":"` + far + `"}`, "send_at: at most 90 days ahead"},
		{`{` + ok + `,"rate_per_second":0}`, "rate_per_second: must be a whole number"},
		{`{` + ok + `,"rate_per_second":-5}`, "rate_per_second: must be a whole number"},
		{`{` + ok + `,"rate_per_second":2.5}`, `field "rate_per_second"`},
		{`{` + ok + `,"rate_per_second":1000001}`, "rate_per_second: must be a whole number of sends per second from 1 to 1000000"},
		{`{` + ok + `,"rate_per_second":99999999999999999999}`, `field "rate_per_second"`},
		{`{` + ok + `,"rate_per_second":"50"}`, `field "rate_per_second"`},
		{`{` + ok + `,"rate_per_second":true}`, `field "rate_per_second"`},
		{`{` + ok + `,"priority":"urgent"}`, `priority: must be "normal" or "high"`},
		{`{` + ok + `,"priority":"` + strings.Repeat("p", 2000) + `"}`, `got "` + strings.Repeat("p", 64) + `…"`},
		{`{` + ok + `,"send_at":"` + strings.Repeat("t", 2000) + `"}`, `got "` + strings.Repeat("t", 64) + `…"`},
		{`{` + ok + `,"` + strings.Repeat("f", 2000) + `":1}`, `unknown field "` + strings.Repeat("f", 64) + `…"`},
		{`{"app":"a","channels":[1.5],"notification":{"title":"t"}}`, "channels"},
	}
	for _, tt := range tests {
		r := a.do("POST", "/v1/campaigns", tt.body, "")
		if r.status != http.StatusBadRequest || !strings.Contains(r.error(), tt.want) {
			t.Errorf("POST %.80s: got %d %s, want 400 with %q", tt.body, r.status, r.body, tt.want)
		}
	}
	// The bounds themselves are caps (1 and 1,000,000 a second), stored as given.
	for _, rate := range []int{1, campaign.MaxRatePerSecond} {
		id := fmt.Sprintf("rate-%d", rate)
		body := fmt.Sprintf(`{"id":%q,%s,"allow_empty":true,"rate_per_second":%d}`, id, ok, rate)
		if r := a.do("POST", "/v1/campaigns", body, ""); r.status != http.StatusCreated {
			t.Errorf("rate_per_second %d: %d %s, want 201", rate, r.status, r.body)
		} else if r := a.do("GET", "/v1/campaigns/"+id, "", ""); !strings.Contains(r.body, fmt.Sprintf(`"rate_per_second":%d`, rate)) {
			t.Errorf("rate_per_second %d: reported %s", rate, r.body)
		}
	}
	if r := a.do("POST", "/v1/campaigns/nope/cancel", "", ""); r.status != http.StatusNotFound || r.error() == "" {
		t.Errorf("cancel of an unknown campaign: %d %s, want 404", r.status, r.body)
	}
	for _, tt := range []struct{ query, want string }{
		{"state=sleeping", `state: must be one of scheduled, splitting, running, done, canceled, failed, got "sleeping"`},
		{"limit=0", "limit: must be a whole number from 1 to 100 (default 20), got 0"},
		{"limit=101", "limit: must be a whole number from 1 to 100 (default 20), got 101"},
		{"limit=x", `limit: must be a whole number from 1 to 100 (default 20), got "x"`},
		{"limit=" + strings.Repeat("9", 2000), `got "` + strings.Repeat("9", 64) + `…"`},
		{"state=" + strings.Repeat("s", 2000), `got "` + strings.Repeat("s", 64) + `…"`},
		{strings.Repeat("q", 2000) + "=1", `unknown query parameter "` + strings.Repeat("q", 64) + `…"`},
		{"before=nope", "before"},
		{"before=a%2Fb", "before: only letters, digits"},
	} {
		if r := a.do("GET", "/v1/campaigns?"+tt.query, "", ""); r.status != http.StatusBadRequest || !strings.Contains(r.error(), tt.want) {
			t.Errorf("list ?%s: %d %s, want 400 with %q", tt.query, r.status, r.body, tt.want)
		}
	}
}

// TestNumericChannels: [101] is the channel "101", as the path reads it.
func TestNumericChannels(t *testing.T) {
	t.Parallel()
	a := newDeviceAPI(t, env.Redis.Addr, Auth{Insecure: true})
	r := a.do("POST", "/v1/campaigns", `{"id":"n1","app":"a","channels":[101,"news"],"notification":{"title":"t"}}`, "")
	if r.status != http.StatusCreated {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	var chans []string
	if err := a.db.QueryRow(t.Context(), `SELECT channels FROM campaigns WHERE id = 'n1'`).Scan(&chans); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(chans) != "[101 news]" {
		t.Fatalf("channels stored as %q", chans)
	}
}

func TestBulkSubscribers(t *testing.T) {
	t.Parallel()
	a := newDeviceAPI(t, env.Redis.Addr, Auth{Insecure: true})
	count := func() (n int, sum int64) {
		t.Helper()
		if err := a.db.QueryRow(t.Context(), `SELECT count(*), coalesce(sum(user_id), 0) FROM subscriptions WHERE channel = '7'`).Scan(&n, &sum); err != nil {
			t.Fatal(err)
		}
		return n, sum
	}
	ids := make([]string, 10_000)
	for i := range ids {
		ids[i] = fmt.Sprint(i + 1)
	}
	r := a.do("POST", "/v1/channels/7/subscribers", `{"add":[`+strings.Join(ids, ",")+`]}`, "")
	if r.status != http.StatusNoContent {
		t.Fatalf("add 10,000: %d %s", r.status, r.body)
	}
	if n, _ := count(); n != 10_000 {
		t.Fatalf("%d subscribers after adding 10,000", n)
	}
	// again with a removal: idempotent adds, removals in the same statement
	r = a.do("POST", "/v1/channels/7/subscribers", `{"add":[1,2,10001],"remove":[3,4,999999]}`, "")
	if r.status != http.StatusNoContent {
		t.Fatalf("add and remove: %d %s", r.status, r.body)
	}
	if n, sum := count(); n != 9_999 || sum != 10_000*10_001/2+10_001-3-4 {
		t.Fatalf("%d subscribers (sum %d) after adding 1, 2, 10001 and removing 3, 4", n, sum)
	}
	tests := []struct {
		body   string
		status int
		want   string
	}{
		{`{"add":[` + strings.Join(ids, ",") + `],"remove":[1]}`, http.StatusRequestEntityTooLarge, "10001 user ids"},
		{`{"add":[1],"remove":[1]}`, http.StatusBadRequest, "user 1 is in add too"},
		{`{"add":[0]}`, http.StatusBadRequest, "add[0]: user ids are positive"},
		{`{"add":["x"]}`, http.StatusBadRequest, `field "add[0]"`},
		{`{}`, http.StatusBadRequest, "give at least one of the lists"},
		{`{"add":null,"remove":null}`, http.StatusBadRequest, "give at least one of the lists"},
		// A sync job with nothing to change: done, not an error.
		{`{"add":[],"remove":[]}`, http.StatusNoContent, ""},
		{`{"remove":[]}`, http.StatusNoContent, ""},
		{`{"add":[1],"extra":1}`, http.StatusBadRequest, `unknown field "extra"`},
	}
	for _, tt := range tests {
		r := a.do("POST", "/v1/channels/7/subscribers", tt.body, "")
		if r.status != tt.status || !strings.Contains(r.error(), tt.want) {
			t.Errorf("POST %.60s: got %d %s, want %d with %q", tt.body, r.status, r.body, tt.status, tt.want)
		}
	}
	if n, _ := count(); n != 9_999 {
		t.Fatalf("%d subscribers after refused requests, want 9999", n)
	}
}

// TestListPagesAndSurvivesFlush: newest first, pages joined by next, a
// state filter; after FLUSHALL the list comes from PostgreSQL.
func TestListPagesAndSurvivesFlush(t *testing.T) {
	t.Parallel()
	redis := pipelinetest.RedisT(t, pipelinetest.RedisOptions{})
	a := newDeviceAPI(t, redis.Addr, Auth{Insecure: true})
	var want []string
	for i := range 7 {
		id := fmt.Sprintf("c%d", i)
		if r := a.do("POST", "/v1/campaigns", `{"id":"`+id+`","app":"a","channels":["x"],"notification":{"title":"t"}}`, ""); r.status != 201 {
			t.Fatalf("create %s: %d %s", id, r.status, r.body)
		}
		want = append([]string{id}, want...)
	}
	if r := a.do("POST", "/v1/campaigns/c2/cancel", "", ""); r.status != 200 || !strings.Contains(r.body, `"state":"canceled"`) {
		t.Fatalf("cancel c2: %d %s", r.status, r.body)
	}
	if r := a.do("POST", "/v1/campaigns/c2/cancel", "", ""); r.status != 200 || !strings.Contains(r.body, `"state":"canceled"`) {
		t.Fatalf("cancel c2 again: %d %s", r.status, r.body)
	}
	list := func(query string) (ids, states []string) {
		t.Helper()
		next := ""
		for page := 0; ; page++ {
			q := query
			if next != "" {
				q += "&before=" + next
			}
			r := a.do("GET", "/v1/campaigns?"+q, "", "")
			var p struct {
				Campaigns []struct{ ID, State string }
				Next      string
			}
			if err := json.Unmarshal([]byte(r.body), &p); r.status != 200 || err != nil {
				t.Fatalf("list ?%s: %d %s", q, r.status, r.body)
			}
			for _, c := range p.Campaigns {
				ids, states = append(ids, c.ID), append(states, c.State)
			}
			if next = p.Next; next == "" || page > 10 {
				return ids, states
			}
		}
	}
	check := func(when string) {
		t.Helper()
		ids, states := list("limit=3")
		if fmt.Sprint(ids) != fmt.Sprint(want) {
			t.Errorf("%s: pages of 3 list %v, want %v", when, ids, want)
		}
		for i, id := range ids {
			if s := states[i]; (id == "c2") != (s == "canceled") || s == "" {
				t.Errorf("%s: %s is %q", when, id, s)
			}
		}
		if ids, _ := list("state=canceled&limit=2"); fmt.Sprint(ids) != "[c2]" {
			t.Errorf("%s: canceled campaigns %v, want [c2]", when, ids)
		}
		if ids, _ := list("state=splitting&limit=4"); len(ids) != 6 {
			t.Errorf("%s: splitting campaigns %v, want 6", when, ids)
		}
	}
	check("before FLUSHALL")
	if err := a.rdb.Do(context.Background(), a.rdb.B().Flushall().Build()).Error(); err != nil {
		t.Fatal(err)
	}
	check("after FLUSHALL")
}

// TestListRefusesUnknownQuery: a misspelt filter (?status=running) or a
// repeated one would list every campaign as if it had been applied; it is
// a 400 naming the parameter and the ones the route takes.
func TestListRefusesUnknownQuery(t *testing.T) {
	t.Parallel()
	a := newDeviceAPI(t, env.Redis.Addr, Auth{Insecure: true})
	tests := []struct {
		give       string
		wantStatus int
		want       []string
	}{
		{"status=running", http.StatusBadRequest, []string{`unknown query parameter "status"`, "state, limit and before"}},
		{"state=running&limt=5", http.StatusBadRequest, []string{`unknown query parameter "limt"`}},
		{"state=done&state=running", http.StatusBadRequest, []string{`query parameter "state" is given 2 times`}},
		{"limit=1&limit=2", http.StatusBadRequest, []string{`query parameter "limit" is given 2 times`}},
		{"state=%zz", http.StatusBadRequest, []string{"query string"}},
		{"state=running&limit=5", http.StatusOK, nil},
		{"", http.StatusOK, nil},
	}
	for _, tt := range tests {
		r := a.do("GET", "/v1/campaigns?"+tt.give, "", "")
		if r.status != tt.wantStatus {
			t.Errorf("list ?%s: %d %s, want %d", tt.give, r.status, r.body, tt.wantStatus)
			continue
		}
		for _, w := range tt.want {
			if !strings.Contains(r.error(), w) {
				t.Errorf("list ?%s: error %q does not say %q", tt.give, r.error(), w)
			}
		}
	}
}

// TestEveryRouteRefusesUnknownQuery: every route refuses a query parameter
// it does not take, as the lists do; GET /v1/users/{id}/preferences?x=1
// answered 200 as if x meant something. The table holds one request of
// each route, so a route added later is checked too.
func TestEveryRouteRefusesUnknownQuery(t *testing.T) {
	t.Parallel()
	a := newDeviceAPI(t, env.Redis.Addr, Auth{Insecure: true})
	tests := []struct {
		route string // the pattern
		path  string
		body  string
		want  string // what it says the route takes
	}{
		{"POST /v1/devices", "/v1/devices", `{"app":"a","platform":"android","token":"t1","user_id":1}`, "takes none"},
		{"POST /v1/devices/batch", "/v1/devices/batch", `[]`, "takes none"},
		{"DELETE /v1/devices/{app}/{token}", "/v1/devices/a/t1", "", "takes none"},
		{"POST /v1/channels/{channel}/subscribers", "/v1/channels/x/subscribers", `{"add":[1]}`, "takes none"},
		{"PUT /v1/channels/{channel}/subscribers/{user_id}", "/v1/channels/x/subscribers/1", "", "takes none"},
		{"DELETE /v1/channels/{channel}/subscribers/{user_id}", "/v1/channels/x/subscribers/1", "", "takes none"},
		{"GET /v1/channels", "/v1/channels", "", "takes limit and after"},
		{"GET /v1/channels/{channel}", "/v1/channels/x", "", "takes none"},
		{"GET /v1/users/{user_id}", "/v1/users/1", "", "takes none"},
		{"DELETE /v1/users/{user_id}", "/v1/users/1", "", "takes none"},
		{"GET /v1/users/{user_id}/preferences", "/v1/users/1/preferences", "", "takes none"},
		{"PUT /v1/users/{user_id}/preferences", "/v1/users/1/preferences", `{"muted_channels":[]}`, "takes none"},
		{"POST /v1/campaigns", "/v1/campaigns", `{"app":"a","channels":["x"],"notification":{"title":"t"}}`, "takes none"},
		{"GET /v1/campaigns", "/v1/campaigns", "", "takes state, limit and before"},
		{"GET /v1/campaigns/{id}", "/v1/campaigns/c1", "", "takes none"},
		{"POST /v1/campaigns/{id}/cancel", "/v1/campaigns/c1/cancel", "", "takes none"},
		{"PATCH /v1/campaigns/{id}", "/v1/campaigns/c1", `{"rate_per_second":5}`, "takes none"},
		{"POST /v1/messages", "/v1/messages", `{"app":"a","users":[1],"notification":{"title":"t"}}`, "takes none"},
		{"GET /v1/messages", "/v1/messages", "", "takes limit and before"},
		{"GET /v1/messages/{id}", "/v1/messages/m1", "", "takes none"},
		{"GET " + OpenAPIPath, OpenAPIPath, "", "takes none"},
	}
	var covered []string
	for _, tt := range tests {
		t.Run(tt.route, func(t *testing.T) {
			method, _, _ := strings.Cut(tt.route, " ")
			covered = append(covered, tt.route)
			r := a.do(method, tt.path+"?x=1", tt.body, "")
			if r.status != http.StatusBadRequest || !strings.Contains(r.error(), `unknown query parameter "x"`) ||
				!strings.Contains(r.error(), tt.want) {
				t.Errorf("%s?x=1: %d %s, want 400 naming x and that it %s", tt.path, r.status, r.body, tt.want)
			}
		})
	}
	for _, rt := range a.srv.routes() {
		if rt.scope != scopeConsole && !slices.Contains(covered, rt.pattern) {
			t.Errorf("route %s is not in the table", rt.pattern)
		}
	}
}

// TestCampaignRoutesWithRedisDown: a cancel that fails may have set the
// flag the stages stop on before PostgreSQL recorded it, so its 503 does
// not say nothing was accepted; it says to send it again. A read says it
// could not read.
func TestCampaignRoutesWithRedisDown(t *testing.T) {
	t.Parallel()
	r := pipelinetest.RedisT(t, pipelinetest.RedisOptions{})
	a := newDeviceAPI(t, r.Addr, Auth{Insecure: true})
	if resp := a.do("POST", "/v1/campaigns", `{"id":"down-1","app":"a","channels":["x"],"notification":{"title":"t"},"allow_empty":true}`, ""); resp.status != http.StatusCreated {
		t.Fatalf("create: %d %s", resp.status, resp.body)
	}
	if err := r.Kill(); err != nil {
		t.Fatal(err)
	}
	tests := []struct{ method, path, say string }{
		{"POST", "/v1/campaigns/down-1/cancel", "send the same request again"},
		{"GET", "/v1/campaigns/down-1", "could not be read"},
	}
	for _, tt := range tests {
		resp := a.do(tt.method, tt.path, "", "")
		if resp.status != http.StatusServiceUnavailable || resp.header.Get("Retry-After") == "" ||
			strings.Contains(resp.error(), "nothing was accepted") || !strings.Contains(resp.error(), tt.say) {
			t.Errorf("%s %s with Redis down: %d (Retry-After %q) %s, want 503 + Retry-After saying %q",
				tt.method, tt.path, resp.status, resp.header.Get("Retry-After"), resp.body, tt.say)
		}
	}
}

// TestSendAtForms: send_at is any RFC 3339 time, in any offset, with
// fractions, and with "t" and "z" in lower case, which RFC 3339 (5.6)
// allows: "2026-12-06t07:30:00z" was refused as "must be an RFC 3339
// time". What is not RFC 3339 is still refused, naming the field.
func TestSendAtForms(t *testing.T) {
	t.Parallel()
	a := newDeviceAPI(t, env.Redis.Addr, Auth{Insecure: true})
	at := time.Now().Add(48 * time.Hour).UTC().Truncate(time.Second)
	day := at.Format(time.DateOnly)
	clock := at.Format(time.TimeOnly)
	tests := []struct {
		name, give string
		want       time.Time // zero: refused
	}{
		{"UTC", day + "T" + clock + "Z", at},
		{"lower case", day + "t" + clock + "z", at},
		{"offset", at.In(time.FixedZone("", 9*3600)).Format(time.RFC3339), at},
		{"fraction", day + "T" + clock + ".25Z", at.Add(250 * time.Millisecond)},
		{"no zone", day + "T" + clock, time.Time{}},
		{"a date", day, time.Time{}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := fmt.Sprintf("at%d", i)
			r := a.do("POST", "/v1/campaigns", `{"id":"`+id+`","app":"a","channels":["x"],"notification":{"title":"t"},"allow_empty":true,"send_at":"`+tt.give+`"}`, "")
			if tt.want.IsZero() {
				if r.status != http.StatusBadRequest || !strings.Contains(r.error(), "send_at: must be an RFC 3339 time") {
					t.Fatalf("send_at %q: %d %s, want 400 naming send_at", tt.give, r.status, r.body)
				}
				return
			}
			if r.status != http.StatusCreated {
				t.Fatalf("send_at %q: %d %s", tt.give, r.status, r.body)
			}
			var rep struct {
				State  string
				SendAt time.Time `json:"send_at"`
			}
			if r := a.do("GET", "/v1/campaigns/"+id, "", ""); json.Unmarshal([]byte(r.body), &rep) != nil || rep.State != "scheduled" || !rep.SendAt.Equal(tt.want) {
				t.Fatalf("send_at %q: %s, want scheduled at %v", tt.give, r.body, tt.want)
			}
		})
	}
}
