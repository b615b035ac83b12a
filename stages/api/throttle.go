package api

import (
	"fmt"
	"math"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/time/rate"
)

// Failed authentication is throttled per client address (clientAddr): each
// wrong bearer token, and each wrong token at the console's sign-in, takes
// one token from the address's bucket; an address whose bucket is empty is
// answered 429 with Retry-After, the operator token included (ServeHTTP,
// the console's signIn): were the right one let through, the answers would
// tell a guesser which guess was right, at full speed. Nothing slowed a
// guesser before: the API answered wrong tokens as fast as they came.
//
// A right token costs nothing and is never delayed, but it does not refill
// the bucket either: an app key ships inside every install, and whoever
// holds one must not reset their budget for guessing the operator token by
// using it. An app key is served even from an address out of budget: it is
// extracted from the app more easily than guessed, and the phones behind a
// carrier NAT shared with a guesser (or with old installs of a retired
// key) keep registering. The console's sign-in and the API share the
// buckets, as they share the operator token.
const (
	// DefaultAuthFailRate is the wrong tokens an address may send per
	// second, once its burst is spent: 86,400 guesses a day, where a
	// secret has at least 16 characters.
	DefaultAuthFailRate = 1.0
	// DefaultAuthFailBurst is the wrong tokens an address may send at
	// once: an operator's typos, a client with a stale key retrying.
	DefaultAuthFailBurst = 20
	// authClients bounds the addresses remembered (a few hundred bytes
	// each, some 15 MB in all): past it, addresses whose bucket is full
	// again are forgotten, then any.
	authClients = 1 << 16
)

// authThrottle is the buckets of failed authentication by client address.
type authThrottle struct {
	rate    rate.Limit
	burst   int
	trusted []netip.Prefix
	log     zerolog.Logger

	mu      sync.Mutex
	clients map[netip.Addr]*failures
	swept   time.Time
}

// failures is one address's bucket, and when its throttling was last logged.
type failures struct {
	lim    *rate.Limiter
	logged time.Time // under authThrottle.mu
}

// authLogEvery paces the log line of an address that stays throttled.
const authLogEvery = time.Minute

// newAuthThrottle is nil (no throttle) for perSecond <= 0.
func newAuthThrottle(perSecond float64, burst int, trusted []netip.Prefix, log zerolog.Logger) *authThrottle {
	if perSecond <= 0 {
		return nil
	}
	return &authThrottle{rate: rate.Limit(perSecond), burst: max(burst, 1), trusted: trusted, log: log,
		clients: map[netip.Addr]*failures{}}
}

// Blocked is how long the client of r must wait before it may present a
// token again; 0: it may now.
func (t *authThrottle) Blocked(r *http.Request) time.Duration {
	if t == nil {
		return 0
	}
	t.mu.Lock()
	f := t.clients[clientAddr(r, t.trusted)]
	t.mu.Unlock()
	if f == nil {
		return 0
	}
	if tokens := f.lim.TokensAt(time.Now()); tokens < 1 {
		return time.Duration((1 - tokens) / float64(t.rate) * float64(time.Second))
	}
	return 0
}

// Failed charges a wrong token to the client of r. Wrong tokens sent at once
// (in flight together when the bucket ran out) are all charged, so the
// bucket goes into debt and the wait grows with them.
func (t *authThrottle) Failed(r *http.Request) {
	if t == nil {
		return
	}
	addr, now := clientAddr(r, t.trusted), time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	f := t.clients[addr]
	if f == nil {
		t.makeRoom(now)
		f = &failures{lim: rate.NewLimiter(t.rate, t.burst)}
		t.clients[addr] = f
	}
	f.lim.ReserveN(now, 1)
	if f.lim.TokensAt(now) < 1 && now.Sub(f.logged) >= authLogEvery {
		// Once a minute while the address keeps failing, not per request.
		f.logged = now
		t.log.Warn().Str("client", addr.String()).Float64("per_second", float64(t.rate)).Int("burst", t.burst).
			Msg("wrong tokens from this address: throttled (429) until its budget refills")
	}
}

// makeRoom keeps the map under authClients: first it forgets addresses
// whose bucket is full again (as if never seen), at most once a second,
// then, under a flood of addresses, any one.
func (t *authThrottle) makeRoom(now time.Time) {
	if len(t.clients) < authClients {
		return
	}
	if now.Sub(t.swept) >= time.Second {
		t.swept = now
		for a, f := range t.clients {
			if f.lim.TokensAt(now) >= float64(t.burst) {
				delete(t.clients, a)
			}
		}
	}
	for a := range t.clients {
		if len(t.clients) < authClients {
			break
		}
		delete(t.clients, a)
	}
}

// tooManyFailures answers 429 with the whole seconds until the client may
// try again.
func tooManyFailures(w http.ResponseWriter, wait time.Duration) {
	secs := retryAfterSecs(wait)
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	writeError(w, http.StatusTooManyRequests, fmt.Sprintf(
		"too many wrong tokens from this address; retry after %d s with the right one (the operator token or an app key)", secs))
}

// retryAfterSecs is wait in whole seconds, at least one.
func retryAfterSecs(wait time.Duration) int { return max(1, int(math.Ceil(wait.Seconds()))) }
