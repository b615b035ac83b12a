package users

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
)

var env *pipelinetest.Env

func TestMain(m *testing.M) {
	pipelinetest.Main(m, pipelinetest.EnvOptions{Postgres: true}, &env)
}

// tracedDB is a fresh migrated database, through a pool that counts its
// round trips.
func tracedDB(t *testing.T) (*pgxpool.Pool, *pipelinetest.RoundTrips) {
	t.Helper()
	url, _ := pipelinetest.MigratedT(t, env.Postgres)
	trips := &pipelinetest.RoundTrips{}
	return pipelinetest.TracedPool(t, url, trips), trips
}

// exec runs one statement of a test's setup.
func exec(t *testing.T, db *pgxpool.Pool, sql string, args ...any) {
	t.Helper()
	if _, err := db.Exec(t.Context(), sql, args...); err != nil {
		t.Fatal(err)
	}
}

// at is a fixed time, i minutes into 2026, as PostgreSQL keeps it.
func at(i int) time.Time { return time.Date(2026, 1, 1, 0, i, 0, 0, time.UTC) }

// TestShow: Show's answer for users with none, one and three of each thing
// it lists (devices in every state and app, channels, muted channels and
// categories), with and without an erasure, and for one with more than it
// lists; the answer GET /v1/users/{id} and `pushpipe users show` print.
// It was read in four round trips and now in one: the answers are the
// same.
func TestShow(t *testing.T) {
	db, _ := tracedDB(t)
	exec(t, db, `INSERT INTO devices (app, token, user_id, platform, locale, state, event_at, updated_at) VALUES
		('news', 'one-a', 1, 2, 'ko', 0, $1, $2),
		('news', 'three-c', 3, 1, 'pt-BR', 0, $1, $2), ('chat', 'three-b', 3, 2, '', 2, $2, $3),
		('chat', 'three-a', 3, 0, '', 1, $3, $3),
		('news', 'other', 4, 2, '', 0, $1, $1)`, at(1), at(2), at(3))
	exec(t, db, `INSERT INTO subscriptions (channel, user_id) VALUES ('sport', 1), ('weather', 3), ('news', 3), ('sport', 3), ('sport', 4)`)
	exec(t, db, `INSERT INTO preferences (user_id, muted_channels, muted_categories) VALUES
		(1, '{weather}', '{promo}'), (3, '{c,a,b}', '{z,x,y}'), (4, '{}', '{}')`)
	exec(t, db, `INSERT INTO erasures (user_id, erased_at) VALUES (3, $1)`, at(4))
	erased := at(4)
	none := Preferences{MutedChannels: []string{}, MutedCategories: []string{}}
	tests := []struct {
		name string
		give int64
		want View
	}{
		{"never seen: empty lists", 1000, View{UserID: 1000, Devices: []Device{}, Channels: []string{}, Preferences: none}},
		{"one of each", 1, View{UserID: 1,
			Devices:     []Device{{App: "news", Platform: "android", Token: "one-a", Locale: "ko", State: "active", EventAt: at(1), UpdatedAt: at(2)}},
			Channels:    []string{"sport"},
			Preferences: Preferences{MutedChannels: []string{"weather"}, MutedCategories: []string{"promo"}}}},
		{"three of each, erased", 3, View{UserID: 3,
			Devices: []Device{ // by app and token, tombstones too
				{App: "chat", Platform: "", Token: "three-a", Locale: "", State: "deleted", EventAt: at(3), UpdatedAt: at(3)},
				{App: "chat", Platform: "android", Token: "three-b", Locale: "", State: "invalidated", EventAt: at(2), UpdatedAt: at(3)},
				{App: "news", Platform: "ios", Token: "three-c", Locale: "pt-BR", State: "active", EventAt: at(1), UpdatedAt: at(2)}},
			Channels:    []string{"news", "sport", "weather"},
			Preferences: Preferences{MutedChannels: []string{"c", "a", "b"}, MutedCategories: []string{"z", "x", "y"}},
			ErasedAt:    &erased}},
		{"mutes all lifted", 4, View{UserID: 4,
			Devices:     []Device{{App: "news", Platform: "android", Token: "other", State: "active", EventAt: at(1), UpdatedAt: at(1)}},
			Channels:    []string{"sport"},
			Preferences: none}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := Show(t.Context(), db, tt.give)
			if err != nil {
				t.Fatal(err)
			}
			// Compared as the API prints it: [] and null differ there.
			got, _ := json.Marshal(v)
			want, _ := json.Marshal(tt.want)
			if string(got) != string(want) {
				t.Errorf("Show(%d):\n got %s\nwant %s", tt.give, got, want)
			}
		})
	}

	exec(t, db, `INSERT INTO devices (app, token, user_id, platform, event_at)
		SELECT 'many', 'tok-' || lpad(i::text, 5, '0'), 5, 2, now() FROM generate_series(1, $1::int) AS i`, MaxListed+1)
	exec(t, db, `INSERT INTO subscriptions (channel, user_id)
		SELECT 'ch-' || lpad(i::text, 5, '0'), 5 FROM generate_series(1, $1::int) AS i`, MaxListed+1)
	v, err := Show(t.Context(), db, 5)
	if err != nil {
		t.Fatal(err)
	}
	if len(v.Devices) != MaxListed || !v.DevicesMore || v.Devices[MaxListed-1].Token != "tok-01000" ||
		len(v.Channels) != MaxListed || !v.ChannelsMore || v.Channels[MaxListed-1] != "ch-01000" {
		t.Errorf("more than listed: %d devices (more %v), %d channels (more %v), want the first %d of each and more",
			len(v.Devices), v.DevicesMore, len(v.Channels), v.ChannelsMore, MaxListed)
	}
}

// TestShowOneRoundTrip: Show asks PostgreSQL once, where it asked for the
// devices, the channels, the mutes and the erasure one after another: four
// round trips, each a network latency, for one support lookup.
func TestShowOneRoundTrip(t *testing.T) {
	db, trips := tracedDB(t)
	for _, user := range []int64{1, 2} { // the first call on a connection prepares the statements; count the second
		trips.N.Store(0)
		if _, err := Show(t.Context(), db, user); err != nil {
			t.Fatal(err)
		}
	}
	if n := trips.N.Load(); n != 1 {
		t.Errorf("Show made %d round trips to PostgreSQL, want 1", n)
	}
}
