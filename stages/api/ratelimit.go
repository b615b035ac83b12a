package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"time"

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
	if perSecond <= 0 || auth.Insecure || len(auth.AppKeys) == 0 {
		return deviceLimits{}
	}
	if burst <= 0 {
		burst = max(int(math.Ceil(2*perSecond)), MaxDeviceBatch)
	}
	l := deviceLimits{byApp: make(map[string]*rate.Limiter, len(auth.AppKeys)), rate: perSecond, burst: burst}
	for app := range auth.AppKeys {
		l.byApp[app] = rate.NewLimiter(rate.Limit(perSecond), burst)
	}
	return l
}

// writeCost is how many device writes a request makes (one token each); on
// failure it has answered the request itself and returns false.
type writeCost func(w http.ResponseWriter, r *http.Request) (int, bool)

// oneDevice is a single register or delete.
func oneDevice(http.ResponseWriter, *http.Request) (int, bool) { return 1, true }

// batchDevices counts the items of POST /v1/devices/batch before the handler
// decodes them, so the bucket is charged one token per device and an
// over-limit batch costs no validation. The body (already capped by
// limitBody) is kept in memory and handed on unchanged.
func batchDevices(w http.ResponseWriter, r *http.Request) (int, bool) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body is larger than %d bytes; split the batch", tooBig.Limit))
		} else {
			writeError(w, http.StatusBadRequest, "reading the request body failed: "+err.Error())
		}
		return 0, false
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	return countItems(body), true
}

// countItems counts the elements of a JSON array, up to MaxDeviceBatch+1. A
// body that is not an array counts as one write: the handler refuses it with
// the precise 400.
func countItems(body []byte) int {
	dec := json.NewDecoder(bytes.NewReader(body))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('[') {
		return 1
	}
	n := 0
	for n <= MaxDeviceBatch && dec.More() {
		var skip json.RawMessage
		if dec.Decode(&skip) != nil {
			break
		}
		n++
	}
	return max(n, 1)
}

// limitDeviceWrites charges a device-write request to its app key's bucket:
// past the limit it answers 429 with Retry-After (when the bucket will hold
// enough tokens) and the request is not handled; nothing is charged for it.
func (s *Server) limitDeviceWrites(cost writeCost, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		app := principalOf(r).app
		lim := s.limits.byApp[app]
		if lim == nil { // the operator, or no limit configured
			h(w, r)
			return
		}
		// A key already out of tokens is refused before its body is read.
		if tokens := lim.TokensAt(time.Now()); tokens < 1 {
			s.tooManyWrites(w, app, time.Duration((1-tokens)/float64(lim.Limit())*float64(time.Second)))
			return
		}
		n, ok := cost(w, r)
		if !ok {
			return
		}
		now := time.Now()
		res := lim.ReserveN(now, n)
		if !res.OK() {
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf(
				"a batch of %d devices is more than this app key may write at once (%d); split it", n, s.limits.burst))
			return
		}
		if wait := res.DelayFrom(now); wait > 0 {
			res.CancelAt(now) // give the tokens back: this request does nothing
			s.tooManyWrites(w, app, wait)
			return
		}
		h(w, r)
	}
}

// tooManyWrites answers 429 with the whole seconds until the bucket holds
// what the request needs.
func (s *Server) tooManyWrites(w http.ResponseWriter, app string, wait time.Duration) {
	secs := max(1, int(math.Ceil(wait.Seconds())))
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	writeError(w, http.StatusTooManyRequests, fmt.Sprintf(
		"the key of app %q is over its device write rate (%g/s, bursts of %d); retry after %d s",
		app, s.limits.rate, s.limits.burst, secs))
}
