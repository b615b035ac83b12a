package drills

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// mute sets a user's preferences through the API (204 expected).
func (r *rig) mute(user int64, body string) {
	r.t.Helper()
	req, _ := http.NewRequest(http.MethodPut, fmt.Sprintf("http://%s/v1/users/%d/preferences", r.apiAddr, user), strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+r.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		r.t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		b, _ := io.ReadAll(resp.Body)
		r.t.Fatalf("PUT preferences of %d: %s %s", user, resp.Status, b)
	}
}

// (g) Users mute the channel; then Redis loses everything (FLUSHALL, then
// a restart) and every process restarts. PostgreSQL holds the mutes, resolve
// finds each partition's copy missing and loads it again before reading:
// the campaign reaches every other user and none of the muted ones.
func TestDrillMutesSurviveRedisLoss(t *testing.T) {
	parallelDrill(t)
	r := newRig(t, rigOptions{Users: 1200, TPS: 5000})
	muted := map[int64]bool{}
	for g := 1; g <= r.opts.Users; g += 7 {
		u := int64(g) * 173
		r.mute(u, `{"muted_channels":["`+drillChannel+`"]}`)
		muted[u] = true
	}
	// One user muted, then unmuted: the newer, empty, preferences win.
	r.mute(2*173, `{"muted_channels":["`+drillChannel+`"]}`)
	r.mute(2*173, `{}`)
	ctx := context.Background()
	if err := r.rdb.Do(ctx, r.rdb.B().Flushall().Build()).Error(); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"api", "ingest", "split", "resolve", "dedupe", "deliver"} {
		r.stop(name)
	}
	if err := r.redis.Restart(); err != nil {
		t.Fatal(err)
	}
	if n, err := r.rdb.Do(ctx, r.rdb.B().Exists().Key(r.keys.Preferences(173)).Build()).AsInt64(); err != nil || n != 0 {
		t.Fatalf("after FLUSHALL and a restart, user 173's preferences: exists %d, %v; want gone", n, err)
	}
	r.startPipeline()
	r.createCampaign("drill-g")
	p := r.waitDone("drill-g", 90*time.Second)
	r.settle()
	reached := map[int64]bool{}
	for _, rc := range r.receipts() {
		u := r.tokens[rc.Token]
		if muted[u] {
			t.Errorf("user %d muted the channel before Redis lost its data, and was sent the campaign", u)
		}
		reached[u] = true
	}
	if want := r.opts.Users - len(muted); len(reached) != want {
		t.Errorf("%d users reached, want %d (all but the %d muted)", len(reached), want, len(muted))
	}
	if !reached[2*173] {
		t.Error("the user who unmuted was not reached")
	}
	if p.Muted != int64(len(muted)) {
		t.Errorf("campaign counts %d muted, want %d", p.Muted, len(muted))
	}
	t.Logf("%d muted before the loss, campaign %+v", len(muted), p)
}
