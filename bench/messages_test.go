package bench

import (
	"strings"
	"testing"
	"time"

	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
)

// The messages benchmark end to end, small: every message accepted is
// received by the fake provider, and the report says where the CPU went
// while sending (each process, Redis's commands, PostgreSQL's statements).
func TestMessagesBench(t *testing.T) {
	t.Parallel()
	bin := pipelinetest.Binary(t)
	const rate, recipients, seconds = 20, 10, 3
	res, err := RunMessages(t.Context(), Config{
		Bin:    bin,
		Seed:   SeedConfig{Users: 20_000, Channels: 1, TwoDevices: 0.2},
		OutDir: t.TempDir(),
	}, MessagesConfig{Rate: rate, Recipients: recipients, Duration: seconds * time.Second, Warmup: time.Second,
		FloorFor: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	var md strings.Builder
	res.WriteMarkdown(&md)
	t.Logf("\n%s", md.String())
	// Each message sent, late if need be, on a machine however loaded.
	if res.Failed != 0 || res.Messages != rate*seconds {
		t.Errorf("%d messages accepted, %d failed; want %d, none failed", res.Messages, res.Failed, rate*seconds)
	}
	// Every recipient has a device; a message may name a user twice.
	if res.Receipts < res.Messages || res.Receipts > res.Messages*recipients*2 {
		t.Errorf("%d receipts for %d messages of %d recipients", res.Receipts, res.Messages, recipients)
	}
	for _, role := range []string{"deliver", "dedupe", "fakeprovider", "redis", "postgres", "bench"} {
		if res.CPU[role] <= 0 {
			t.Errorf("no CPU for %s: %v", role, res.CPU)
		}
	}
	// Each receipt was a send in the window or just after it.
	if res.Sends <= 0 || res.Sends > float64(res.Receipts)/seconds*1.5 || !strings.Contains(md.String(), "CPU µs a send") {
		t.Errorf("%.0f sends/s for %d receipts in %d s, or no CPU per send in the report", res.Sends, res.Receipts, seconds)
	}
	// Deliver's own hop is split: the time before a round, from its histogram.
	if !strings.Contains(md.String(), "| of which: before its deliver round") {
		t.Errorf("the report lacks the wait for a deliver round:\n%s", md.String())
	}
	if len(res.ServerTime.Redis) == 0 || !strings.Contains(md.String(), "FROM devices") {
		t.Errorf("the report lacks Redis's commands or the token lookup:\n%s", md.String())
	}
	// Then the floor: the same messages for 2 s through the provider
	// clients alone (TestMessagesFloor checks what it measures), as its
	// own row, with the messages' ratios to it.
	if fl := res.Floor; fl == nil || fl.Messages != rate*2 || fl.Receipts != fl.Sends || fl.Failed != 0 {
		t.Fatalf("floor %+v: want %d messages, each send received", fl, rate*2)
	}
	if res.P99ToFloor <= 0 || res.CPUPerSendToFloor <= 0 {
		t.Errorf("ratios to the floor: p99 %v, CPU a send %v", res.P99ToFloor, res.CPUPerSendToFloor)
	}
	if !strings.Contains(md.String(), "| floor: the provider clients alone, same fake, same rate: 40 (0 of ") {
		t.Errorf("the report lacks the floor's row:\n%s", md.String())
	}
}

// The floor alone, against a fake provider and nothing else: every send of
// the messages' shape (seeded devices of both platforms, the messages'
// notification) reaches the fake through deliver's clients, is timed from
// its message's due time to the fake's receipt, and has its CPU counted.
func TestMessagesFloor(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	fleet := &Fleet{Bin: pipelinetest.Binary(t), LogDir: dir}
	t.Cleanup(func() { fleet.StopAll(15 * time.Second) })
	fp, err := StartFake(t.Context(), fleet, dir)
	if err != nil {
		t.Fatal(err)
	}
	const rate, recipients, seconds = 20, 10, 2
	fl, err := RunFloor(t.Context(), fp, FloorConfig{Rate: rate, Recipients: recipients, Duration: seconds * time.Second,
		InFlight: 8, Seed: SeedConfig{Users: 20_000, TwoDevices: 0.2}})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", *fl)
	// Each message sent to its users' devices, late if need be.
	if fl.Messages != rate*seconds || fl.Sends < fl.Messages || fl.Sends > fl.Messages*recipients*2 {
		t.Errorf("%d messages, %d sends; want %d messages of 1 to %d sends each", fl.Messages, fl.Sends, rate*seconds, recipients*2)
	}
	// Seeded 45 % iOS: 400-odd sends have both platforms.
	if fl.IOS == 0 || fl.Android == 0 || fl.IOS+fl.Android != fl.Sends {
		t.Errorf("%d iOS and %d Android of %d sends: want both platforms", fl.IOS, fl.Android, fl.Sends)
	}
	// Every send accepted, and a receipt for each: its collapse id is its
	// message's, its token a seeded one.
	sum, err := fp.Summary(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if fl.Failed != 0 || fl.Receipts != fl.Sends || sum.Duplicates != 0 {
		t.Errorf("%d of %d sends failed, %d receipts, %d duplicates at the fake", fl.Failed, fl.Sends, fl.Receipts, sum.Duplicates)
	}
	if fl.P50 < 0 || fl.P50 > fl.P90 || fl.P90 > fl.P99 || fl.P99 > fl.Max {
		t.Errorf("latencies p50 %d, p90 %d, p99 %d, max %d ms: not in order", fl.P50, fl.P90, fl.P99, fl.Max)
	}
	// The rate done is what was sent over the window; the asked one, the
	// sends over the schedule's length.
	if fl.PerS <= 0 || fl.PerS > fl.AskedPerS || fl.AskedPerS != float64(fl.Sends)/seconds {
		t.Errorf("%.1f sends/s done, %.1f asked, for %d sends in %d s", fl.PerS, fl.AskedPerS, fl.Sends, seconds)
	}
	for _, role := range []string{"bench", "fakeprovider"} {
		if fl.CPUPerSend[role] <= 0 {
			t.Errorf("no CPU a send for %s: %v", role, fl.CPUPerSend)
		}
	}
}

// The table says when its percentiles leave late sends out, and a hop past
// the histogram's last bucket in words: a minute's wait on a loaded box
// left 3,456 messages out of the latencies unsaid, and the deliver-round
// wait read "-1" ms.
func TestMessagesTableSaysWhatItLeavesOut(t *testing.T) {
	tests := []struct {
		name string
		give MessagesResult
		want []string
		not  string
	}{
		{"all done", MessagesResult{Messages: 10, Hops: []Hop{{Name: "round", P50: 3, P99: 7}}}, []string{"| round | 3 | 7 |"}, "lower bounds"},
		{"unfinished, past the buckets", MessagesResult{Messages: 10, Unfinished: 4, Hops: []Hop{{Name: "round", P50: 3, P99: -1}}},
			[]string{"4 messages were not done after 5m0s", "lower bounds", "| round | 3 | past the last bucket |"}, "-1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b strings.Builder
			tt.give.WriteMarkdown(&b)
			for _, w := range tt.want {
				if !strings.Contains(b.String(), w) {
					t.Errorf("table does not say %q:\n%s", w, b.String())
				}
			}
			if strings.Contains(b.String(), tt.not) {
				t.Errorf("table says %q:\n%s", tt.not, b.String())
			}
		})
	}
}
