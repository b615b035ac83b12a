package pipeline

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"unicode/utf8"
)

// Outcomes of a result event: a device's terminal state.
const (
	OutcomeSent    = "sent"
	OutcomeFailed  = "failed"
	OutcomeInvalid = "invalid"
)

// ResultEvent is what became of one device of a campaign or direct message:
// DESIGN's event object, as JSON. deliver writes events to the results
// stream (in the Lua of its mark script); the webhook stage and `pushpipe
// results tail` read them.
//
// A results entry carries the events of the devices one mark call recorded
// (one partition, one campaign) as a JSON array in its FieldEvents: one
// XADD per group of devices instead of one per device keeps results cheap
// for deliver (an event costs Redis a few bytes of an entry, not an entry).
type ResultEvent struct {
	// ID is unique per (campaign or message, device) and the same on every
	// write of that outcome (ResultID), so receivers dedupe by it.
	ID       string `json:"id"`
	Campaign string `json:"campaign,omitempty"`
	Message  string `json:"message,omitempty"`
	App      string `json:"app"`
	UserID   int64  `json:"user_id"`
	Platform string `json:"platform"`
	Token    string `json:"token"`
	Outcome  string `json:"outcome"` // OutcomeSent | OutcomeFailed | OutcomeInvalid
	Reason   string `json:"reason,omitempty"`
	AtMs     int64  `json:"at_ms"`
}

// ResultID is the id of the result event of a device of a campaign (or,
// with message set, of a direct message): derived from what it is about,
// never from time, so a repeat after a crash carries the same id.
func ResultID(campaign, message string, device int64) string {
	return ResultIDPrefix(campaign, message) + strconv.FormatInt(device, 10)
}

// ResultIDPrefix is ResultID less the device id.
func ResultIDPrefix(campaign, message string) string {
	if message != "" {
		return "m:" + message + ":"
	}
	return "c:" + campaign + ":"
}

// ResultFields is a results entry carrying evs (Batch.Emit or Emit fields).
func ResultFields(evs ...ResultEvent) []string {
	b := []byte{'['}
	for i, e := range evs {
		if i > 0 {
			b = append(b, ',')
		}
		b = e.AppendJSON(b)
	}
	return []string{FieldEvents, string(append(b, ']'))}
}

// AppendJSON appends the event's JSON as encoding/json writes it (less its
// HTML escaping), without reflection: deliver builds one for every device
// it marks.
func (e ResultEvent) AppendJSON(b []byte) []byte {
	b = append(b, `{"id":`...)
	b = appendJSONString(b, e.ID)
	if e.Campaign != "" {
		b = append(b, `,"campaign":`...)
		b = appendJSONString(b, e.Campaign)
	}
	if e.Message != "" {
		b = append(b, `,"message":`...)
		b = appendJSONString(b, e.Message)
	}
	b = append(b, `,"app":`...)
	b = appendJSONString(b, e.App)
	b = append(b, `,"user_id":`...)
	b = strconv.AppendInt(b, e.UserID, 10)
	b = append(b, `,"platform":`...)
	b = appendJSONString(b, e.Platform)
	b = append(b, `,"token":`...)
	b = appendJSONString(b, e.Token)
	b = append(b, `,"outcome":`...)
	b = appendJSONString(b, e.Outcome)
	if e.Reason != "" {
		b = append(b, `,"reason":`...)
		b = appendJSONString(b, e.Reason)
	}
	b = append(b, `,"at_ms":`...)
	b = strconv.AppendInt(b, e.AtMs, 10)
	return append(b, '}')
}

// appendJSONString appends s as a JSON string: quotes, backslashes and
// control characters escaped, invalid UTF-8 as U+FFFD (as encoding/json).
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c == '\n':
				b = append(b, '\\', 'n')
			case c == '\r':
				b = append(b, '\\', 'r')
			case c == '\t':
				b = append(b, '\\', 't')
			case c < 0x20:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, `\ufffd`...)
		} else {
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}

// ParseResults reads a results entry; an error says what is wrong (the
// reader dead-letters the entry with it).
func ParseResults(f map[string]string) ([]ResultEvent, error) {
	evs, _, err := ParseResultsRaw(f)
	return evs, err
}

// ParseResultsRaw is ParseResults that also returns each event's JSON as
// written, for a reader that passes it on (the webhook's POST body).
func ParseResultsRaw(f map[string]string) ([]ResultEvent, []json.RawMessage, error) {
	raw, ok := f[FieldEvents]
	if !ok {
		return nil, nil, fmt.Errorf("results entry: no %s field", FieldEvents)
	}
	var raws []json.RawMessage
	if err := json.Unmarshal([]byte(raw), &raws); err != nil {
		return nil, nil, fmt.Errorf("results entry: %s is not a JSON array of events: %w", FieldEvents, err)
	}
	evs := make([]ResultEvent, len(raws))
	for i, r := range raws {
		if err := json.Unmarshal(r, &evs[i]); err != nil {
			return nil, nil, fmt.Errorf("results entry: event %d: %w", i, err)
		}
		if err := evs[i].Validate(); err != nil {
			return nil, nil, fmt.Errorf("results entry: event %d: %w", i, err)
		}
	}
	return evs, raws, nil
}

// Validate says what is wrong with an event, if anything.
func (e ResultEvent) Validate() error {
	var errs []error
	if e.ID == "" {
		errs = append(errs, errors.New("no id"))
	}
	if (e.Campaign == "") == (e.Message == "") {
		errs = append(errs, errors.New("want exactly one of campaign and message"))
	}
	switch e.Outcome {
	case OutcomeSent, OutcomeFailed, OutcomeInvalid:
	default:
		errs = append(errs, fmt.Errorf("outcome %q is not sent, failed or invalid", e.Outcome))
	}
	if e.AtMs <= 0 {
		errs = append(errs, errors.New("no at_ms"))
	}
	return errors.Join(errs...)
}

// LuaXAdd is the Lua function a script includes to append to a stream as
// every writer does: xadd(key, fields) with an auto id and no MAXLEN (the
// trimmer alone removes entries, and only acknowledged ones past retention:
// trim.go). fields is a Lua array field, value, ...
const LuaXAdd = `
local function xadd(key, fields)
  return redis.call('XADD', key, '*', unpack(fields))
end
`
