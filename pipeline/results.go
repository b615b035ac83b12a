package pipeline

import (
	"errors"
	"fmt"
	"strconv"
)

// Outcomes of a result event: a device's terminal state.
const (
	OutcomeSent    = "sent"
	OutcomeFailed  = "failed"
	OutcomeInvalid = "invalid"
)

// ResultEvent is one entry of the results stream: what became of one device
// of a campaign or direct message. deliver writes it (in the Lua of its mark
// script, by these field names); the webhook stage and `pushpipe results
// tail` read it. Its JSON is DESIGN's event object.
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

// ResultIDPrefix is ResultID less the device id, for scripts that append it.
func ResultIDPrefix(campaign, message string) string {
	if message != "" {
		return "m:" + message + ":"
	}
	return "c:" + campaign + ":"
}

// Fields is the event as stream fields (field, value, ...), for Batch.Emit
// or XADD.
func (e ResultEvent) Fields() []string {
	f := []string{FieldID, e.ID}
	if e.Message != "" {
		f = append(f, FieldMessage, e.Message)
	} else {
		f = append(f, FieldCampaign, e.Campaign)
	}
	f = append(f, FieldApp, e.App, FieldUser, strconv.FormatInt(e.UserID, 10), FieldPlatform, e.Platform,
		FieldToken, e.Token, FieldOutcome, e.Outcome, FieldAtMs, strconv.FormatInt(e.AtMs, 10))
	if e.Reason != "" {
		f = append(f, FieldReason, e.Reason)
	}
	return f
}

// ParseResultEvent reads a results entry; an error says which field is wrong
// (the reader dead-letters the entry with it).
func ParseResultEvent(f map[string]string) (ResultEvent, error) {
	e := ResultEvent{ID: f[FieldID], Campaign: f[FieldCampaign], Message: f[FieldMessage], App: f[FieldApp],
		Platform: f[FieldPlatform], Token: f[FieldToken], Outcome: f[FieldOutcome], Reason: f[FieldReason]}
	var errs []error
	if e.ID == "" {
		errs = append(errs, errors.New("no "+FieldID))
	}
	if (e.Campaign == "") == (e.Message == "") {
		errs = append(errs, fmt.Errorf("want exactly one of %s and %s", FieldCampaign, FieldMessage))
	}
	switch e.Outcome {
	case OutcomeSent, OutcomeFailed, OutcomeInvalid:
	default:
		errs = append(errs, fmt.Errorf("%s %q is not sent, failed or invalid", FieldOutcome, e.Outcome))
	}
	var err error
	if e.UserID, err = strconv.ParseInt(f[FieldUser], 10, 64); err != nil {
		errs = append(errs, fmt.Errorf("%s %q is not a user id", FieldUser, f[FieldUser]))
	}
	if e.AtMs, err = strconv.ParseInt(f[FieldAtMs], 10, 64); err != nil {
		errs = append(errs, fmt.Errorf("%s %q is not unix ms", FieldAtMs, f[FieldAtMs]))
	}
	if err := errors.Join(errs...); err != nil {
		return ResultEvent{}, fmt.Errorf("results entry: %w", err)
	}
	return e, nil
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
