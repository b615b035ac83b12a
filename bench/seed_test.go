package bench

import (
	"context"
	"slices"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/pushpipe/pushpipe/pipeline/devices"
	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
	"github.com/pushpipe/pushpipe/pipeline/schema"
)

// TestSeed loads a small population and checks it against its definition:
// row counts, the overlap, the device mix, valid tokens, and the schema's
// indexes rebuilt as the migrations define them.
func TestSeed(t *testing.T) {
	ctx := t.Context()
	pg := pipelinetest.PostgresT(t)
	url := pipelinetest.DatabaseT(t, pg)
	if err := schema.Migrate(ctx, url); err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	before := indexDefs(t, conn)

	cfg := SeedConfig{App: "a", Users: 20000, Channels: 3, Overlap: 0.25, TwoDevices: 0.3, IOSShare: 0.4}
	for range 2 { // seeding twice replaces, never adds
		if _, err := Seed(ctx, url, cfg); err != nil {
			t.Fatal(err)
		}
	}
	var users, subs, devs, ios, two, pairs int64
	q := func(sql string, dst *int64) {
		t.Helper()
		if err := conn.QueryRow(ctx, sql).Scan(dst); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	q(`SELECT count(DISTINCT user_id) FROM subscriptions`, &users)
	q(`SELECT count(*) FROM subscriptions`, &subs)
	q(`SELECT count(*) FROM devices WHERE app = 'a' AND state = 0`, &devs)
	q(`SELECT count(*) FROM devices WHERE platform = 1`, &ios)
	q(`SELECT count(*) FROM (SELECT user_id FROM devices GROUP BY user_id HAVING count(*) = 2) x`, &two)
	q(`SELECT count(*) FROM (SELECT user_id FROM subscriptions GROUP BY user_id HAVING count(*) = 2) x`, &pairs)
	if users != cfg.Users {
		t.Errorf("%d subscribed users, want %d", users, cfg.Users)
	}
	if subs != users+pairs {
		t.Errorf("%d subscriptions, want %d users + %d second channels", subs, users, pairs)
	}
	near := func(what string, got int64, share float64, of int64) {
		t.Helper()
		if want := share * float64(of); float64(got) < 0.9*want || float64(got) > 1.1*want {
			t.Errorf("%s: %d, want about %.0f", what, got, want)
		}
	}
	near("users in two channels", pairs, cfg.Overlap, cfg.Users)
	near("users with two devices", two, cfg.TwoDevices, cfg.Users)
	near("iOS devices", ios, cfg.IOSShare, devs)
	if devs != cfg.Users+two {
		t.Errorf("%d devices, want %d", devs, cfg.Users+two)
	}

	rows, err := conn.Query(ctx, `SELECT platform, token FROM devices LIMIT 2000`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var p devices.Platform
		var tok string
		if err := rows.Scan(&p, &tok); err != nil {
			t.Fatal(err)
		}
		if err := devices.ValidateToken(p, tok); err != nil {
			t.Fatalf("seeded token %q (%v): %v", tok, p, err)
		}
	}
	if after := indexDefs(t, conn); !slices.Equal(before, after) {
		t.Errorf("indexes after seeding:\n%v\nwant as migrated:\n%v", after, before)
	}

	truth, err := countTruth(ctx, conn, "a", cfg.ChannelNames())
	if err != nil {
		t.Fatal(err)
	}
	if truth.Recipients != cfg.Users || truth.Devices != devs {
		t.Errorf("truth = %+v, want %d recipients, %d devices", truth, cfg.Users, devs)
	}
	for _, byID := range []bool{false, true} {
		marks, err := expectedMarks(ctx, conn, "a", cfg.ChannelNames(), truth.Devices, byID)
		if err != nil {
			t.Fatal(err)
		}
		if v := compare(marks, marks); int64(len(marks)) != devs || v.Missing != 0 || v.Unique != devs || v.ProviderDuplicates != 0 {
			t.Errorf("by id %v: %d marks, self-compare %+v", byID, len(marks), v)
		}
	}
	if _, err := measureFloor(ctx, conn, "a", cfg.ChannelNames()); err != nil {
		t.Fatal(err)
	}

	// With locales, every device gets one of them, each about as often.
	cfg.Locales = []string{"ko-KR", "pt-BR", "en-US"}
	if _, err := Seed(ctx, url, cfg); err != nil {
		t.Fatal(err)
	}
	for _, l := range append(cfg.Locales, "") {
		var n int64
		q(`SELECT count(*) FROM devices WHERE locale = '`+l+`'`, &n)
		if l == "" && n != 0 {
			t.Errorf("%d devices without a locale, want none", n)
		}
		if l != "" {
			near("devices in "+l, n, 1.0/3, devs)
		}
	}
}

func indexDefs(t *testing.T, conn *pgx.Conn) []string {
	t.Helper()
	rows, err := conn.Query(t.Context(), `SELECT indexdef FROM pg_indexes WHERE tablename IN ('devices', 'subscriptions') ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	defs, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return defs
}

func TestCompare(t *testing.T) {
	m := func(b byte) mark { return mark{b} }
	exp := []mark{m(1), m(2), m(3), m(5)}
	got := []mark{m(1), m(1), m(3), m(4), m(5), m(5), m(5)}
	v := compare(exp, got)
	want := Verdict{Delivered: 7, Unique: 4, Missing: 1, Unexpected: 1, ProviderDuplicates: 3}
	if v != want {
		t.Fatalf("compare = %+v, want %+v", v, want)
	}
}
