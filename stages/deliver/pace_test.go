package deliver

import (
	"strconv"
	"testing"
	"time"

	campaignrow "github.com/pushpipe/pushpipe/pipeline/campaign"
	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
	"github.com/pushpipe/pushpipe/stages/deliver/push"
)

// A capped campaign's entries wait for their slots in the delayed set
// (pace.go). Canceled, it lets go of them within maxPutOff, not at slots
// seconds (or hours) away, and nothing is sent after the cancel's bound.
func TestCanceledCappedCampaignLetsGoOfItsEntries(t *testing.T) {
	f := newFixture(t)
	f.seedDevices(16, false)
	f.createCampaign("c1", `{}`)
	// Two sends a second: the entries' slots span several seconds.
	if _, err := f.db.Exec(f.ctx, `UPDATE campaigns SET rate_per_second = 2 WHERE id = 'c1'`); err != nil {
		t.Fatal(err)
	}
	f.campaignHash("c1")
	s := &timedSender{}
	f.startStage(Config{Senders: map[push.Platform]push.Sender{push.IOS: s}, maxPutOff: 200 * time.Millisecond}, "d1", 30*time.Second)
	users := userRange(16)
	for i := 0; i < len(users); i += 4 {
		f.emitUsers("c1", users[i:i+4]) // an entry each, as resolve's ranges make
	}
	pipelinetest.Eventually(t, 10*time.Second, "a send, and entries put off to their slots", func() bool {
		return len(s.started()) > 0 && f.retriesLeft() > 0
	})
	if _, err := campaignrow.Cancel(f.ctx, f.rdb, f.db, f.keys, "c1"); err != nil {
		t.Fatal(err)
	}
	returned := time.Now()
	pipelinetest.Eventually(t, 3*time.Second, "the delayed set and the stream let go of the canceled campaign", func() bool {
		return f.retriesLeft() == 0 && f.pendingEntries() == 0
	})
	for _, at := range s.started() {
		if late := at.Sub(returned); late > campaignrow.CancelPoll {
			t.Errorf("a send started %v after the cancel returned", late)
		}
	}
	if n := len(s.started()); n >= 16 {
		t.Errorf("%d sends: the cancel stopped nothing", n)
	}
}

// campaignHash writes the campaign's Redis hash as campaign.Create does
// (deliver paces a campaign on it; one without is not paced).
func (f *fixture) campaignHash(id string) {
	f.t.Helper()
	exp := strconv.FormatInt(time.Now().Add(time.Hour).UnixMilli(), 10)
	if err := f.rdb.Do(f.ctx, f.rdb.B().Hset().Key(f.keys.Campaign(id)).FieldValue().FieldValue(campaignrow.HashExpiresMs, exp).Build()).Error(); err != nil {
		f.t.Fatal(err)
	}
}
