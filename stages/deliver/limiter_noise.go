package deliver

import "time"

// How noisy the way from a permit to the provider is, as one process sees
// it: how late its permits are used (a busy machine wakes it up late), and
// how much its sends' durations spread (a request that waits somewhere on
// the way, in a queue or behind a stalled provider, takes longer: when many
// wait at once they reach the provider together).

// noise is what a bucket makes of its lateness and durations: how late
// permits may be used, the jitter between permit and provider, and how
// long a send typically takes (typicalKnown false: no send timed yet).
type noise struct {
	at           time.Time
	late, jitter time.Duration
	typical      time.Duration
	typicalKnown bool
}

// noiseEvery: the figures are looked at for every permit, and change with
// seconds of sends.
const noiseEvery = 10 * time.Millisecond

// noiseAt returns the bucket's noise as of now (b.mu held).
func (b *bucket) noiseAt(now time.Time) noise {
	if now.Sub(b.noise.at) < noiseEvery {
		return b.noise
	}
	late := min(max(b.lateness.recent(now), limitLate), maxLate)
	spread, typical, ok := b.durations.spread(now)
	b.noise = noise{
		at:   now,
		late: late,
		// The way to the provider is assumed at least as noisy as this
		// process's wake-ups.
		jitter:       min(max(spread, late, limitJitter), maxJitter),
		typical:      typical,
		typicalKnown: ok,
	}
	return b.noise
}

// lateness keeps the most a permit was used after its slot in this second
// and the one before.
type lateness struct {
	sec int64
	max [2]time.Duration
}

func (x *lateness) add(now time.Time, d time.Duration) {
	switch sec := now.Unix(); {
	case sec == x.sec:
	case sec == x.sec+1:
		x.sec, x.max = sec, [2]time.Duration{0, x.max[0]}
	default:
		x.sec, x.max = sec, [2]time.Duration{}
	}
	x.max[0] = max(x.max[0], d)
}

func (x *lateness) recent(now time.Time) time.Duration {
	switch now.Unix() {
	case x.sec:
		return max(x.max[0], x.max[1])
	case x.sec + 1:
		return x.max[0]
	}
	return 0
}

// durations is a histogram of send durations by millisecond (the last
// bucket takes everything longer) for this period of spreadPeriod and the
// one before.
type durations struct {
	period int64
	counts [2][256]uint32
}

const spreadPeriod = 2 * time.Second

func (x *durations) add(now time.Time, d time.Duration) {
	switch p := now.UnixNano() / int64(spreadPeriod); {
	case p == x.period:
	case p == x.period+1:
		x.period, x.counts[1], x.counts[0] = p, x.counts[0], [256]uint32{}
	default:
		x.period, x.counts = p, [2][256]uint32{}
	}
	x.counts[0][min(d/time.Millisecond, 255)]++
}

// spread is how far apart the 1st and the 99th percentile of the recent
// durations are (a stall that holds up a share of the sends shows, one slow
// request alone does not), and typical their median; ok is false when
// there are none.
func (x *durations) spread(now time.Time) (spread, typical time.Duration, ok bool) {
	q := x.quantiles(now, 1, 50, 99)
	if q[0] < 0 {
		return 0, 0, false
	}
	return q[2] - q[0], q[1], true
}

// quantiles returns the recent durations at the given percentiles (in
// increasing order), each -1 when there are none.
func (x *durations) quantiles(now time.Time, pct ...uint32) []time.Duration {
	out := make([]time.Duration, len(pct))
	for i := range out {
		out[i] = -1
	}
	var h [256]uint32
	switch now.UnixNano() / int64(spreadPeriod) {
	case x.period:
		for i := range h {
			h[i] = x.counts[0][i] + x.counts[1][i]
		}
	case x.period + 1:
		h = x.counts[0]
	default:
		return out
	}
	var n uint32
	for _, c := range h {
		n += c
	}
	var seen uint32
	j := 0
	for i, c := range h {
		seen += c
		// The p-th percentile is the first bucket that holds more than p%
		// of the durations (p = 99: at least 99%).
		for j < len(pct) && n > 0 && (seen*100 > n*pct[j] || pct[j] >= 99 && seen*100 >= n*pct[j]) {
			out[j] = time.Duration(i) * time.Millisecond
			j++
		}
	}
	return out
}

// outstanding is the FIFO of the times sends began, less one per answer:
// each answer retires the oldest. Its oldest entry then is a send
// that is overdue only when answers stop coming back at all (a stalled
// path or provider: what is sent meanwhile queues up and arrives together
// later), not when one request is slow while the others are answered.
type outstanding struct {
	times []time.Time
	head  int
}

func (o *outstanding) add(t time.Time) { o.times = append(o.times, t) }

func (o *outstanding) answered() {
	if o.head < len(o.times) {
		o.head++
	}
	if o.head > 1024 && o.head*2 > len(o.times) {
		o.times = append(o.times[:0], o.times[o.head:]...)
		o.head = 0
	}
}

// oldest is the i-th oldest entry (0: the oldest); zero when there are not
// that many.
func (o *outstanding) oldest(i int) time.Time {
	if o.head+i >= len(o.times) {
		return time.Time{}
	}
	return o.times[o.head+i]
}
