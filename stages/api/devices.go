package api

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	"github.com/rs/zerolog"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/devices"
)

// MaxDeviceBatch is the most items POST /v1/devices/batch takes (413 past it).
const MaxDeviceBatch = 10_000

// emitTimeout bounds the XADD of a device write: past it the client gets a
// 503 and retries, rather than holding a connection while Redis hangs. A
// Redis that is down fails at once (connection refused), so this only decides
// how long a slow Redis may take; 2 s turned one of 500,000 requests of the
// storm benchmark into a 503 on this shared, overloaded 2-core box.
const emitTimeout = 5 * time.Second

// deviceEvents is the Server's state for device writes.
type deviceEvents struct {
	clock    devices.Clock // stamps event times, strictly increasing in this process
	deadline atomic.Pointer[sharedDeadline]

	logOnce sync.Once
	log     zerolog.Logger // sampled: a Redis outage under a storm must not flood the log
}

// sharedDeadline is a context that expires emitTimeout after it was made.
type sharedDeadline struct {
	ctx    context.Context
	cancel context.CancelFunc // never called: the context ends at its deadline
	made   time.Time
}

// emitContext bounds an XADD by emitTimeout (give or take 100 ms). Requests
// of the same 100 ms share one context: a timer per request cost a sixth of
// a single-device write's CPU. It does not follow the request's context
// either: once the write is under way, finishing it is better than leaving
// it half done because the client went away.
func (d *deviceEvents) emitContext() context.Context {
	now := time.Now()
	if sd := d.deadline.Load(); sd != nil && now.Sub(sd.made) < 100*time.Millisecond {
		return sd.ctx
	}
	ctx, cancel := context.WithDeadline(context.Background(), now.Add(emitTimeout))
	d.deadline.Store(&sharedDeadline{ctx: ctx, cancel: cancel, made: now})
	return ctx
}

func (s *Server) deviceLog() *zerolog.Logger {
	s.dev.logOnce.Do(func() {
		s.dev.log = s.cfg.Log.Sample(&zerolog.BurstSampler{Burst: 1, Period: 5 * time.Second})
	})
	return &s.dev.log
}

// deviceRequest is one device registration (DESIGN's contract).
type deviceRequest struct {
	App      string `json:"app"`
	Platform string `json:"platform"`
	Token    string `json:"token"`
	UserID   int64  `json:"user_id"`
	Locale   string `json:"locale"`
}

// event validates the request and returns it as a put event (not yet
// stamped), or every bad field at once (errors.Join): a client told of the
// app alone fixed it, and was told of the token next time.
func (d *deviceRequest) event() (devices.Event, error) {
	errs := []error{devices.ValidateApp(d.App)}
	p, err := devices.ParsePlatform(d.Platform)
	if err == nil {
		errs = append(errs, devices.ValidateRegistration(p, d.Token))
	} else {
		// A token's form depends on its platform: without one, only what
		// every token must be.
		errs = append(errs, err, devices.ValidateAnyToken(d.Token))
	}
	errs = append(errs, devices.ValidateUser(d.UserID), devices.ValidateLocale(d.Locale))
	if err := errors.Join(errs...); err != nil {
		return devices.Event{}, err
	}
	return devices.Event{Op: pipeline.OpPut, App: d.App, Token: d.Token, Platform: p, User: d.UserID, Locale: d.Locale}, nil
}

// postDevice registers one device: POST /v1/devices → 202 once the event is
// in the ingest stream.
func (s *Server) postDevice(w http.ResponseWriter, r *http.Request, body []byte) {
	var req deviceRequest
	if b := bytes.TrimLeft(body, " \t\r\n"); len(b) > 0 && b[0] == '[' {
		// A list of devices posted here meant the batch route.
		writeError(w, http.StatusBadRequest, "the body is a JSON array: this route takes one device object; send several to POST /v1/devices/batch")
		return
	}
	if !decode(w, body, &req) {
		return
	}
	ev, err := req.event()
	if err != nil {
		writeError(w, http.StatusBadRequest, problemsLine(err))
		return
	}
	if !allowedApp(r, ev.App) {
		writeError(w, http.StatusForbidden, "this app key may only register devices of its own app, not "+strconv.Quote(ev.App))
		return
	}
	// A device of an app no campaign or message may name could never be
	// reached: a typo in "app" is told now, not found when nothing arrives.
	if err := s.checkApp(ev.App); err != nil {
		writeError(w, http.StatusUnprocessableEntity, err.Error())
		return
	}
	ev.At = s.dev.clock.Stamp(1)
	s.appendEvents(w, r, []devices.Event{ev})
}

// postDeviceBatch registers up to MaxDeviceBatch devices. The whole batch is
// validated before anything is written: one bad item rejects the batch (400
// naming the item and field) and nothing is appended.
func (s *Server) postDeviceBatch(w http.ResponseWriter, r *http.Request, body []byte) {
	reqs, ok := decodeDeviceBatch(w, body)
	if !ok {
		return
	}
	events := make([]devices.Event, len(reqs))
	for i := range reqs {
		ev, err := reqs[i].event()
		if err != nil {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("item %d: %s", i, problemsLine(err)))
			return
		}
		if !allowedApp(r, ev.App) {
			writeError(w, http.StatusForbidden, fmt.Sprintf("item %d: this app key may only register devices of its own app, not %q", i, ev.App))
			return
		}
		if err := s.checkApp(ev.App); err != nil {
			writeError(w, http.StatusUnprocessableEntity, fmt.Sprintf("item %d: %v", i, err))
			return
		}
		events[i] = ev
	}
	// Consecutive stamps: a token listed twice ends as its last item says.
	first := s.dev.clock.Stamp(len(events))
	for i := range events {
		events[i].At = first + int64(i)
	}
	s.appendEvents(w, r, events)
}

// deleteDevice unregisters a token: DELETE /v1/devices/{app}/{token} → a
// delete event (the row becomes a tombstone once ingested).
func (s *Server) deleteDevice(w http.ResponseWriter, r *http.Request, _ []byte) {
	app, token := r.PathValue("app"), r.PathValue("token")
	if err := errors.Join(devices.ValidateApp(app), devices.ValidateAnyToken(token)); err != nil {
		writeError(w, http.StatusBadRequest, problemsLine(err))
		return
	}
	if !allowedApp(r, app) {
		writeError(w, http.StatusForbidden, "this app key may only delete devices of its own app, not "+strconv.Quote(app))
		return
	}
	// As POST does: an app no campaign or message may name is most likely
	// a typo in the path, and a 202 would tell the caller its device is
	// gone while the device it meant stays registered.
	if err := s.checkApp(app); err != nil {
		writeError(w, http.StatusUnprocessableEntity, err.Error())
		return
	}
	ev := devices.Event{Op: pipeline.OpDelete, App: app, Token: token, At: s.dev.clock.Stamp(1)}
	s.appendEvents(w, r, []devices.Event{ev})
}

// appendEvents XADDs the events to their ingest partitions in one pipelined
// call and answers 202 only if every XADD succeeded; otherwise 503 with
// Retry-After. (A batch cut short by Redis dying mid-call may have landed in
// part: retrying the whole batch is safe, as applying an event twice leaves
// the same row.)
func (s *Server) appendEvents(w http.ResponseWriter, r *http.Request, events []devices.Event) {
	msgs := make([]pipeline.Message, len(events))
	for i, ev := range events {
		msgs[i] = ev.MessageOn(s.streams[devices.Partition(s.cfg.Keys, ev.App, ev.Token)])
	}
	if _, err := pipeline.Emit(s.dev.emitContext(), s.cfg.Redis, msgs...); err != nil {
		s.deviceLog().Warn().Err(err).Int("events", len(events)).Msg("device events not accepted: Redis unavailable")
		unavailable(w, "Redis", time.Second)
		return
	}
	// {"accepted":n}, written by hand: encoding/json cost an eighth of a
	// single-device write's CPU.
	body := make([]byte, 0, 32)
	body = strconv.AppendInt(append(body, `{"accepted":`...), int64(len(events)), 10)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusAccepted)
	w.Write(append(body, "}\n"...))
}

// decodeDeviceBatch reads a JSON array of devices item by item, so an
// oversized batch is refused as soon as item MaxDeviceBatch+1 starts, and a
// malformed item is reported by its index.
func decodeDeviceBatch(w http.ResponseWriter, body []byte) ([]deviceRequest, bool) {
	dec := jsontext.NewDecoder(bytes.NewBuffer(body)) // reads body in place
	if tok, err := dec.ReadToken(); err != nil || tok.Kind() != '[' {
		if err == nil || errors.Is(err, io.EOF) {
			err = errNotArray
		}
		return nil, batchDecodeError(w, -1, err)
	}
	reqs := make([]deviceRequest, 0, 256)
	for dec.PeekKind() != ']' {
		if len(reqs) == MaxDeviceBatch {
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("a batch holds at most %d devices; split it", MaxDeviceBatch))
			return nil, false
		}
		if dec.PeekKind() == 'n' {
			// Unmarshal leaves a null item a device of empty fields, said
			// as "app: is required": a nil in the client's list, not a
			// device missing its app.
			writeError(w, http.StatusBadRequest, fmt.Sprintf("item %d: is null: each item is a device object", len(reqs)))
			return nil, false
		}
		reqs = append(reqs, deviceRequest{})
		if err := jsonv2.UnmarshalDecode(dec, &reqs[len(reqs)-1], strict); err != nil {
			return nil, batchDecodeError(w, len(reqs)-1, err)
		}
	}
	if _, err := dec.ReadToken(); err != nil { // the closing ']'
		return nil, batchDecodeError(w, -1, err)
	}
	if _, err := dec.ReadToken(); err != io.EOF {
		return nil, batchDecodeError(w, -1, errTrailingArray)
	}
	if len(reqs) == 0 {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("the batch is empty: send a JSON array of 1 to %d devices", MaxDeviceBatch))
		return nil, false
	}
	return reqs, true
}

var (
	errNotArray      = errors.New("the body must be a JSON array of devices (one device alone: POST /v1/devices)")
	errTrailingArray = errors.New("unexpected data after the JSON array: send exactly one")
)

// batchDecodeError answers a decoding failure of item i (or of the array
// itself when i < 0) and returns false.
func batchDecodeError(w http.ResponseWriter, i int, err error) bool {
	switch {
	case errors.Is(err, errNotArray):
		writeError(w, http.StatusBadRequest, err.Error())
	case errors.Is(err, io.ErrUnexpectedEOF):
		writeError(w, http.StatusBadRequest, "the JSON array is cut short: send the whole batch")
	case i >= 0:
		writeError(w, http.StatusBadRequest, fmt.Sprintf("item %d: %s", i, jsonProblem(err, 1)))
	default:
		writeError(w, http.StatusBadRequest, jsonProblem(err, 0))
	}
	return false
}
