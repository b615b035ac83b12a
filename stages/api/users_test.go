package api

import (
	"context"
	"encoding/json"
	"maps"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/devices"
	"github.com/pushpipe/pushpipe/pipeline/users"
)

// GET /v1/users/{id} shows the user's rows in every app and state, the
// channels and the mutes; a user never seen is empty lists, and a user with
// more devices than are listed says so.
func TestGetUser(t *testing.T) {
	t.Parallel()
	a := newDeviceAPI(t, env.Redis.Addr, Auth{Insecure: true})
	ctx := context.Background()
	_, err := a.db.Exec(ctx, `
		INSERT INTO devices (app, token, user_id, platform, locale, state, event_at) VALUES
			('news', 'tok-a', 42, 2, 'ko', 0, now()), ('chat', 'tok-b', 42, 1, '', 2, now()), ('news', 'tok-c', 43, 2, '', 0, now());
		INSERT INTO subscriptions (channel, user_id) VALUES ('sport', 42), ('news', 42), ('sport', 43)`)
	if err != nil {
		t.Fatal(err)
	}
	_, err = a.db.Exec(ctx, `INSERT INTO devices (app, token, user_id, platform, event_at)
		SELECT 'many', 'tok-' || i, 44, 2, now() FROM generate_series(1, $1::int) AS i`, users.MaxListed+1)
	if err != nil {
		t.Fatal(err)
	}
	if r := a.do("PUT", "/v1/users/42/preferences", `{"muted_categories":["promo"]}`, ""); r.status != http.StatusNoContent {
		t.Fatalf("PUT preferences: %d %s", r.status, r.body)
	}
	tests := []struct {
		name        string
		user        string
		devices     []string // app/token state
		devicesMore bool
		channels    []string
		categories  []string
	}{
		{"devices in every app and state, channels, mutes", "42", []string{"chat/tok-b invalidated", "news/tok-a active"}, false, []string{"news", "sport"}, []string{"promo"}},
		{"never seen: empty lists", "4242", []string{}, false, []string{}, []string{}},
		{"more devices than listed", "44", nil, true, []string{}, []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := a.do("GET", "/v1/users/"+tt.user, "", "")
			var v users.View
			if err := json.Unmarshal([]byte(r.body), &v); r.status != http.StatusOK || err != nil {
				t.Fatalf("%d %s", r.status, r.body)
			}
			got := []string{}
			for _, d := range v.Devices {
				got = append(got, d.App+"/"+d.Token+" "+d.State)
			}
			if tt.devices != nil && !equalStrings(got, tt.devices) || v.DevicesMore != tt.devicesMore ||
				tt.devicesMore && len(v.Devices) != users.MaxListed {
				t.Errorf("devices %v (%d, more %v), want %v (more %v)", got, len(got), v.DevicesMore, tt.devices, tt.devicesMore)
			}
			if !equalStrings(v.Channels, tt.channels) || !equalStrings(v.Preferences.MutedCategories, tt.categories) ||
				v.Preferences.MutedChannels == nil || v.ErasedAt != nil {
				t.Errorf("got %s", r.body)
			}
		})
	}
}

func equalStrings(a, b []string) bool {
	return a != nil && b != nil && len(a) == len(b) && maps.Equal(set(a), set(b))
}

func set(s []string) map[string]bool {
	m := map[string]bool{}
	for _, x := range s {
		m[x] = true
	}
	return m
}

// DELETE /v1/users/{id} queues a delete event for each of the user's rows,
// removes the subscriptions and mutes (Redis's copy too, so resolve stops
// applying them), records the erasure, and is idempotent; the user's next
// mutes still apply (the preferences version did not go back).
func TestDeleteUser(t *testing.T) {
	t.Parallel()
	a := newDeviceAPI(t, env.Redis.Addr, Auth{Insecure: true})
	ctx := context.Background()
	_, err := a.db.Exec(ctx, `
		INSERT INTO devices (app, token, user_id, platform, state, event_at) VALUES
			('news', 'tok-a', 42, 2, 0, now()), ('chat', 'tok-b', 42, 1, 2, now()), ('news', 'tok-c', 43, 2, 0, now());
		INSERT INTO subscriptions (channel, user_id) VALUES ('sport', 42), ('sport', 43)`)
	if err != nil {
		t.Fatal(err)
	}
	if r := a.do("PUT", "/v1/users/42/preferences", `{"muted_channels":["sport"],"muted_categories":["promo"]}`, ""); r.status != http.StatusNoContent {
		t.Fatalf("PUT preferences: %d %s", r.status, r.body)
	}
	tests := []struct {
		name     string
		queued   int
		channels []string
		mutes    int
	}{
		{"first", 2, []string{"sport"}, 2},
		{"again: the rows are still the user's until ingest runs", 2, []string{}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := a.do("DELETE", "/v1/users/42", "", "")
			var e users.Erasure
			if err := json.Unmarshal([]byte(r.body), &e); r.status != http.StatusAccepted || err != nil {
				t.Fatalf("%d %s", r.status, r.body)
			}
			if e.DevicesQueued != tt.queued || !equalStrings(e.ChannelsRemoved, tt.channels) || e.MutesRemoved != tt.mutes {
				t.Errorf("got %s", r.body)
			}
		})
	}
	// the delete events, in the ingest stream as DELETE /v1/devices puts them
	var deletes []string
	for _, s := range a.keys.Streams(pipeline.StreamIngest) {
		xs, err := a.rdb.Do(ctx, a.rdb.B().Xrange().Key(s).Start("-").End("+").Build()).AsXRange()
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range xs {
			ev, err := devices.ParseEvent(x.FieldValues, time.Now())
			if err != nil || ev.Op != pipeline.OpDelete || ev.User != 0 {
				t.Fatalf("entry %v: %+v %v", x.FieldValues, ev, err)
			}
			deletes = append(deletes, ev.App+"/"+ev.Token)
		}
	}
	if want := []string{"news/tok-a", "chat/tok-b", "news/tok-a", "chat/tok-b"}; len(deletes) != 4 || !equalStrings(deletes, want) {
		t.Errorf("ingest stream holds %v, want %v", deletes, want)
	}
	if m := a.prefs(42); len(m) != 0 {
		t.Errorf("Redis still mutes %v for the erased user", m)
	}
	var v users.View
	r := a.do("GET", "/v1/users/42", "", "")
	if err := json.Unmarshal([]byte(r.body), &v); err != nil || v.ErasedAt == nil || len(v.Channels) != 0 {
		t.Errorf("after the erasure: %s", r.body)
	}
	if r := a.do("GET", "/v1/users/43", "", ""); !strings.Contains(r.body, `"channels":["sport"]`) || !strings.Contains(r.body, `"token":"tok-c"`) {
		t.Errorf("another user changed: %s", r.body)
	}
	if r := a.do("PUT", "/v1/users/42/preferences", `{"muted_channels":["weather"]}`, ""); r.status != http.StatusNoContent {
		t.Fatalf("PUT preferences after the erasure: %d %s", r.status, r.body)
	}
	if m := a.prefs(42); !maps.Equal(m, map[string]string{pipeline.PrefChannel("weather"): "1"}) {
		t.Errorf("mutes set after the erasure: Redis has %v", m)
	}
}
