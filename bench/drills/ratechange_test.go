package drills

import (
	"strconv"
	"strings"
	"testing"
	"time"
)

// receiptsIn counts campaign id's receipts at the fake provider in [from,
// from+d).
func (r *rig) receiptsIn(id string, from time.Time, d time.Duration) int {
	n := 0
	for _, rc := range r.receiptsOf(id) {
		if rc.AtMs >= from.UnixMilli() && rc.AtMs < from.Add(d).UnixMilli() {
			n++
		}
	}
	return n
}

// A capped campaign's rate changed while it goes out, with the real
// binaries: two deliver processes and split cutting it ahead. Lowered to a
// quarter (PATCH /v1/campaigns/{id}), the provider gets no more than the
// new cap over a window from 2 s after; raised (`pushpipe campaigns rate`),
// it speeds up. The windows' bounds are generous (the machine is a loaded
// 2-core VM): a deliver that kept the rate it cached sends 4 times the
// lowered cap.
func TestDrillCampaignRateChange(t *testing.T) {
	const users, rate, low, high = 6000, 200, 50, 400
	const settle, window = 2 * time.Second, 4 * time.Second
	r := newRig(t, rigOptions{Users: users, TPS: 5000, Split: []string{"--paced-ahead", "4s"}})
	r.startTwin("deliver")
	if code, b := r.call("POST", "/v1/campaigns", campaignBody("tune", `,"rate_per_second":`+strconv.Itoa(rate))); code != 201 {
		t.Fatalf("create: %d %s", code, b)
	}
	r.poll(60*time.Second, "two seconds of sends at the cap", func() bool { return r.lifecycle("tune").Sent >= 2*rate })

	code, b := r.call("PATCH", "/v1/campaigns/tune", `{"rate_per_second":`+strconv.Itoa(low)+`}`)
	if code != 200 || !strings.Contains(string(b), `"rate_per_second":`+strconv.Itoa(low)+`,`) {
		t.Fatalf("PATCH to %d/s: %d %s", low, code, b)
	}
	time.Sleep(settle)
	from := time.Now()
	time.Sleep(window)
	// 800 at the old rate.
	if n, most := r.receiptsIn("tune", from, window), low*int(window.Seconds())*5/4; n > most {
		t.Errorf("lowered to %d/s: the provider got %d in %v, want at most %d", low, n, window, most)
	} else {
		t.Logf("lowered to %d/s: %d at the provider in %v", low, n, window)
	}

	if out := r.cli("campaigns", "rate", "tune", strconv.Itoa(high)); !strings.Contains(out, "(cap "+strconv.Itoa(high)+")") {
		t.Fatalf("campaigns rate tune %d:\n%s", high, out)
	}
	time.Sleep(settle)
	from = time.Now()
	time.Sleep(window)
	// 200 at the lowered rate, 1,600 at the raised one.
	n := r.receiptsIn("tune", from, window)
	if least := 2 * low * int(window.Seconds()); n < least {
		t.Errorf("raised to %d/s: the provider got %d in %v, want at least %d", high, n, window, least)
	}
	if most := high * int(window.Seconds()) * 5 / 4; n > most {
		t.Errorf("raised to %d/s: the provider got %d in %v, over the cap (at most %d)", high, n, window, most)
	}
	t.Logf("raised to %d/s: %d at the provider in %v", high, n, window)
	if code, b := r.call("POST", "/v1/campaigns/tune/cancel", ""); code != 200 {
		t.Fatalf("cancel: %d %s", code, b)
	}
}
