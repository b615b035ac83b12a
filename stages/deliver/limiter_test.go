package deliver

import (
	"context"
	"math"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/rueidis"
	"github.com/rs/zerolog"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/stages/deliver/push"
)

// permitLog records when permits were used.
type permitLog struct {
	mu    sync.Mutex
	times []time.Time
}

func (p *permitLog) add(t time.Time) {
	p.mu.Lock()
	p.times = append(p.times, t)
	p.mu.Unlock()
}

// sorted returns the times in order.
func (p *permitLog) sorted() []time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := slices.Clone(p.times)
	slices.SortFunc(out, func(a, b time.Time) int { return a.Compare(b) })
	return out
}

// maxInWindow is the most times within any window [t, t+w), whatever its
// phase (times sorted).
func maxInWindow(times []time.Time, w time.Duration) int {
	most, j := 0, 0
	for i := range times {
		for times[i].Sub(times[j]) >= w {
			j++
		}
		most = max(most, i-j+1)
	}
	return most
}

// send takes a permit and reports an accepted send, as sendOne does.
func (l *limiter) send(ctx context.Context, provider string) error {
	if err := l.wait(ctx, provider, testApp); err != nil {
		return err
	}
	l.done(ctx, l.begin(provider, testApp), provider, testApp, push.Result{Outcome: push.Sent, Status: http.StatusOK})
	return nil
}

func testLimiter(f *fixture, tps int) *limiter {
	return newLimiter(f.rdb, f.keys, pipeline.Bulk, tps, zerolog.New(zerolog.NewTestWriter(f.t)).Level(zerolog.WarnLevel), newMetrics(nil).permitsLate)
}

// takeAll has three limiters (three processes) of tps take permits as fast
// as they can (four callers each) for run, and returns when each permit
// was used, in order, and how many were dropped for being late.
func takeAll(f *fixture, tps int, run time.Duration) (times []time.Time, late int64) {
	ctx, cancel := context.WithTimeout(f.ctx, run)
	defer cancel()
	var (
		log permitLog
		wg  sync.WaitGroup
		ls  []*limiter
	)
	for range 3 {
		l := testLimiter(f, tps)
		ls = append(ls, l)
		for range 4 {
			wg.Go(func() {
				for l.send(ctx, "apns") == nil {
					log.add(time.Now())
				}
			})
		}
	}
	wg.Wait()
	for _, l := range ls {
		late += int64(testutil.ToFloat64(l.late))
	}
	return log.sorted(), late
}

func permitRate(times []time.Time) float64 {
	return float64(len(times)-1) / permitSpan(times).Seconds()
}

// permitSpan is the time from the first permit used to the last.
func permitSpan(times []time.Time) time.Duration {
	return times[len(times)-1].Sub(times[0])
}

// TestLimiterCapsEverySlidingWindow: three limiters (three processes)
// taking permits as fast as they can get no more than tps together in any
// one-second window, whatever its phase, and still most of tps.
func TestLimiterCapsEverySlidingWindow(t *testing.T) {
	f := newFixture(t)
	const tps = 1000
	times, late := takeAll(f, tps, 3*time.Second)
	most, rate := maxInWindow(times, time.Second), permitRate(times)
	t.Logf("%d permits, %.0f/s; at most %d in a one-second window (cap %d); %d dropped late", len(times), rate, most, tps, late)
	if most > tps {
		t.Errorf("%d permits in a one-second window, cap %d", most, tps)
	}
	// 97% of tps on a quiet machine (see limiter), less as the machine gets
	// busier: the margin is for that (BenchmarkLimiter holds it to 90%).
	// Permits dropped for arriving late were granted: the limiter gave
	// them, a starved taker could not use them (on a box running two
	// other suites and a benchmark: 641/s used, 189 late over 3 s).
	if granted := rate + float64(late)/permitSpan(times).Seconds(); granted < 0.5*tps {
		t.Errorf("%.0f permits/s granted (%.0f used), want at least half of %d", granted, rate, tps)
	}
}

// BenchmarkLimiter is TestLimiterCapsEverySlidingWindow at 2000/s for 5 s,
// held to the target: no window over the cap, at least 90% of it used.
func BenchmarkLimiter(b *testing.B) {
	const tps = 2000
	for range b.N {
		f := newFixture(b)
		times, late := takeAll(f, tps, 5*time.Second)
		most, rate := maxInWindow(times, time.Second), permitRate(times)
		b.ReportMetric(rate, "permits/s")
		b.ReportMetric(rate/tps, "of-cap")
		b.ReportMetric(float64(most), "most-in-1s")
		b.ReportMetric(float64(late), "late")
		if most > tps || rate < 0.9*tps {
			b.Errorf("%.0f permits/s, at most %d in a one-second window: want at least %v and at most %d", rate, most, 0.9*tps, tps)
		}
	}
}

// TestLimiterBacksOffOnRefusal: a refusal for the provider's rate reported
// by one process lowers the cap of every process and pauses them all for
// the provider's Retry-After; a second refusal right after it is the same
// event and changes nothing; the cap then comes back by itself.
func TestLimiterBacksOffOnRefusal(t *testing.T) {
	t.Parallel() // mostly waiting
	f := newFixture(t)
	const tps, pause = 1000, 400 * time.Millisecond
	a, b := testLimiter(f, tps), testLimiter(f, tps)
	key := f.keys.RateLimit("fcm", testApp)
	for range 50 { // both have started
		if err := a.send(f.ctx, "fcm"); err != nil {
			t.Fatal(err)
		}
		if err := b.send(f.ctx, "fcm"); err != nil {
			t.Fatal(err)
		}
	}

	refused := push.Result{Outcome: push.Retry, Status: http.StatusTooManyRequests, Reason: "QUOTA_EXCEEDED", RetryAfter: pause, Throttled: true}
	at := time.Now()
	a.done(f.ctx, time.Now(), "fcm", testApp, refused)
	a.done(f.ctx, time.Now(), "fcm", testApp, refused) // same event, same process
	b.done(f.ctx, time.Now(), "fcm", testApp, refused) // same event, another process
	if got := f.limitField(key, "cap"); math.Abs(got-0.7*tps) > 1 {
		t.Errorf("cap %.1f after a refusal, want about %v", got, 0.7*tps)
	}
	if got := f.limitField(key, "ceil"); math.Abs(got-tps) > 1 {
		t.Errorf("ceil %.1f, want the cap that was refused (%d)", got, tps)
	}
	// b still holds permits granted before the refusal: count from its next
	// Redis fetch on.
	var log permitLog
	ctx, cancel := context.WithTimeout(f.ctx, pause+time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for _, l := range []*limiter{a, b} {
		wg.Go(func() {
			for l.send(ctx, "fcm") == nil {
				log.add(time.Now())
			}
		})
	}
	wg.Wait()
	times := log.sorted()
	held := 0
	for _, tm := range times {
		if tm.Sub(at) < pause-5*time.Millisecond {
			held++
		}
	}
	// Only what b had in hand (at most a chunk) goes out during the pause.
	if held > b.chunk {
		t.Errorf("%d permits used during the provider's Retry-After; b held at most %d", held, b.chunk)
	}
	// The cap climbs back from when the pause ended (TestCapRecovery has
	// the figures).
	pauseEnd, upd, cp := f.limitField(key, "pause"), f.limitField(key, "upd"), f.limitField(key, "cap")
	if upd <= pauseEnd || cp <= 0.7*tps+1 || cp > tps {
		t.Errorf("cap %.1f %.0f ms after the pause, want it climbing from %v", cp, (upd-pauseEnd)/1000, 0.7*tps)
	}
	t.Logf("%d permits during the pause; cap %.1f %.0f ms after it", held, cp, (upd-pauseEnd)/1000)
}

// TestDeviceRefusalKeepsTheCap: APNs's 429 is about one device (not
// Throttled): the cap stays, nothing pauses, and the next permits come at
// once, though the answer carries a Retry-After.
func TestDeviceRefusalKeepsTheCap(t *testing.T) {
	f := newFixture(t)
	const tps = 1000
	l := testLimiter(f, tps)
	for range 50 {
		if err := l.send(f.ctx, "apns"); err != nil {
			t.Fatal(err)
		}
	}
	busy := push.Result{Outcome: push.Retry, Status: http.StatusTooManyRequests, Reason: "TooManyRequests", RetryAfter: maxPause}
	for range 3 {
		l.done(f.ctx, time.Now(), "apns", testApp, busy)
	}
	key := f.keys.RateLimit("apns", testApp)
	m, err := f.rdb.Do(f.ctx, f.rdb.B().Hgetall().Key(key).Build()).AsStrMap()
	if err != nil {
		t.Fatal(err)
	}
	if m["ceil"] != "" || m["pause"] != "" || (m["cap"] != "" && m["cap"] != strconv.Itoa(tps)) {
		t.Errorf("limiter state %v after a device's 429: want the cap untouched and no pause", m)
	}
	start := time.Now()
	for range 50 {
		if err := l.send(f.ctx, "apns"); err != nil {
			t.Fatal(err)
		}
	}
	// 50 ms at the cap; a pause would take the minute the answer asks
	// for. Half that is a hang guard no loaded machine reaches by itself.
	if took := time.Since(start); took > maxPause/2 {
		t.Errorf("50 permits at %d/s took %v after a device's 429 (Retry-After %v)", tps, took, maxPause)
	}
}

// limitField reads a number from a limiter hash.
func (f *fixture) limitField(key, field string) float64 {
	f.t.Helper()
	s, err := f.rdb.Do(f.ctx, f.rdb.B().Hget().Key(key).Field(field).Build()).ToString()
	if err != nil {
		f.t.Fatal(err)
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		f.t.Fatal(err)
	}
	return v
}

// TestCapRecovery checks the scripts' recover function: fast up to the
// knee below the refused cap, slowly above it, never past tps.
func TestCapRecovery(t *testing.T) {
	f := newFixture(t)
	recoverScript := rueidis.NewLuaScript(limitLib + `
return tostring(recover(tonumber(ARGV[1]), tonumber(ARGV[2]), 0, tonumber(ARGV[3]) * 1000000, 1000, 0.85, 0.1, 0.005))`)
	tests := []struct {
		name            string
		cap, ceil, secs float64
		want            float64
	}{
		{"at tps it stays", 1000, 0, 10, 1000},
		{"never refused: tps (changed since)", 500, 0, 0, 1000},
		{"fast below the knee", 700, 1000, 1, 800},
		{"fast up to the knee, then slow", 700, 1000, 2, 850 + 0.5*5},
		{"slow above the knee", 900, 1000, 10, 950},
		{"slow past the old ceil", 990, 1000, 4, 1000},
		{"no time, no change", 700, 1000, 0, 700},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := recoverScript.Exec(f.ctx, f.rdb, []string{f.keys.RateLimit("x", "y")}, []string{
				strconv.FormatFloat(tt.cap, 'f', -1, 64), strconv.FormatFloat(tt.ceil, 'f', -1, 64), strconv.FormatFloat(tt.secs, 'f', -1, 64),
			}).ToString()
			if err != nil {
				t.Fatal(err)
			}
			if got, _ := strconv.ParseFloat(s, 64); math.Abs(got-tt.want) > 1e-6 {
				t.Errorf("recover = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestLimiterLetsOneOutUntilAnswered: while a process has had no answer
// from a provider (its connection is being set up), one send at a time gets
// a permit; a send that got no answer lets the next one out; the first
// answer lets everyone through.
func TestLimiterLetsOneOutUntilAnswered(t *testing.T) {
	f := newFixture(t)
	l := testLimiter(f, 1000)
	if err := l.wait(f.ctx, "apns", testApp); err != nil {
		t.Fatal(err)
	}
	second := make(chan error, 1)
	go func() { second <- l.wait(f.ctx, "apns", testApp) }()
	select {
	case err := <-second:
		t.Fatalf("a second permit (%v) before the first send was answered", err)
	case <-time.After(100 * time.Millisecond):
	}
	l.done(f.ctx, time.Now(), "apns", testApp, push.Result{Outcome: push.Retry, Reason: "network: connection refused"})
	if err := <-second; err != nil {
		t.Fatal(err)
	}
	third := make(chan error, 1)
	go func() { third <- l.wait(f.ctx, "apns", testApp) }()
	select {
	case err := <-third:
		t.Fatalf("a third permit (%v) while the second send is out and none was answered", err)
	case <-time.After(100 * time.Millisecond):
	}
	l.done(f.ctx, time.Now(), "apns", testApp, push.Result{Outcome: push.Sent, Status: http.StatusOK})
	if err := <-third; err != nil {
		t.Fatal(err)
	}
	for range 20 { // warm: no done needed between permits
		if err := l.wait(f.ctx, "apns", testApp); err != nil {
			t.Fatal(err)
		}
	}

	// One caller asking for several permits before it sends any waits for
	// itself: coldWait ends that, once.
	start := time.Now()
	for range 20 {
		if err := l.wait(f.ctx, "fcm", testApp); err != nil {
			t.Fatal(err)
		}
	}
	if d := time.Since(start); d < coldWait || d > coldWait+time.Second {
		t.Errorf("20 permits without a send took %v, want coldWait (%v) and the rate", d, coldWait)
	}
}

// TestLimiterHoldsWhileAnswersStop: when sends stop being answered (a
// stalled provider), a process uses no more permits than it has until
// answers come back; a slow send among answered ones holds nothing.
func TestLimiterHoldsWhileAnswersStop(t *testing.T) {
	f := newFixture(t)
	l := testLimiter(f, 1000)
	for range 300 { // under 1% slow ones below, as with any traffic
		if err := l.send(f.ctx, "apns"); err != nil {
			t.Fatal(err)
		}
	}
	ok := push.Result{Outcome: push.Sent, Status: http.StatusOK}
	// One slow send while the others are answered: no hold.
	slow := l.begin("apns", testApp)
	for range 30 {
		if err := l.send(f.ctx, "apns"); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(limitJitter + 30*time.Millisecond)
	if err := l.send(f.ctx, "apns"); err != nil {
		t.Fatal(err)
	}
	l.done(f.ctx, slow, "apns", testApp, ok)

	// Stalled: three sends out, no answer.
	var started []time.Time
	for range 3 {
		if err := l.wait(f.ctx, "apns", testApp); err != nil {
			t.Fatal(err)
		}
		started = append(started, l.begin("apns", testApp))
	}
	// Overdue past any jitter the limiter allows: limitJitter on a quiet
	// machine, up to maxJitter when its own wake-ups run late (on a busy
	// box limitJitter+30ms was not yet a stall, and the test failed).
	time.Sleep(maxJitter + 30*time.Millisecond)
	got := make(chan error, 1)
	go func() { got <- l.wait(f.ctx, "apns", testApp) }()
	select {
	case err := <-got:
		t.Fatalf("a permit (%v) while no send was answered for %v", err, time.Since(started[0]))
	case <-time.After(100 * time.Millisecond):
	}
	for _, at := range started {
		l.done(f.ctx, at, "apns", testApp, ok)
	}
	// Held on after the answers, the wait would end only when stallMax
	// forgets the sends: until just before then, the wait is a hang guard
	// (1 s was one a busy box could miss), at least a second.
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(max(time.Until(started[0].Add(stallMax-500*time.Millisecond)), time.Second)):
		t.Fatalf("no permit after the answers came back (%v after the first of them was sent)", time.Since(started[0]))
	}
}

// TestLimiterOff: tps 0 never waits and never calls Redis.
func TestLimiterOff(t *testing.T) {
	l := newLimiter(nil, testKeysOnly(), pipeline.Bulk, 0, zerolog.Nop(), newMetrics(nil).permitsLate)
	for range 1000 {
		if err := l.wait(context.Background(), "apns", testApp); err != nil {
			t.Fatal(err)
		}
	}
	l.done(context.Background(), time.Time{}, "fcm", testApp, push.Result{Status: http.StatusTooManyRequests, Throttled: true})
}
