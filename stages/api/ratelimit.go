package api

import (
	"bytes"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/go-json-experiment/json/jsontext"
	"golang.org/x/time/rate"
)

// DefaultDeviceWriteRate is what `pushpipe api --device-write-rate` starts
// with: device writes per second per app key. Every install of an app shares
// its key, so the limit must carry the app-open storm after a big push (tens
// of thousands of registrations a second, which the ingest stage absorbs in
// bulk) while still bounding what one leaked key can push into the pipeline.
// Operators size it to their fleet with --device-write-rate.
const DefaultDeviceWriteRate = 50_000

// deviceLimits holds one token bucket per app key for device writes (a
// leaked key must not be able to flood the ingest stream). The operator token
// is not limited. The set of keys is fixed at start, so the map is read-only
// and needs no lock; each rate.Limiter has its own.
type deviceLimits struct {
	byApp map[string]*rate.Limiter // nil: no limit
	rate  float64
	burst int
}

// newDeviceLimits builds the buckets: perSecond <= 0 is no limit; burst <= 0
// is twice the rate, but at least one full batch (MaxDeviceBatch), so the
// largest batch the API accepts can always pass when the bucket is full.
func newDeviceLimits(auth Auth, perSecond float64, burst int) deviceLimits {
	apps := auth.apps()
	if perSecond <= 0 || auth.Insecure || len(apps) == 0 {
		return deviceLimits{}
	}
	if burst <= 0 {
		burst = max(int(math.Ceil(2*perSecond)), MaxDeviceBatch)
	}
	l := deviceLimits{byApp: make(map[string]*rate.Limiter, len(apps)), rate: perSecond, burst: burst}
	for _, app := range apps {
		l.byApp[app] = rate.NewLimiter(rate.Limit(perSecond), burst)
	}
	return l
}

// writeCost is how many device writes a request makes (one token each),
// given its body (nil for a route that reads none).
type writeCost func(body []byte) int

// oneDevice is a single register or delete.
func oneDevice([]byte) int { return 1 }

// countItems counts the elements of a batch's JSON array, up to
// MaxDeviceBatch+1, so the bucket is charged one token per device before the
// handler decodes them and an over-limit batch costs no validation. A body
// that is not an array counts as one write: the handler refuses it with the
// precise 400.
func countItems(body []byte) int {
	dec := jsontext.NewDecoder(bytes.NewBuffer(body)) // reads body in place
	if tok, err := dec.ReadToken(); err != nil || tok.Kind() != '[' {
		return 1
	}
	n := 0
	for n <= MaxDeviceBatch && dec.PeekKind() != ']' {
		if dec.SkipValue() != nil {
			break
		}
		n++
	}
	return max(n, 1)
}

// bucket is the token bucket a request of principal p is charged to: nil
// for the operator, for a route that writes no devices, or with no limit.
func (l deviceLimits) bucket(p principal, writes writeCost) *rate.Limiter {
	if p.admin || writes == nil {
		return nil
	}
	return l.byApp[p.app]
}

// hasToken refuses a key already out of tokens (429), before anything of its
// request is read; it reports whether the request may go on.
func (l deviceLimits) hasToken(w http.ResponseWriter, lim *rate.Limiter, app string) bool {
	if tokens := lim.TokensAt(time.Now()); tokens < 1 {
		l.tooManyWrites(w, app, time.Duration((1-tokens)/float64(lim.Limit())*float64(time.Second)))
		return false
	}
	return true
}

// charge takes n tokens from the bucket. Past the limit it answers 429 with
// Retry-After (when the bucket will hold enough tokens), or 413 for more
// than a bucket ever holds, charges nothing and reports false.
func (l deviceLimits) charge(w http.ResponseWriter, lim *rate.Limiter, app string, n int) bool {
	now := time.Now()
	res := lim.ReserveN(now, n)
	if !res.OK() {
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf(
			"a batch of %d devices is more than this app key may write at once (%d); split it", n, l.burst))
		return false
	}
	if wait := res.DelayFrom(now); wait > 0 {
		res.CancelAt(now) // give the tokens back: this request does nothing
		l.tooManyWrites(w, app, wait)
		return false
	}
	return true
}

// tooManyWrites answers 429 with the whole seconds until the bucket holds
// what the request needs.
func (l deviceLimits) tooManyWrites(w http.ResponseWriter, app string, wait time.Duration) {
	secs := max(1, int(math.Ceil(wait.Seconds())))
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	writeError(w, http.StatusTooManyRequests, fmt.Sprintf(
		"the key of app %q is over its device write rate (%g/s, bursts of %d); retry after %d s",
		app, l.rate, l.burst, secs))
}
