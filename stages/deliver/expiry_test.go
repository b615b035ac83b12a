package deliver

import (
	"testing"
	"time"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/stages/deliver/push"
)

// expireIn moves a campaign's start so that its notification (ttl_seconds
// 3600, as createCampaign writes it) expires after left (before now when
// negative), and paces it at rate sends a second (0: uncapped).
func (f *fixture) expireIn(id string, left time.Duration, rate int) time.Time {
	f.t.Helper()
	var expires time.Time
	err := f.db.QueryRow(f.ctx, `UPDATE campaigns SET created_at = now() - interval '3600 seconds' + $2 * interval '1 millisecond',
		rate_per_second = $3 WHERE id = $1 RETURNING created_at + ttl_seconds * interval '1 second'`,
		id, left.Milliseconds(), rate).Scan(&expires)
	if err != nil {
		f.t.Fatal(err)
	}
	f.campaignHash(id)
	return expires
}

// Nothing is sent past a campaign's expiry (its start and ttl_seconds): its
// devices fail with reason "expired", each with its result event, and the
// campaign ends done. A capped one fails them at once, not at its cap (its
// 228 devices at 2 a second would take nearly two minutes).
func TestExpiredCampaignIsNotSent(t *testing.T) {
	f := newFixture(t)
	devices := int64(len(f.seedDevices(200, false)))
	tests := []struct {
		id   string
		rate int
	}{{"uncapped", 0}, {"capped", 2}}
	for _, tt := range tests {
		f.createCampaign(tt.id, `{}`)
		f.expireIn(tt.id, -time.Minute, tt.rate)
	}
	f.createCampaign("live", `{}`)
	s := &timedSender{}
	f.startStage(Config{Senders: map[push.Platform]push.Sender{push.IOS: s}}, "d1", 30*time.Second)
	for _, tt := range tests {
		f.emitUsers(tt.id, userRange(200))
	}
	f.emitUsers("live", userRange(200))
	for _, tt := range tests {
		st := f.waitDone(tt.id, 200, 30*time.Second)
		// Failed unsent, every one: no send in its send rate.
		if st[pipeline.StatSent] != 0 || st[pipeline.StatFailed] != devices || st[pipeline.StatUnsent] != devices {
			t.Errorf("%s: %v, want %d failed, unsent, none sent", tt.id, st, devices)
		}
	}
	if st := f.waitDone("live", 200, 30*time.Second); st[pipeline.StatSent] != devices {
		t.Errorf("live campaign: %v, want %d sent", st, devices)
	}
	if n := int64(len(s.started())); n != devices {
		t.Errorf("%d sends, want the live campaign's %d only", n, devices)
	}
	expired := map[string]int64{}
	for _, ev := range f.results() {
		if ev.Outcome == pipeline.OutcomeFailed && ev.Reason == ReasonExpired {
			expired[ev.Campaign]++
		}
	}
	if expired["uncapped"] != devices || expired["capped"] != devices || len(expired) != 2 {
		t.Errorf("expired events by campaign %v, want %d for each expired campaign", expired, devices)
	}
}

// A capped campaign that outlasts its TTL sends until its expiry and fails
// the rest as expired: no send starts past the expiry.
func TestSendsStopAtTheExpiry(t *testing.T) {
	f := newFixture(t)
	devices := int64(len(f.seedDevices(200, false)))
	f.createCampaign("c1", `{}`)
	expires := f.expireIn("c1", 2*time.Second, 40) // 5 s of sends at the cap
	s := &timedSender{}
	f.startStage(Config{Senders: map[push.Platform]push.Sender{push.IOS: s}}, "d1", 30*time.Second)
	users := userRange(200)
	for i := 0; i < len(users); i += 10 {
		f.emitUsers("c1", users[i:i+10]) // an entry each, as resolve's ranges make
	}
	st := f.waitDone("c1", 200, 30*time.Second)
	sent := s.started()
	if st[pipeline.StatSent] != int64(len(sent)) || st[pipeline.StatSent]+st[pipeline.StatFailed] != devices || st[pipeline.StatFailed] == 0 {
		t.Errorf("%v after %d sends, want every device sent or failed, some failed", st, len(sent))
	}
	// The expired are failed unsent, all at once at the expiry: counted as
	// sends, the campaign read ~110 a second beside its cap of 40.
	if st[pipeline.StatUnsent] != st[pipeline.StatFailed] {
		t.Errorf("%v: want every failed device counted unsent", st)
	}
	for _, at := range sent {
		if !at.Before(expires) {
			t.Errorf("a send started %v after the expiry", at.Sub(expires))
		}
	}
	t.Logf("%d sent before the expiry, %d expired", len(sent), st[pipeline.StatFailed])
}
