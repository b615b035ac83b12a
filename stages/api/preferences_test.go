package api

import (
	"context"
	"encoding/json"
	"maps"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
	"github.com/pushpipe/pushpipe/pipeline/prefs"
)

func (a *deviceAPI) prefs(user int64) map[string]string {
	a.t.Helper()
	m, err := a.rdb.Do(context.Background(), a.rdb.B().Hgetall().Key(a.keys.Preferences(user)).Build()).AsStrMap()
	if err != nil {
		a.t.Fatal(err)
	}
	delete(m, prefs.VersionField)
	return m
}

// Each PUT replaces the whole set, and resolve reads exactly the fields
// pipeline.PrefChannel / PrefCategory name.
func TestPreferencesReplaceTheWholeSet(t *testing.T) {
	t.Parallel()
	a := newDeviceAPI(t, env.Redis.Addr, Auth{Insecure: true})
	steps := []struct {
		give string
		want map[string]string
	}{
		{`{"muted_channels":["promo","sport.eu"],"muted_categories":["marketing"]}`,
			map[string]string{pipeline.PrefChannel("promo"): "1", pipeline.PrefChannel("sport.eu"): "1", pipeline.PrefCategory("marketing"): "1"}},
		{`{"muted_channels":["weather"]}`, map[string]string{"c:weather": "1"}},
		{`{"muted_channels":["weather"]}`, map[string]string{"c:weather": "1"}}, // idempotent
		// a channel id may be a JSON number, read as its decimal text, as in a campaign
		{`{"muted_channels":[101,"weather"]}`, map[string]string{pipeline.PrefChannel("101"): "1", "c:weather": "1"}},
		{`{"muted_channels":[],"muted_categories":[]}`, map[string]string{}},
	}
	for i, s := range steps {
		if r := a.do("PUT", "/v1/users/77/preferences", s.give, ""); r.status != http.StatusNoContent {
			t.Fatalf("step %d: got %d %s", i, r.status, r.body)
		}
		if got := a.prefs(77); !maps.Equal(got, s.want) {
			t.Fatalf("step %d: hash %v, want %v", i, got, s.want)
		}
		// GET reads back what the PUT stored, as names.
		r := a.do("GET", "/v1/users/77/preferences", "", "")
		var read map[string][]string
		if err := json.Unmarshal([]byte(r.body), &read); r.status != http.StatusOK || err != nil {
			t.Fatalf("step %d: GET %d %s", i, r.status, r.body)
		}
		got := map[string]string{}
		for _, c := range read["muted_channels"] {
			got[pipeline.PrefChannel(c)] = "1"
		}
		for _, c := range read["muted_categories"] {
			got[pipeline.PrefCategory(c)] = "1"
		}
		if !maps.Equal(got, s.want) || read["muted_channels"] == nil || read["muted_categories"] == nil {
			t.Fatalf("step %d: GET %s, want %v (both lists, empty or not)", i, r.body, s.want)
		}
	}
	for _, tt := range []struct {
		path string
		want int
		body string
	}{
		{"/v1/users/79/preferences", http.StatusOK, `{"muted_channels":[],"muted_categories":[]}`}, // never set any
		{"/v1/users/0/preferences", http.StatusBadRequest, "user_id"},
		{"/v1/users/x/preferences", http.StatusBadRequest, "user_id"},
	} {
		if r := a.do("GET", tt.path, "", ""); r.status != tt.want || !strings.Contains(r.body, tt.body) {
			t.Errorf("GET %s: %d %s, want %d with %s", tt.path, r.status, r.body, tt.want, tt.body)
		}
	}
	// 1000 + 1000 entries: more arguments than one Lua unpack would take at once
	many := map[string][]string{"muted_channels": make([]string, 1000), "muted_categories": make([]string, 1000)}
	for i := range 1000 {
		many["muted_channels"][i] = "ch" + strconv.Itoa(i)
		many["muted_categories"][i] = "cat" + strconv.Itoa(i)
	}
	body, _ := json.Marshal(many)
	if r := a.do("PUT", "/v1/users/78/preferences", string(body), ""); r.status != http.StatusNoContent {
		t.Fatalf("2000 entries: got %d %s", r.status, r.body)
	}
	if got := a.prefs(78); len(got) != 2000 {
		t.Fatalf("2000 entries: hash has %d fields", len(got))
	}
}

// The lists are sets: a name given twice (or a channel as 101 and "101")
// is stored, and read back, once, in the order first given.
func TestPreferencesNameEachOnce(t *testing.T) {
	t.Parallel()
	a := newDeviceAPI(t, env.Redis.Addr, Auth{Insecure: true})
	tests := []struct{ give, want string }{
		{`{"muted_channels":["weather","news","weather"],"muted_categories":["promo","promo"]}`,
			`{"muted_channels":["weather","news"],"muted_categories":["promo"]}`},
		{`{"muted_channels":[101,"101","a"]}`, `{"muted_channels":["101","a"],"muted_categories":[]}`},
		{`{"muted_channels":[],"muted_categories":null}`, `{"muted_channels":[],"muted_categories":[]}`},
	}
	for i, tt := range tests {
		if r := a.do("PUT", "/v1/users/80/preferences", tt.give, ""); r.status != http.StatusNoContent {
			t.Fatalf("%d: PUT %d %s", i, r.status, r.body)
		}
		if r := a.do("GET", "/v1/users/80/preferences", "", ""); r.status != http.StatusOK || strings.TrimSpace(r.body) != tt.want {
			t.Errorf("%d: PUT %s, then GET %d %s; want %s", i, tt.give, r.status, r.body, tt.want)
		}
	}
}

func TestMalformedPreferences(t *testing.T) {
	t.Parallel()
	a := newDeviceAPI(t, env.Redis.Addr, Auth{Insecure: true})
	tooMany, _ := json.Marshal(map[string][]string{"muted_categories": make([]string, 1001)})
	tests := []struct{ path, give, want string }{
		{"/v1/users/0/preferences", `{}`, "user_id: must be a positive integer"},
		{"/v1/users/x/preferences", `{}`, "user_id: must be a positive integer"},
		{"/v1/users/1/preferences", `{"muted_channels":["ok","bad name"]}`, "muted_channels[1]: has only A-Z a-z 0-9 _ . : - characters"},
		{"/v1/users/1/preferences", `{"muted_categories":[""]}`, "muted_categories[0]: must be 1–128 characters"},
		{"/v1/users/1/preferences", string(tooMany), "muted_categories: at most 1000 entries, got 1001"},
		{"/v1/users/1/preferences", `{"muted":["a"]}`, `unknown field "muted"`},
		{"/v1/users/1/preferences", `{"muted_channels":"a"}`, `field "muted_channels": expected a JSON array, got string`},
		{"/v1/users/1/preferences", `{"muted_channels":["a",null]}`, `muted_channels[1]: must be a string or an integer, got null`},
		{"/v1/users/1/preferences", `{"muted_categories":["a",7]}`, `field "muted_categories[1]": expected a string, got number`},
		{"/v1/users/1/preferences", ``, "empty body"},
	}
	for _, tt := range tests {
		if r := a.do("PUT", tt.path, tt.give, ""); r.status != 400 || !strings.Contains(r.error(), tt.want) {
			t.Errorf("PUT %s %s: got %d %s, want 400 with %q", tt.path, tt.give, r.status, r.body, tt.want)
		}
	}
	if got := a.prefs(1); len(got) != 0 {
		t.Fatalf("rejected requests wrote %v", got)
	}
}

// TestPreferencesWithRedisDown: PostgreSQL takes the new set before Redis
// (resolve's copy) fails, so the 503 must not say nothing was accepted: a
// client believing it would leave GET showing mutes that resolve does not
// apply. It says to PUT again, and that retry, once Redis is back, puts
// the set where resolve reads it.
func TestPreferencesWithRedisDown(t *testing.T) {
	t.Parallel()
	r := pipelinetest.RedisT(t, pipelinetest.RedisOptions{})
	a := newDeviceAPI(t, r.Addr, Auth{Insecure: true})
	const body = `{"muted_channels":["sport"]}`
	if err := r.Kill(); err != nil {
		t.Fatal(err)
	}
	resp := a.do("PUT", "/v1/users/7/preferences", body, "")
	if resp.status != http.StatusServiceUnavailable || resp.header.Get("Retry-After") == "" {
		t.Fatalf("with Redis down: %d (Retry-After %q) %s, want 503 + Retry-After", resp.status, resp.header.Get("Retry-After"), resp.body)
	}
	if msg := resp.error(); strings.Contains(msg, "nothing was accepted") || !strings.Contains(msg, "PUT the same request again") {
		t.Errorf("503 %q: want it to say the set may be stored in part and to PUT it again", msg)
	}
	if err := r.Restart(); err != nil {
		t.Fatal(err)
	}
	pipelinetest.Eventually(t, 10*time.Second, "the retry to be stored", func() bool {
		return a.do("PUT", "/v1/users/7/preferences", body, "").status == http.StatusNoContent
	})
	if got := a.prefs(7); !maps.Equal(got, map[string]string{pipeline.PrefChannel("sport"): "1"}) {
		t.Errorf("Redis holds %v after the retry, want sport muted", got)
	}
}
