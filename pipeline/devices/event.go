// Package devices is what the API, the ingest stage and deliver share about
// device tokens: the validation rules, the ingest stream entry (an Event), the
// clock that stamps events, and the query that reads a batch of users' valid
// tokens.
package devices

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/pushpipe/pushpipe/pipeline"
)

// Platform is a device's push platform, stored as a smallint.
type Platform int16

// Platforms. Zero is "unknown": tombstones of tokens deleted before they were
// ever registered.
const (
	IOS     Platform = 1
	Android Platform = 2
)

// String is the platform's name in the API and the stream: "ios", "android".
func (p Platform) String() string {
	switch p {
	case IOS:
		return "ios"
	case Android:
		return "android"
	}
	return ""
}

// ParsePlatform reads "ios" or "android".
func ParsePlatform(s string) (Platform, error) {
	switch s {
	case "ios":
		return IOS, nil
	case "android":
		return Android, nil
	}
	return 0, fieldErr("platform", "must be \"ios\" or \"android\", got %q", clip(s))
}

// State is a device row's state.
type State int16

// States of a device row. Deleted and invalidated rows are tombstones: they
// keep the event time, so an older event replayed later cannot resurrect them.
const (
	Active      State = 0
	Deleted     State = 1
	Invalidated State = 2
)

// Event is one entry of the ingest stream: a registration (put), a deletion by
// the app, or an invalidation reported by the provider through deliver.
type Event struct {
	Op       string // pipeline.OpPut, OpDelete, OpInvalidate
	App      string
	Token    string
	Platform Platform // put: required; delete/invalidate: 0 if unknown
	User     int64    // put: required; delete/invalidate: 0 if unknown
	Locale   string
	At       int64 // event time, unix microseconds
}

// State is the row state the event leads to.
func (e Event) State() State {
	switch e.Op {
	case pipeline.OpDelete:
		return Deleted
	case pipeline.OpInvalidate:
		return Invalidated
	}
	return Active
}

// Partition is the ingest partition of a token: every event of one token goes
// to one partition, so the ingest stage sees them in the order they were added.
func Partition(keys pipeline.Keys, app, token string) int {
	return keys.HashPartition2(app, token)
}

// Message is the event as an ingest stream entry (pipeline/fields.go).
//
// A registration (put, every app open of a storm) is one field, FieldEvent:
// op, app, token, platform, user, locale and event time joined by tabs. One
// field instead of seven is a third of the strings for Redis to store, send
// and parse on every XADD and XREADGROUP, and for ingest to decode. No part
// of a valid event can hold a tab: tokens, locales and numbers are from small
// charsets, an app name is printable.
//
// Deletions and invalidations are rare (one per DELETE request or provider
// rejection) and keep one field per part, the encoding every producer used
// before FieldEvent, so readers of the stream's raw fields (deliver's tests)
// still see them. ParseEvent reads both encodings.
func (e Event) Message(keys pipeline.Keys) pipeline.Message {
	return e.MessageOn(keys.Stream(pipeline.StreamIngest, Partition(keys, e.App, e.Token)))
}

// MessageOn is Message with its stream, the ingest partition of the event's
// token, already known (a caller may keep the partitions' names).
func (e Event) MessageOn(stream string) pipeline.Message {
	if e.Op != pipeline.OpPut {
		return pipeline.Message{Stream: stream, Fields: e.fields()}
	}
	return pipeline.Message{Stream: stream, Fields: []string{pipeline.FieldEvent, e.packed()}}
}

// fields is the event as one field per part.
func (e Event) fields() []string {
	f := make([]string, 0, 14)
	f = append(f, pipeline.FieldOp, e.Op, pipeline.FieldApp, e.App, pipeline.FieldToken, e.Token)
	if e.Platform != 0 {
		f = append(f, pipeline.FieldPlatform, e.Platform.String())
	}
	if e.User != 0 {
		f = append(f, pipeline.FieldUser, strconv.FormatInt(e.User, 10))
	}
	if e.Locale != "" {
		f = append(f, pipeline.FieldLocale, e.Locale)
	}
	return append(f, pipeline.FieldAt, strconv.FormatInt(e.At, 10))
}

// packed is the event as FieldEvent's value.
func (e Event) packed() string {
	n := len(e.Op) + len(e.App) + len(e.Token) + len(e.Locale) + 6 + 7 + 20 + 20
	b := make([]byte, 0, n)
	b = append(b, e.Op...)
	b = append(b, eventSep)
	b = append(b, e.App...)
	b = append(b, eventSep)
	b = append(b, e.Token...)
	b = append(b, eventSep)
	b = append(b, e.Platform.String()...)
	b = append(b, eventSep)
	if e.User != 0 {
		b = strconv.AppendInt(b, e.User, 10)
	}
	b = append(b, eventSep)
	b = append(b, e.Locale...)
	b = append(b, eventSep)
	b = strconv.AppendInt(b, e.At, 10)
	return string(b)
}

// eventSep separates the parts of FieldEvent.
const eventSep = '\t'

// maxFuture bounds how far ahead of this machine's clock an event time may be:
// an event from the far future would win against every later real event of
// its token forever.
const maxFuture = time.Hour

// rawEvent is an entry's event before validation: the parts of FieldEvent,
// or the separate fields of entries written before it existed.
type rawEvent struct {
	op, app, token, platform, user, locale, at string
	hasPlatform, hasUser                       bool
}

// rawFields reads an entry in either encoding. Entries with one field per
// part (op, app, token...) are what producers wrote before FieldEvent; they
// may still sit in a stream, the dead-letter stream or a replay's range.
func rawFields(f map[string]string) (rawEvent, error) {
	packed, ok := f[pipeline.FieldEvent]
	if !ok {
		r := rawEvent{op: f[pipeline.FieldOp], app: f[pipeline.FieldApp], token: f[pipeline.FieldToken],
			locale: f[pipeline.FieldLocale], at: f[pipeline.FieldAt]}
		r.platform, r.hasPlatform = f[pipeline.FieldPlatform]
		r.user, r.hasUser = f[pipeline.FieldUser]
		return r, nil
	}
	var parts [7]string
	rest := packed
	for i := range parts[:6] {
		j := strings.IndexByte(rest, eventSep)
		if j < 0 {
			return rawEvent{}, fieldErr(pipeline.FieldEvent, "must be 7 tab-separated parts (op, app, token, platform, user, locale, at), got %d in %q", i+1, clip(packed))
		}
		parts[i], rest = rest[:j], rest[j+1:]
	}
	if strings.IndexByte(rest, eventSep) >= 0 {
		return rawEvent{}, fieldErr(pipeline.FieldEvent, "must be 7 tab-separated parts (op, app, token, platform, user, locale, at), got more in %q", clip(packed))
	}
	parts[6] = rest
	return rawEvent{op: parts[0], app: parts[1], token: parts[2], platform: parts[3], user: parts[4], locale: parts[5], at: parts[6],
		hasPlatform: parts[3] != "", hasUser: parts[4] != ""}, nil
}

// ParseEvent reads and validates an ingest stream entry with the same rules
// the API applies, so a malformed entry (a bug in a producer, a hand-written
// XADD) is dead-lettered instead of failing the batch in PostgreSQL.
func ParseEvent(f map[string]string, now time.Time) (Event, error) {
	r, err := rawFields(f)
	if err != nil {
		return Event{}, err
	}
	e := Event{Op: r.op, App: r.app, Token: r.token, Locale: r.locale}
	switch e.Op {
	case pipeline.OpPut, pipeline.OpDelete, pipeline.OpInvalidate:
	default:
		return Event{}, fieldErr(pipeline.FieldOp, "must be put, delete or invalidate, got %q", clip(e.Op))
	}
	if err := ValidateApp(e.App); err != nil {
		return Event{}, err
	}
	if r.hasPlatform || e.Op == pipeline.OpPut {
		p, err := ParsePlatform(r.platform)
		if err != nil {
			return Event{}, err
		}
		e.Platform = p
	}
	if e.Platform != 0 {
		if err := ValidateToken(e.Platform, e.Token); err != nil {
			return Event{}, err
		}
	} else if err := ValidateAnyToken(e.Token); err != nil {
		return Event{}, err
	}
	// Here, not in each producer: every device write (the API's, a
	// provider's invalidation, a hand-written XADD) passes through.
	e.Token = CanonicalToken(e.Platform, e.Token)
	if r.hasUser || e.Op == pipeline.OpPut {
		u, err := strconv.ParseInt(r.user, 10, 64)
		if err != nil {
			return Event{}, fieldErr(pipeline.FieldUser, "must be a decimal user id, got %q", clip(r.user))
		}
		if err := ValidateUser(u); err != nil {
			return Event{}, err
		}
		e.User = u
	}
	if err := ValidateLocale(e.Locale); err != nil {
		return Event{}, err
	}
	at, err := strconv.ParseInt(r.at, 10, 64)
	if err != nil || at <= 0 {
		return Event{}, fieldErr(pipeline.FieldAt, "must be the event time in unix microseconds, got %q", clip(r.at))
	}
	if limit := now.Add(maxFuture).UnixMicro(); at > limit {
		return Event{}, fieldErr(pipeline.FieldAt, "event time %s is more than %s in the future", time.UnixMicro(at).UTC().Format(time.RFC3339), maxFuture)
	}
	e.At = at
	return e, nil
}

// clip shortens a bad value quoted in an error message.
func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

// FieldError names the field that is wrong and what is wrong with it.
type FieldError struct {
	Field   string
	Problem string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Problem }

func fieldErr(field, format string, args ...any) error {
	return &FieldError{Field: field, Problem: fmt.Sprintf(format, args...)}
}
