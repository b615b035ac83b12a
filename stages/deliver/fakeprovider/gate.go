package fakeprovider

import (
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// refusal is why the provider's front end turned a request away before
// looking at it.
type refusal int

const (
	admitted refusal = iota
	refusedOverTPS
	refusedOutage
	refusedInternal    // random 500
	refusedUnavailable // random 503
)

// admit applies what a provider does before it reads a request, in this
// order: the outage window (503 to everything), the rate limit, a hold
// (Hold), the configured latency and random errors. Only requests the rate
// limit lets through count against it. retryAfter is set when the refusal has a
// natural end. at is when the request was admitted: its receipt's time,
// the instant the rate limit counted it (a handler delayed after admit,
// on a loaded machine, must not make its receipt look later than that).
func (s *Server) admit(r *http.Request) (ref refusal, retryAfter time.Duration, at time.Time) {
	now := time.Now()
	at = now
	s.stats.requests.Add(1)
	s.window.arrive(now)
	if end := time.Unix(0, s.outageEnd.Load()); now.Before(end) {
		return refusedOutage, end.Sub(now), at
	}
	if s.rate != nil {
		if ok, after := s.rate.admit(now); !ok {
			return refusedOverTPS, after, at
		}
	}
	if !s.wait(r) {
		// The client gave up while held: it will send again, and a
		// receipt for this one would count that as a duplicate.
		return refusedUnavailable, 0, at
	}
	if d := time.Duration(s.latency.Load()); d > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
		}
	}
	if s.opts.ErrorRate > 0 && rand.Float64() < s.opts.ErrorRate {
		if rand.IntN(2) == 0 {
			return refusedInternal, 0, at
		}
		return refusedUnavailable, 0, at
	}
	return admitted, 0, at
}

// window counts arrivals per wall-clock (Unix) second, for the peak the
// summary reports (the rate limit counts in rateGate).
type window struct {
	mu   sync.Mutex
	sec  int64
	n    uint64
	peak uint64
}

// arrive counts one request in its second.
func (w *window) arrive(now time.Time) {
	sec := now.Unix()
	w.mu.Lock()
	defer w.mu.Unlock()
	if sec != w.sec {
		w.sec, w.n = sec, 0
	}
	w.n++
	w.peak = max(w.peak, w.n)
}

func (w *window) peakPerSecond() uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.peak
}

// fate is what the provider thinks of a token, fixed per token.
type fate int

const (
	fateValid fate = iota
	fateUnregistered
	fateBadToken
)

func (s *Server) fate(token string) fate {
	u := unitHash(token)
	switch {
	case u < s.opts.UnregisteredRate:
		return fateUnregistered
	case u < s.opts.UnregisteredRate+s.opts.BadTokenRate:
		return fateBadToken
	default:
		return fateValid
	}
}

// unitHash maps a token to [0,1), the same on every run and process:
// FNV-1a, then the splitmix64 finalizer, because tokens that differ only in
// their last characters (as in tests and benches) must still spread evenly.
func unitHash(s string) float64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	h ^= h >> 30
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 27
	h *= 0x94d049bb133111eb
	h ^= h >> 31
	return float64(h>>11) / (1 << 53)
}

// stats are the counters behind Summary that are not receipts.
type stats struct {
	connections  atomic.Uint64
	requests     atomic.Uint64
	overTPS      atomic.Uint64
	unregistered atomic.Uint64
	badToken     atomic.Uint64
	errors       atomic.Uint64
}

// retryAfterSeconds renders a Retry-After value: whole seconds, at least 1.
func retryAfterSeconds(d time.Duration) string {
	secs := int64((d + time.Second - 1) / time.Second)
	return strconv.FormatInt(max(secs, 1), 10)
}
