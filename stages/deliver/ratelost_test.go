package deliver

import (
	"testing"
	"time"

	campaignrow "github.com/pushpipe/pushpipe/pipeline/campaign"
	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
	"github.com/pushpipe/pushpipe/stages/deliver/push"
)

// TestLostRateFollowsTheRecord: a campaign created at 80/s and lowered to
// 10/s (campaign.SetRate) whose hash then loses the rate field (a Redis
// restart without persistence, a failover) goes on at 10/s with nobody
// reading its progress: the rate watcher reads the records every
// RecordPoll (5 s; recordPoll here) and writes the field back. Before,
// deliver paced it by the row it had cached, 80/s, until a progress read
// (status, a list, the console) wrote the field again: over 300 sends in
// the window.
func TestLostRateFollowsTheRecord(t *testing.T) {
	// Side by side (go test -parallel): 10 s of waiting on the watcher's
	// poll and a window, on a fixture of its own; its bound is a most,
	// which a loaded box cannot pass by sending slower.
	t.Parallel()
	const users, created, low = 2000, 80, 10
	// recordPoll stands for the watcher's 5 s (Config.recordPoll), which
	// the test would otherwise wait out. settle is past it and the rate
	// watcher's next poll (RatePoll), with the 3 s to spare it had past the
	// 5 s: a loaded box stretches the polls. window is the time the rate is
	// measured over.
	const recordPoll, window = 500 * time.Millisecond, 4 * time.Second
	const settle = recordPoll + 3*time.Second
	f := newFixture(t)
	f.seedDevices(users, false)
	f.createCampaign("c1", `{}`)
	if _, err := f.db.Exec(f.ctx, `UPDATE campaigns SET rate_per_second = $1 WHERE id = 'c1'`, created); err != nil {
		t.Fatal(err)
	}
	f.campaignHash("c1")
	s := &latentTimedSender{latency: 2 * time.Millisecond}
	f.startStage(Config{Senders: map[push.Platform]push.Sender{push.IOS: s}, recordPoll: recordPoll}, "d1", 30*time.Second)
	f.emitEvery("c1", userRange(users), 10)
	pipelinetest.Eventually(t, 30*time.Second, "a second of sends at the cap", func() bool { return len(s.started()) >= created })

	if _, err := campaignrow.SetRate(f.ctx, f.rdb, f.db, f.keys, "c1", low); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second) // deliver follows the change
	if err := f.rdb.Do(f.ctx, f.rdb.B().Hdel().Key(f.keys.Campaign("c1")).Field(campaignrow.HashRatePerSecond).Build()).Error(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(settle)
	from := time.Now()
	time.Sleep(window)
	// At the row's rate: 320. A quarter over the record's is allowance
	// enough for the limiter's interval and the window's edges.
	if n, most := sendsIn(s.started(), from, window), low*int(window.Seconds())*5/4; n > most {
		t.Errorf("rate field lost at %d/s (the row cached at %d/s): %d sends in %v, want at most %d", low, created, n, window, most)
	} else {
		t.Logf("rate field lost at %d/s: %d sends in %v", low, n, window)
	}
	v, err := f.rdb.Do(f.ctx, f.rdb.B().Hget().Key(f.keys.Campaign("c1")).Field(campaignrow.HashRatePerSecond).Build()).ToString()
	if err != nil || v != "10" {
		t.Errorf("the hash's rate after the watcher's read of the record: %q %v, want 10", v, err)
	}
}
