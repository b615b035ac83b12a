package pipeline

import (
	"strconv"
	"strings"
)

// RangeRecord is what resolve records of a range it read (Keys.RangeUsers),
// after emitting the range's dedupe entries: how many user ids it emitted,
// and the tag of that reading, which every one of those entries carries
// (FieldReading). Dedupe counts the ids it reads per reading
// (ReadField), so progress can tell that the entries of the reading on
// record were read, not merely as many ids: a range emitted twice (resolve
// crashed before its record) would otherwise count twice and stand in for
// another range's entries not read yet, and a campaign would be reported
// done while its last users were still on their way.
type RangeRecord struct {
	Users   int64
	Reading string // "" in records written before readings were tagged
}

// String is the record as stored: "users:reading", or "users" untagged.
func (r RangeRecord) String() string {
	n := strconv.FormatInt(r.Users, 10)
	if r.Reading == "" {
		return n
	}
	return n + ":" + r.Reading
}

// ParseRangeRecord reads a stored record; an unreadable count is 0.
func ParseRangeRecord(s string) RangeRecord {
	n, reading, _ := strings.Cut(s, ":")
	users, _ := strconv.ParseInt(n, 10, 64)
	return RangeRecord{Users: users, Reading: reading}
}

// ReadField is the field of a campaign's Keys.Stats hash in which dedupe
// counts the ids it read of one reading of a range.
func ReadField(rangeID, reading string) string {
	return StatReadPrefix + rangeID + "/" + reading
}
