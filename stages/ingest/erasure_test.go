package ingest_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/pushpipe/pushpipe/pipeline/devices"
	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
	"github.com/pushpipe/pushpipe/stages/api"
	"github.com/pushpipe/pushpipe/stages/ingest"
)

// After a user's erasure, ingest applies the user's events no newer than
// it as tombstones without the user (a registration accepted before the
// erasure and still queued must not bring the device back), and newer
// puts as usual (the user came back). The erasure time is past every row
// the user had, so each row's delete event wins even when its put was
// stamped later than the time asked for.
func TestErasureVoidsOlderEventsOfTheUser(t *testing.T) {
	h := newHandler(t)
	tok := apnsToken
	// before the erasure: 42's devices 1 and 7 (7 stamped after the time
	// the erasure asks for), 9 owned by user 5
	h.batch(put(tok(1), 42, 1), put(tok(7), 42, 50), put(tok(9), 5, 1))
	e, err := devices.Erase(context.Background(), h.db, 42, base+10)
	if err != nil {
		t.Fatal(err)
	}
	if e.At != base+51 {
		t.Fatalf("erasure time %d, want %d: past the user's newest row", e.At-base, 51)
	}
	var erased []string
	for _, ev := range e.Tokens {
		erased = append(erased, ev.Token)
	}
	slices.Sort(erased)
	if want := []string{tok(1), tok(7)}; !slices.Equal(erased, want) {
		t.Fatalf("delete events for %v, want %v", erased, want)
	}
	// what was still queued, then the erasure's deletes, then later events
	if err := h.h.Handle(context.Background(), batchOf(h.keys, put(tok(2), 42, 5), put(tok(9), 42, 6), invalidate(tok(3), 42, 7), put(tok(4), 43, 8))); err != nil {
		t.Fatal(err)
	}
	if err := h.h.Handle(context.Background(), batchOf(h.keys, e.Tokens...)); err != nil {
		t.Fatal(err)
	}
	if err := h.h.Handle(context.Background(), batchOf(h.keys, put(tok(5), 42, 60), put(tok(1), 42, 40))); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		token string
		want  row
	}{
		{"a device in the table is deleted", tok(1), row{State: devices.Deleted, At: base + 51}},
		{"its put stamped past the time asked for too", tok(7), row{State: devices.Deleted, At: base + 51}},
		{"a queued registration is a tombstone", tok(2), row{Platform: devices.IOS, State: devices.Deleted, At: base + 5}},
		{"a queued move of another's device deletes it", tok(9), row{Platform: devices.IOS, State: devices.Deleted, At: base + 6}},
		{"an invalidation no longer names the user", tok(3), row{Platform: devices.IOS, State: devices.Invalidated, At: base + 7}},
		{"another user is untouched", tok(4), row{User: 43, Platform: devices.IOS, Locale: "en", At: base + 8}},
		{"a registration after the erasure registers", tok(5), row{User: 42, Platform: devices.IOS, Locale: "en", At: base + 60}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := h.row(tt.token); got != tt.want {
				t.Errorf("row %v, want %v", got, tt.want)
			}
		})
	}
}

// DELETE /v1/users/{id} against registrations the API accepted (202) while
// ingest was not running: ingest, started afterwards, must not re-create
// the devices registered before the erasure, and must create the one
// registered after it. The user's device already in the table is deleted,
// and the subscriptions and mutes are gone at once.
func TestEraseUserWithRegistrationsQueued(t *testing.T) {
	keys := testKeys()
	c := redisClient(t, env.Redis.Addr)
	_, db := testDB(t, 4)
	srv := httptest.NewServer(api.New(api.Config{Redis: c, DB: db, Keys: keys, Log: zerolog.Nop(), Auth: api.Auth{Insecure: true}}))
	t.Cleanup(srv.Close)
	tok := apnsToken
	// in the table before: 42's device 1 (applied by the handler directly)
	h := ingest.New(ingest.Config{DB: db, Log: zerolog.Nop()})
	if err := h.Handle(context.Background(), batchOf(keys, put(tok(1), 42, 1))); err != nil {
		t.Fatal(err)
	}
	// queued: accepted while ingest is not running
	send(t, "POST", srv.URL+"/v1/devices", device{App: "news", Platform: "ios", Token: tok(2), UserID: 42, Locale: "ko"})
	send(t, "POST", srv.URL+"/v1/devices/batch", []device{{App: "news", Platform: "ios", Token: tok(3), UserID: 42}, {App: "news", Platform: "ios", Token: tok(4), UserID: 7}})
	for _, call := range []struct{ method, path, body string }{
		{"PUT", "/v1/channels/sport/subscribers/42", ""},
		{"PUT", "/v1/channels/news/subscribers/42", ""},
		{"PUT", "/v1/users/42/preferences", `{"muted_channels":["sport"],"muted_categories":["promo"]}`},
	} {
		if got := call1(t, call.method, srv.URL+call.path, call.body, nil); got != http.StatusNoContent {
			t.Fatalf("%s %s: %d", call.method, call.path, got)
		}
	}
	var erased struct {
		DevicesQueued   int      `json:"devices_queued"`
		ChannelsRemoved []string `json:"channels_removed"`
		MutesRemoved    int      `json:"mutes_removed"`
	}
	if got := call1(t, "DELETE", srv.URL+"/v1/users/42", "", &erased); got != http.StatusAccepted {
		t.Fatalf("DELETE /v1/users/42: %d", got)
	}
	slices.Sort(erased.ChannelsRemoved)
	if erased.DevicesQueued != 1 || !slices.Equal(erased.ChannelsRemoved, []string{"news", "sport"}) || erased.MutesRemoved != 2 {
		t.Fatalf("erasure said %+v, want 1 device queued, channels news and sport, 2 mutes", erased)
	}
	// the user came back
	send(t, "POST", srv.URL+"/v1/devices", device{App: "news", Platform: "ios", Token: tok(5), UserID: 42})

	runStage(t, c, db, keys, 100)
	pipelinetest.Eventually(t, 30*time.Second, "the stage to finish", func() bool { return outstanding(t, c, keys) == 0 })
	tests := []struct {
		name  string
		token string
		state devices.State
		user  int64
	}{
		{"in the table before: deleted", tok(1), devices.Deleted, 0},
		{"queued before: never registered", tok(2), devices.Deleted, 0},
		{"queued before in a batch: never registered", tok(3), devices.Deleted, 0},
		{"another user's, queued before: registered", tok(4), devices.Active, 7},
		{"registered after: registered", tok(5), devices.Active, 42},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, ok := rowOf(t, db, "news", tt.token)
			if !ok || r.State != tt.state || r.User != tt.user {
				t.Errorf("row %v (found %v), want state %d user %d", r, ok, tt.state, tt.user)
			}
		})
	}
	var user struct {
		Devices []struct {
			Token, State string
		}
		Channels    []string
		Preferences struct {
			MutedChannels []string `json:"muted_channels"`
		}
	}
	if got := call1(t, "GET", srv.URL+"/v1/users/42", "", &user); got != http.StatusOK {
		t.Fatalf("GET /v1/users/42: %d", got)
	}
	if len(user.Devices) != 1 || user.Devices[0].Token != tok(5) || user.Devices[0].State != "active" ||
		len(user.Channels) != 0 || len(user.Preferences.MutedChannels) != 0 {
		t.Fatalf("after the erasure GET shows %+v, want only the device registered after it", user)
	}
}

// call1 makes one request and decodes a JSON answer into out (if not nil).
func call1(t *testing.T, method, url, body string, out any) int {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			t.Fatalf("%s %s: %v", method, url, err)
		}
	}
	return resp.StatusCode
}

// An erasure recorded while an upsert of the user's put is under way
// (here held on a row lock) waits for it, so it lists the row that upsert
// writes and deletes it; without the erasure lock it would list the rows
// from before, and the put, whose statement started before the erasure
// committed and so never saw it, would leave the device active.
func TestErasureWaitsForUpsertsUnderWay(t *testing.T) {
	// connections: the blocker, the upsert, the erasure, the test's looks
	_, db := testDB(t, 6)
	h := &handler{t: t, h: ingest.New(ingest.Config{DB: db, Log: zerolog.Nop()}), db: db, keys: testKeys(), want: model{}}
	// a deadlock of this test fails it rather than hanging the package
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	tok := apnsToken(1)
	if err := h.h.Handle(ctx, batchOf(h.keys, put(tok, 5, 1))); err != nil {
		t.Fatal(err)
	}
	blocker, err := h.db.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer blocker.Rollback(ctx)
	if _, err := blocker.Exec(ctx, `SELECT 1 FROM devices WHERE token = $1 FOR UPDATE`, tok); err != nil {
		t.Fatal(err)
	}
	upserted := make(chan error, 1)
	go func() { upserted <- h.h.Handle(ctx, batchOf(h.keys, put(tok, 42, 2))) }()
	waiting := func(what string) func() bool {
		return func() bool {
			var n int
			err := h.db.QueryRow(ctx, `SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database
				WHERE NOT l.granted AND d.datname = current_database() AND l.locktype = $1`, what).Scan(&n)
			return err == nil && n > 0
		}
	}
	pipelinetest.Eventually(t, 10*time.Second, "the upsert to wait for the row lock", func() bool {
		var n int
		err := h.db.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&n)
		return err == nil && n > 0
	})
	type result struct {
		e   devices.Erasure
		err error
	}
	erased := make(chan result, 1)
	go func() {
		e, err := devices.Erase(ctx, h.db, 42, base+10)
		erased <- result{e, err}
	}()
	var r result
	pipelinetest.Eventually(t, 10*time.Second, "the erasure to wait for the upsert, or to finish", func() bool {
		select {
		case r = <-erased:
			erased <- r
			return true
		default:
			return waiting("advisory")()
		}
	})
	if err := blocker.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-upserted; err != nil {
		t.Fatal(err)
	}
	r = <-erased
	if r.err != nil {
		t.Fatal(r.err)
	}
	if err := h.h.Handle(ctx, batchOf(h.keys, r.e.Tokens...)); err != nil {
		t.Fatal(err)
	}
	if got := h.row(tok); got.State != devices.Deleted || got.User != 0 {
		t.Fatalf("row %v after the erasure: the put under way survived it", got)
	}
}

// A provider's invalidation of a send made before an erasure, applied after
// it and stamped after it, names the erased user: it must not put the
// user's id back on the device, whether the erasure's delete was applied
// first or lost to the newer invalidation in the same batch. The event cannot
// tell such a send from one to a device registered after the erasure, so
// that one's owner is dropped too; another user's invalidations are not
// touched.
func TestLateInvalidationOfAnErasedUser(t *testing.T) {
	h := newHandler(t)
	tok := apnsToken
	h.batch(put(tok(1), 42, 1), put(tok(2), 42, 1), put(tok(3), 42, 1), put(tok(4), 7, 1))
	e, err := devices.Erase(context.Background(), h.db, 42, base+10)
	if err != nil {
		t.Fatal(err)
	}
	var first, rest []devices.Event // tok(1)'s delete, applied first; the others'
	for _, ev := range e.Tokens {
		if ev.Token == tok(1) {
			first = append(first, ev)
		} else {
			rest = append(rest, ev)
		}
	}
	h.batch(first...)
	// the provider's answers come after the erasure (stamped at 20); tok(2)'s
	// erasure delete is in the same batch as its invalidation and loses
	h.batch(append(rest, invalidate(tok(1), 42, 20), invalidate(tok(2), 42, 20), invalidate(tok(4), 7, 20))...)
	h.batch(put(tok(5), 42, 30))
	h.batch(invalidate(tok(5), 42, 40), invalidate(tok(6), 42, 40))
	tests := []struct {
		name  string
		token string
		want  row
	}{
		{"after the erasure's delete", tok(1), row{Platform: devices.IOS, State: devices.Invalidated, At: base + 20}},
		{"with the erasure's delete in its batch", tok(2), row{Platform: devices.IOS, State: devices.Invalidated, At: base + 20}},
		{"the erasure's delete alone", tok(3), row{State: devices.Deleted, At: e.At}},
		{"another user's", tok(4), row{User: 7, Platform: devices.IOS, State: devices.Invalidated, At: base + 20}},
		{"of a device registered after the erasure", tok(5), row{Platform: devices.IOS, State: devices.Invalidated, At: base + 40}},
		{"of a token never registered", tok(6), row{Platform: devices.IOS, State: devices.Invalidated, At: base + 40}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := h.row(tt.token); got != tt.want {
				t.Errorf("row %v, want %v", got, tt.want)
			}
		})
	}
}
