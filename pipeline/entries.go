package pipeline

import (
	"errors"
	"fmt"
	"strconv"
)

// FieldRounds on a deliver entry is the number of send rounds its users had
// already: absent on what dedupe emits, set on deliver's own retries
// (Batch.EmitAt), so a user's attempts are counted across them.
const FieldRounds = "rounds"

// DeliverEntry is one entry of the deliver stream: users of one campaign, all
// in the entry's partition. Dedupe's script writes the same fields in Lua
// (stages/dedupe/script.go), deliver writes retries with Fields and reads
// every entry with ParseDeliverEntry.
type DeliverEntry struct {
	Campaign string
	Users    []int64 // ascending
	Force    bool    // FieldForce: send even to devices marked done
	Rounds   int     // FieldRounds
}

// Fields encodes e for Emit.
func (e DeliverEntry) Fields() []string {
	f := []string{FieldCampaign, e.Campaign, FieldUsers, EncodeIDs(e.Users)}
	if e.Force {
		f = append(f, FieldForce, "1")
	}
	if e.Rounds > 0 {
		f = append(f, FieldRounds, strconv.Itoa(e.Rounds))
	}
	return f
}

// ParseDeliverEntry decodes a deliver entry. Its errors mean the entry can
// never be handled (dead-letter it).
func ParseDeliverEntry(f map[string]string) (DeliverEntry, error) {
	e := DeliverEntry{Campaign: f[FieldCampaign], Force: f[FieldForce] == "1"}
	if e.Campaign == "" {
		return e, errors.New("deliver entry without a campaign")
	}
	users, err := DecodeIDs(f[FieldUsers])
	if err != nil {
		return e, fmt.Errorf("deliver entry users: %w", err)
	}
	e.Users = users
	if r, ok := f[FieldRounds]; ok {
		if e.Rounds, err = strconv.Atoi(r); err != nil || e.Rounds < 0 {
			return e, fmt.Errorf("deliver entry rounds %q: not a count", r)
		}
	}
	return e, nil
}
