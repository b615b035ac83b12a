package pipeline

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// FieldText is the dead letter's original field name as a person reads it,
// in `pushpipe dlq show` and on the console's dead-letter page alike: an id
// batch (FieldUsers, FieldMuted) as its count and first ten ids, a results
// entry's events (FieldEvents) as their count and first five outcomes, other
// binary or control characters quoted, text as it is. A value that does not
// decode is quoted raw, so a damaged letter still shows what it holds.
//
// It lives beside the codecs because both readers printed the binary values
// quoted, a screen of escapes, until the CLI decoded them and the console,
// a copy behind, still did not.
func (d DeadLetter) FieldText(name string) string {
	v := d.Fields[name]
	switch name {
	case FieldUsers, FieldMuted:
		if ids, err := DecodeIDs(v); err == nil {
			return idsText(ids)
		}
	case FieldEvents:
		if evs, err := ParseResults(d.Fields); err == nil {
			return eventsText(evs)
		}
	}
	if !utf8.ValidString(v) || strings.ContainsFunc(v, func(r rune) bool { return r < 0x20 }) {
		return strconv.Quote(v)
	}
	return v
}

func idsText(ids []int64) string {
	parts := make([]string, 0, 11)
	for i, id := range ids {
		if i == 10 {
			parts = append(parts, "…")
			break
		}
		parts = append(parts, strconv.FormatInt(id, 10))
	}
	return fmt.Sprintf("%d user ids: %s", len(ids), strings.Join(parts, " "))
}

// eventsText counts in words that fit the count: "1 events: user 5 ios
// sent" read wrong.
func eventsText(evs []ResultEvent) string {
	parts := make([]string, 0, 6)
	for i, e := range evs {
		if i == 5 {
			parts = append(parts, "…")
			break
		}
		p := fmt.Sprintf("user %d %s %s", e.UserID, e.Platform, e.Outcome)
		if e.Reason != "" {
			p += " (" + e.Reason + ")"
		}
		parts = append(parts, p)
	}
	noun := "events"
	if len(evs) == 1 {
		noun = "event"
	}
	return fmt.Sprintf("%d %s: %s", len(evs), noun, strings.Join(parts, "; "))
}
