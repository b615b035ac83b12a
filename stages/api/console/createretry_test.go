package console_test

import (
	"errors"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/campaign"
	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
	"github.com/pushpipe/pushpipe/stages/api/console"
)

// The new-campaign form sent again under its id is answered from the
// record (campaign.Admit), as POST /v1/campaigns is: not refused by the
// checks of a new campaign, whose answers changed since it was stored (its
// one-off channel emptied, a newer release refusing its data). A new id
// is still checked. Before, the form ran the checks first, and told the
// operator to change a campaign that was already created.
func TestFormRetryIsAnsweredFromTheRecord(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	rdb, err := pipeline.NewRedis(env.Redis.Addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rdb.Close)
	db, err := pgxpool.New(ctx, pipelinetest.MigratedDatabaseT(t, env.Postgres))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	keys := pipeline.NewKeys("t"+strconv.FormatUint(rand.Uint64(), 36), 4)
	if _, err := db.Exec(ctx, `
		INSERT INTO devices (app, token, user_id, platform, event_at) VALUES ('a', 'tok', 1, 1, now());
		INSERT INTO subscriptions (channel, user_id) VALUES ('once', 1)`); err != nil {
		t.Fatal(err)
	}
	cs := console.NewCampaigns(rdb, db, keys)
	sent := campaign.Campaign{ID: "sent", App: "a", Channels: []string{"once"}, Title: "t"}
	if _, err := cs.Create(ctx, sent, time.Time{}, false); err != nil {
		t.Fatal(err)
	}
	// An older release stored a data key that this one refuses.
	old := campaign.Campaign{ID: "old", App: "a", Channels: []string{"once"}, Title: "t", Data: []byte(`{"aps":1}`)}
	if _, _, err := campaign.Create(ctx, rdb, db, keys, old); err != nil {
		t.Fatal(err)
	}
	// The one-off channel was sent and its people left.
	if _, err := db.Exec(ctx, `DELETE FROM subscriptions WHERE channel = 'once'`); err != nil {
		t.Fatal(err)
	}
	fresh := sent
	fresh.ID = "fresh"
	tests := []struct {
		name    string
		give    campaign.Campaign
		refused bool // a *campaign.ValidationError
	}{
		{"the same form after its channel emptied", sent, false},
		{"the same form of data refused since", old, false},
		{"a new id to the emptied channel", fresh, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := cs.Create(ctx, tt.give, time.Time{}, false)
			var verr *campaign.ValidationError
			if refused := errors.As(err, &verr); refused != tt.refused || !refused && err != nil {
				t.Fatalf("error %v, want refused=%v", err, tt.refused)
			}
		})
	}
}
