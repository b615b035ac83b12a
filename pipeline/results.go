package pipeline

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Outcomes of a result event: a device's terminal state.
const (
	OutcomeSent    = "sent"
	OutcomeFailed  = "failed"
	OutcomeInvalid = "invalid"
)

// ResultEvent is what became of one device of a campaign or direct message:
// DESIGN's event object. deliver records events in the results stream (in
// the Lua of its mark script); the webhook stage and `pushpipe results
// tail` read them (ParseResults) and hand them on as JSON (AppendJSON).
//
// A results entry carries the events of the devices one mark call recorded
// (one partition, one campaign or message, one time): a header (the
// campaign or message, app, at) and one binary record per device
// (ResultRecords), with no JSON. deliver writes it for tens of thousands of
// devices a second, so an event costs it a record appended in Go and Redis
// a few bytes copied, not a JSON object per device passed through Lua; the
// JSON is built by the one reader that needs it, the webhook. When a mark
// call finds some devices marked already (a repeat after a crash), the
// script lists them in FieldSkip instead of rewriting the records, and
// readers drop them: an event is read exactly when its outcome became
// durable.
type ResultEvent struct {
	// ID is unique per (campaign or message, device, terminal outcome) and
	// the same on every write of that outcome (ResultID), so receivers
	// dedupe by it.
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
//
// A failed event's id ends in ":failed": a failure is the one outcome a
// later send can follow (`pushpipe dlq retry` re-sends the devices whose
// retries ran out), and a receiver deduping by id would drop that "sent" if
// it had the failure's id. Sent and invalid are final and exclude each
// other, so they share the plain id (the id of every event before failures
// had their own).
func ResultID(campaign, message string, device int64, outcome string) string {
	return ResultIDPrefix(campaign, message) + strconv.FormatInt(device, 10) + resultIDSuffix(outcome)
}

// failedIDSuffix ends the id of a failed event (ResultID).
const failedIDSuffix = ":" + OutcomeFailed

// resultIDSuffix is what follows the device id in an event's id.
func resultIDSuffix(outcome string) string {
	if outcome == OutcomeFailed {
		return failedIDSuffix
	}
	return ""
}

// ResultIDPrefix is ResultID less the device id.
func ResultIDPrefix(campaign, message string) string {
	if message != "" {
		return "m:" + message + ":"
	}
	return "c:" + campaign + ":"
}

// ResultHeader is the header fields of a results entry: the campaign (or,
// with message set, the message), the app and when the outcomes were
// recorded. FieldEvents (the records) follows, then FieldSkip if any.
func ResultHeader(campaign, message, app string, atMs int64) []string {
	subject, id := FieldCampaign, campaign
	if message != "" {
		subject, id = FieldMessage, message
	}
	return []string{subject, id, FieldApp, app, FieldAtMs, strconv.FormatInt(atMs, 10)}
}

// ResultFields is a results entry of evs, for writers other than deliver's
// script (tests, tools): the header is the first event's (evs are of one
// campaign or message, app and time); event ids are derived (ResultID), the
// device read from the end of each evs' ID.
func ResultFields(evs ...ResultEvent) []string {
	if len(evs) == 0 {
		return nil
	}
	r := NewResultRecords(0)
	for _, e := range evs {
		r.Add(e.device(), e.UserID, e.Platform, e.Outcome, e.Token, e.Reason)
	}
	return append(ResultHeader(evs[0].Campaign, evs[0].Message, evs[0].App, evs[0].AtMs), FieldEvents, string(r.Bytes()))
}

// device is the device id at the end of the event's ID (ResultID), 0 if
// none.
func (e ResultEvent) device() int64 {
	id := strings.TrimSuffix(e.ID, failedIDSuffix)
	n, _ := strconv.ParseInt(id[strings.LastIndexByte(id, ':')+1:], 10, 64)
	return n
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
	// Ids, tokens, platforms and outcomes need no escaping: one scan, one
	// copy (the webhook writes a few of them per event).
	plain := true
	for i := 0; i < len(s) && plain; i++ {
		c := s[i]
		plain = c >= 0x20 && c < utf8.RuneSelf && c != '"' && c != '\\'
	}
	if plain {
		return append(append(b, s...), '"')
	}
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

// ParseResults reads a results entry: its events, less those listed in
// FieldSkip. An error says what is wrong (the reader dead-letters the entry
// with it).
func ParseResults(f map[string]string) ([]ResultEvent, error) {
	records, ok := f[FieldEvents]
	if !ok {
		return nil, fmt.Errorf("results entry: no %s field", FieldEvents)
	}
	head := ResultEvent{Campaign: f[FieldCampaign], Message: f[FieldMessage], App: f[FieldApp]}
	head.AtMs, _ = strconv.ParseInt(f[FieldAtMs], 10, 64)
	var skip map[int64]bool
	if s := f[FieldSkip]; s != "" {
		skip = map[int64]bool{}
		for v := range strings.SplitSeq(s, ",") {
			id, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("results entry: %s holds %q, not a device id", FieldSkip, v)
			}
			skip[id] = true
		}
	}
	if records != "" && '0' <= records[0] && records[0] <= '9' {
		return parseLines(head, records, skip)
	}
	return parseRecords(head, records, skip)
}

// parseRecords reads the events of an entry's ResultRecords.
func parseRecords(head ResultEvent, records string, skip map[int64]bool) ([]ResultEvent, error) {
	prefix := ResultIDPrefix(head.Campaign, head.Message)
	// Every token is decoded into one buffer, made one string at the end:
	// an allocation per entry, not per event.
	r := recordReader{s: records, tokens: make([]byte, 0, 2*len(records))}
	var evs []ResultEvent
	var spans [][2]int // of each event's token in r.tokens
	for n, start := 0, 0; r.s != ""; n++ {
		device, user, platform, outcome, end, reason, err := r.next()
		if err != nil {
			return nil, fmt.Errorf("results entry: record %d: %w", n, err)
		}
		if skip[device] {
			// Its token stays in the buffer, unreferenced: cheaper than
			// moving the rest.
			start = end
			continue
		}
		e := head
		e.ID = prefix + strconv.FormatInt(device, 10) + resultIDSuffix(outcome)
		e.UserID, e.Platform, e.Outcome, e.Reason = user, platform, outcome, reason
		if err := e.Validate(); err != nil {
			return nil, fmt.Errorf("results entry: record %d: %w", n, err)
		}
		evs = append(evs, e)
		spans = append(spans, [2]int{start, end})
		start = end
	}
	tokens := string(r.tokens)
	for i, sp := range spans {
		evs[i].Token = tokens[sp[0]:sp[1]]
	}
	return evs, nil
}

// parseLines reads the events of an entry that deliver wrote before
// records (before 2026-12-03): a line per device, device id, user id,
// platform, outcome, token and reason, tab-separated. A results stream
// keeps --retention of them, so an upgraded webhook still reads those. A
// record's first byte (its flags) is never a digit: a line's always is.
func parseLines(head ResultEvent, lines string, skip map[int64]bool) ([]ResultEvent, error) {
	prefix := ResultIDPrefix(head.Campaign, head.Message)
	evs := make([]ResultEvent, 0, strings.Count(lines, "\n"))
	for n := 0; lines != ""; n++ {
		line, rest, ok := strings.Cut(lines, "\n")
		if !ok {
			return nil, fmt.Errorf("results entry: line %d does not end in a newline", n)
		}
		lines = rest
		var part [6]string
		for i := range 5 {
			var found bool
			if part[i], line, found = strings.Cut(line, "\t"); !found {
				return nil, fmt.Errorf("results entry: line %d has %d fields, want 6", n, i+1)
			}
		}
		part[5] = line
		device, err := strconv.ParseInt(part[0], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("results entry: line %d: device id %q", n, part[0])
		}
		if skip[device] {
			continue
		}
		e := head
		// The id as ResultID makes it, not as the line has it: "+41" or
		// "041" is device 41 (skip reads it so), and gave its event
		// another id, which a receiver deduping by id takes for another.
		e.ID = prefix + strconv.FormatInt(device, 10) + resultIDSuffix(part[3])
		if e.UserID, err = strconv.ParseInt(part[1], 10, 64); err != nil {
			return nil, fmt.Errorf("results entry: line %d: user id %q", n, part[1])
		}
		e.Platform, e.Outcome, e.Token, e.Reason = part[2], part[3], part[4], part[5]
		if err := e.Validate(); err != nil {
			return nil, fmt.Errorf("results entry: line %d: %w", n, err)
		}
		evs = append(evs, e)
	}
	return evs, nil
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
