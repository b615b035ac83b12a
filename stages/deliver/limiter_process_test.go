package deliver

import (
	"encoding/json"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pushpipe/pushpipe/stages/deliver/fakeprovider"
	"github.com/pushpipe/pushpipe/stages/deliver/push"
)

// The cap tests run three `pushpipe deliver` processes against the fake
// provider processes (see process_test.go) with Android devices only, so
// that one provider's cap is what binds, and watch the provider's side:
// what it accepted when, and when it refused sends over its rate. FCM's,
// because its quota is the project's: APNs's 429 is about one device, and
// deliver does not lower the cap for it.

// capRun is what a capped campaign looked like at the provider.
type capRun struct {
	elapsed  time.Duration
	accepted []time.Time  // FCM receipts, in order
	refusals []time.Time  // when the FCM fake's rejected_over_tps grew
	refused  uint64       // its rejected_over_tps at the end
	devices  []testDevice // the campaign's
	allow    []float64    // the limiter's allowance (ms), sampled
}

// runCapped sends a campaign to users Android users through three deliver
// processes at --tps deliverTPS against fakes started with provider.
func runCapped(t testing.TB, f *fixture, campaign string, users, deliverTPS int, provider fakeFlags) capRun {
	t.Helper()
	p := startProviders(t, provider)
	devices := f.seedPlatforms(users, func(int64, int) push.Platform { return push.Android })
	f.createCampaign(campaign, `{}`)
	flags := []string{"--tps", strconv.Itoa(deliverTPS), "--retry-base", "200ms", "--batch", "2"}
	var procs []*proc
	for i := range 3 {
		procs = append(procs, f.startDeliver(t, p, "d"+strconv.Itoa(i+1), flags...))
	}
	stop := make(chan struct{})
	var refusals []time.Time
	var refused uint64
	var wg sync.WaitGroup
	wg.Go(func() { refusals, refused = watchRefusals(p.fcm, stop) })
	var allow []float64
	wg.Go(func() { allow = f.watchAllowance(f.keys.RateLimit("fcm", testApp), stop) })
	start := time.Now()
	f.emitUsers(campaign, userRange(users))
	f.waitDone(campaign, users, time.Duration(len(devices)/500+60)*time.Second)
	elapsed := time.Since(start)
	close(stop)
	wg.Wait()

	checkDeliveries(t, f, campaign, devices, 0, provider.tps < deliverTPS, p.apns, p.fcm)
	var accepted []time.Time
	for _, r := range p.fcm.Receipts() {
		accepted = append(accepted, time.UnixMilli(r.AtMs))
	}
	slices.SortFunc(accepted, func(a, b time.Time) int { return a.Compare(b) })
	for _, pr := range procs {
		pr.signal(syscall.SIGTERM)
	}
	return capRun{elapsed: elapsed, accepted: accepted, refusals: refusals, refused: refused, devices: devices, allow: allow}
}

// watchAllowance samples the allowance of a limiter hash until stop.
func (f *fixture) watchAllowance(key string, stop <-chan struct{}) []float64 {
	var out []float64
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return out
		case <-tick.C:
		}
		if v, err := f.rdb.Do(f.ctx, f.rdb.B().Hget().Key(key).Field("allow").Build()).AsFloat64(); err == nil {
			out = append(out, v/1000)
		}
	}
}

// perSecond counts the accepted requests in each second from the first.
func (r capRun) perSecond() []int {
	var out []int
	for _, at := range r.accepted {
		i := int(at.Sub(r.accepted[0]) / time.Second)
		for len(out) <= i {
			out = append(out, 0)
		}
		out[i]++
	}
	return out
}

// allowance sums up the sampled allowances: their median and largest (ms).
func (r capRun) allowance() (median, most float64) {
	if len(r.allow) == 0 {
		return 0, 0
	}
	a := slices.Clone(r.allow)
	slices.Sort(a)
	return a[len(a)/2], a[len(a)-1]
}

// watchRefusals polls the fake's summary until stop and returns when its
// count of refusals over TPS grew, and the count at the end.
func watchRefusals(fake *remoteFake, stop <-chan struct{}) (at []time.Time, total uint64) {
	read := func() (uint64, bool) {
		resp, err := fake.client.Get(fake.url + "/_receipts/summary")
		if err != nil {
			return 0, false
		}
		defer resp.Body.Close()
		var s fakeprovider.Summary
		if json.NewDecoder(resp.Body).Decode(&s) != nil {
			return 0, false
		}
		return s.RejectedOverTPS, true
	}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			if n, ok := read(); ok && n > total {
				at = append(at, time.Now())
				total = n
			}
			return at, total
		case <-tick.C:
		}
		if n, ok := read(); ok && n > total {
			at = append(at, time.Now())
			total = n
		}
	}
}

// refusedAfter is when the refusals were seen, from the first send.
func (r capRun) refusedAfter() []time.Duration {
	var out []time.Duration
	for _, at := range r.refusals {
		out = append(out, at.Sub(r.accepted[0]).Round(10*time.Millisecond))
	}
	return out
}

// episodes groups the refusals into runs without a 5 s gap: the first is
// the provider's limit being found, each later one a probe above it.
func (r capRun) episodes() [][2]time.Time {
	var out [][2]time.Time
	for _, at := range r.refusals {
		if n := len(out); n > 0 && at.Sub(out[n-1][1]) <= 5*time.Second {
			out[n-1][1] = at
			continue
		}
		out = append(out, [2]time.Time{at, at})
	}
	return out
}

// rate is the accepted requests per second from the first to the last.
func (r capRun) rate() float64 {
	if len(r.accepted) < 2 {
		return 0
	}
	return float64(len(r.accepted)-1) / r.accepted[len(r.accepted)-1].Sub(r.accepted[0]).Seconds()
}

// TestThreeProcessesKeepTheProviderCap: three deliver processes at --tps
// 2000 against a provider that refuses anything over 2000 in any one-second
// window: it refuses nothing, every device gets its notification once, and
// the cap is mostly used.
func TestThreeProcessesKeepTheProviderCap(t *testing.T) {
	const tps = 2000
	users := envInt(t, "PUSHPIPE_TEST_CAP_USERS", 7000)
	f := newFixture(t)
	run := runCapped(t, f, "cap", users, tps, fakeFlags{tps: tps, window: "sliding"})
	rate := run.rate()
	t.Logf("%d devices in %v; provider accepted %.0f/s (cap %d), at most %d in a one-second window, refused %d over its cap %v",
		len(run.devices), run.elapsed.Round(time.Millisecond), rate, tps, maxInWindow(run.accepted, time.Second), run.refused, run.refusedAfter())
	// checkDeliveries failed the test on any refusal over the cap. How much
	// of the cap is used depends on how busy the machine is, so it is
	// BenchmarkProviderCap's target (≥ 90%), not this test's: on CI's
	// shared 2-core box -race runs beside another package reached 602/s to
	// APNs, and under 200/s to FCM.
}

// TestProviderBelowTheCap: deliver is configured for 60/s but the
// provider refuses anything over 16 in its windows, counted one way or the
// other. Its refusals make every process lower the cap at once, and stop
// within seconds instead of a share of every second being refused; every
// device still gets its notification exactly once.
//
// The provider's limit is a third of the bulk lane's cap (48/s) so that
// deliver meets it however busy the box: on a busy one the limiter itself
// sends slower, by design, leaving room for the noise it measures (at most
// 1 s + 301 ms of slots a second: 48/s becomes 37/s), and a starved process
// wakes up too late for some permits. At 40 against 60, a box at load
// 15-39 (other suites beside it) sent 24-34/s and never met the limit; at
// 84 against 60, one running two other suites sent 54/s. Three rounds of
// 0.7 take the cap under 16, so it takes a few rounds of refusals, each a
// couple of sends, to find: 8 to 22 refusals at load 30, whatever the
// number of devices; a deliver that does not back off has about half its
// sends refused every second.
//
// 100 users (114 devices) are enough to see both: the limit is found in
// the first 8-9 s at load 14 (11 and 12 refusals, then 3 s without), and
// a deliver that does not back off had 114 and 120 refused, about one a
// device. 200 only doubled the seconds at 16/s that follow (26 s a case).
// BenchmarkProviderCap runs the same at 2000 and 1500/s, with times.
func TestProviderBelowTheCap(t *testing.T) {
	tests := []struct {
		name, window string
	}{
		{"sliding windows", "sliding"},
		{"its own fixed windows", "fixed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Side by side, each on fakes, processes and keys of its own:
			// the two at 16/s are still far under what three processes
			// send on a loaded box (above).
			t.Parallel()
			const deliverTPS, providerTPS = 60, 16
			const maxRefused = 40 // rounds of refusals, see above
			users := envInt(t, "PUSHPIPE_TEST_BELOW_CAP_USERS", 100)
			f := newFixture(t)
			run := runCapped(t, f, "below", users, deliverTPS, fakeFlags{tps: providerTPS, window: tt.window})
			if len(run.refusals) == 0 || run.refused == 0 {
				t.Fatalf("the provider refused nothing at %.0f/s against its cap of %d/s: deliver never went over it, or the fake does not count", run.rate(), providerTPS)
			}
			first, last := run.accepted[0], run.refusals[len(run.refusals)-1]
			t.Logf("%d devices in %v at %.0f/s; provider refused %d over its cap of %d, the last %v after the first send; then %v without",
				len(run.devices), run.elapsed.Round(time.Millisecond), run.rate(), run.refused, providerTPS,
				last.Sub(first).Round(10*time.Millisecond), run.accepted[len(run.accepted)-1].Sub(last).Round(10*time.Millisecond))
			// Without backing off, half the sends over the provider's cap
			// would be refused every second; backing off leaves the rounds
			// that find the limit and the rare probes above it. A count, not
			// a time: a busy machine stretches the pauses and the climbs
			// (BenchmarkProviderCap holds the full run to 5 s).
			if run.refused > maxRefused {
				t.Errorf("the provider refused %d sends (%v after the first one), want at most %d",
					run.refused, last.Sub(first).Round(10*time.Millisecond), maxRefused)
			}
			// Once backed off, deliver sends at the provider's pace, not a
			// fraction of it: the cap settles just under the limit.
			if rate := run.rate(); rate > providerTPS*1.1 || rate < providerTPS/3 {
				t.Errorf("accepted %.0f/s, want about the provider's %d/s", rate, providerTPS)
			}
		})
	}
}

// BenchmarkProviderCap runs the cap tests at full size
// (PUSHPIPE_BENCH_CAP_USERS users, default 52,500: 60,000 Android devices) and
// holds them to the targets: with the provider's cap equal to --tps, no
// refusal and at least 90% of the cap that binds accepted per second (a
// campaign rides the bulk lane, whose cap is --tps less the share kept for
// the express lane, DefaultExpressShare: 1600 of 2000); with the provider
// at 1500/s against --tps 2000, the refusals that find its limit over
// within 5 s of the first send. Run it with -benchtime 1x; it reports
// accepted/s, the share of the cap that binds, refusals, how long finding
// the limit took, and how many probes above it followed (each a few dozen
// refusals; the cap climbs back toward --tps, so it meets the limit again
// every minute or two).
func BenchmarkProviderCap(b *testing.B) {
	tests := []struct {
		name                    string
		deliverTPS, providerTPS int
		window                  string
	}{
		{"same cap sliding", 2000, 2000, "sliding"},
		{"provider 1500 sliding", 2000, 1500, "sliding"},
		{"provider 1500 fixed", 2000, 1500, "fixed"},
	}
	users := envInt(b, "PUSHPIPE_BENCH_CAP_USERS", 52500)
	for _, tt := range tests {
		b.Run(tt.name, func(b *testing.B) {
			for range b.N {
				f := newFixture(b)
				run := runCapped(b, f, "bench", users, tt.deliverTPS, fakeFlags{tps: tt.providerTPS, window: tt.window})
				refusing, eps := time.Duration(0), run.episodes()
				if len(eps) > 0 {
					refusing = eps[0][1].Sub(run.accepted[0])
				}
				binding := min(float64(tt.providerTPS), float64(tt.deliverTPS)*(1-DefaultExpressShare))
				share := run.rate() / binding
				b.ReportMetric(run.rate(), "accepted/s")
				b.ReportMetric(share, "of-cap")
				b.ReportMetric(float64(run.refused), "refused")
				b.ReportMetric(refusing.Seconds(), "refusing-s")
				b.ReportMetric(float64(max(len(eps)-1, 0)), "probes")
				med, most := run.allowance()
				b.Logf("%d devices in %v: %.0f/s (%.1f%% of the %.0f/s that binds: the provider's %d or the bulk lane's share of --tps %d), at most %d in a one-second window, %d refused, finding the limit took %v, then %d probes %v; allowance median %.0f ms, at most %.0f ms; per second %v",
					len(run.devices), run.elapsed.Round(time.Millisecond), run.rate(), 100*share, binding, tt.providerTPS, tt.deliverTPS,
					maxInWindow(run.accepted, time.Second), run.refused, refusing.Round(10*time.Millisecond),
					max(len(eps)-1, 0), run.refusedAfter(), med, most, run.perSecond())
				switch {
				case tt.providerTPS >= tt.deliverTPS && (run.refused > 0 || share < 0.9):
					b.Errorf("%d refused and %.1f%% of the cap: want none and at least 90%%", run.refused, 100*share)
				case refusing > 5*time.Second:
					b.Errorf("finding the provider's limit took until %v after the first send", refusing)
				}
			}
		})
	}
}
