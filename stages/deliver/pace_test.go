package deliver

import (
	"strconv"
	"testing"
	"time"

	"github.com/pushpipe/pushpipe/pipeline"
	campaignrow "github.com/pushpipe/pushpipe/pipeline/campaign"
	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
	"github.com/pushpipe/pushpipe/stages/deliver/push"
)

// A capped campaign's entries wait for their slots in the delayed set
// (pace.go). Canceled, it lets go of them within maxPutOff, not at slots
// seconds (or hours) away, and nothing is sent after the cancel's bound.
//
// "Not at their slots" is read from the schedule, not timed against a
// fixed bound (3 s, which a loaded box may take to release, read and drop
// the entries): the last entry's slot is within its cost of where the
// campaign's schedule ends (pipeline.CampaignPacedMs), and held to its
// slot it would wait until paceAhead before it. Letting go by then is the
// decision; the 18 s or so until then is a hang guard.
func TestCanceledCappedCampaignLetsGoOfItsEntries(t *testing.T) {
	// Two sends a second, an entry of 4 users (at most 8 devices, 4 s)
	// each: the entries' slots span 20 s and more.
	const users, rate, per = 40, 2, 4
	const lastCost = 2 * per * time.Second / rate
	f := newFixture(t)
	f.seedDevices(users, false)
	f.createCampaign("c1", `{}`)
	if _, err := f.db.Exec(f.ctx, `UPDATE campaigns SET rate_per_second = $1 WHERE id = 'c1'`, rate); err != nil {
		t.Fatal(err)
	}
	f.campaignHash("c1")
	s := &timedSender{}
	f.startStage(Config{Senders: map[push.Platform]push.Sender{push.IOS: s}, maxPutOff: 200 * time.Millisecond}, "d1", 30*time.Second)
	all := userRange(users)
	for i := 0; i < len(all); i += per {
		f.emitUsers("c1", all[i:i+per]) // an entry each, as resolve's ranges make
	}
	var paced time.Time
	pipelinetest.Eventually(t, 10*time.Second, "a send, and entries put off to slots 15 s and more away", func() bool {
		paced = time.UnixMilli(int64(f.hashInt(f.keys.Campaign("c1"), pipeline.CampaignPacedMs)))
		return len(s.started()) > 0 && f.retriesLeft() > 0 && time.Until(paced) > 15*time.Second
	})
	if _, err := campaignrow.Cancel(f.ctx, f.rdb, f.db, f.keys, "c1"); err != nil {
		t.Fatal(err)
	}
	returned := time.Now()
	atSlots := paced.Add(-lastCost - paceAhead)
	if atSlots.Sub(returned) < 5*time.Second {
		t.Fatalf("the schedule ends %v after the cancel: its entries' slots are too near to tell a let-go from their return", paced.Sub(returned))
	}
	for {
		at := time.Now()
		left, pending := f.retriesLeft(), f.pendingEntries()
		if at.After(atSlots) {
			t.Fatalf("%v after the cancel, %d entries still put off and %d pending: held to their slots", at.Sub(returned).Round(time.Millisecond), left, pending)
		}
		if left == 0 && pending == 0 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	// DESIGN's guarantee 7, the product's own bound: an answer "not
	// canceled" is believed for cancelTrust (800 ms) at most, the rest is
	// the send's margin. CancelPoll (200 ms) is the poller's cadence, which
	// a loaded machine stretches toward cancelTrust: no bound on sends.
	for _, at := range s.started() {
		if late := at.Sub(returned); late > time.Second {
			t.Errorf("a send started %v after the cancel returned", late)
		}
	}
	if n := len(s.started()); n >= users {
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
