package pipeline

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// FieldRounds on a deliver entry is the number of send rounds its users had
// already: absent on what dedupe emits, set on deliver's own retries
// (Batch.EmitAt), so a user's attempts are counted across them.
const FieldRounds = "rounds"

// FieldTokens on a deliver entry carries a message's raw tokens instead of
// users (EncodeTokens).
const FieldTokens = "tokens"

// DeliverEntry is one entry of the deliver stream: users of one campaign, all
// in the entry's partition, or the raw tokens of a message (Tokens, then
// Users is empty). Dedupe's script writes the same fields in Lua
// (stages/dedupe/script.go), the API writes raw-token entries
// (campaign.CreateMessage), deliver writes retries with Fields and reads
// every entry with ParseDeliverEntry.
type DeliverEntry struct {
	Campaign string
	Users    []int64    // ascending
	Tokens   []RawToken // ascending by ID; a raw-token entry has no Users
	Force    bool       // FieldForce: send even to devices marked done
	// ForceDevices (FieldForceDevices), ascending: devices of the entry's
	// users (or raw tokens' ids) to send even if marked done.
	ForceDevices []int64
	Rounds       int   // FieldRounds
	SlotMs       int64 // FieldSlotMs: its campaign's cap put it off to this slot (0: sent when read)
	SlotRate     int   // FieldSlotRate: the campaign's rate the slot was reserved at (0: not known)
}

// RawToken is a device a message names by its token rather than by its
// user: it has no row in the registry, so ID stands in for the device id
// that keys its sent mark. IDs are unique within the message (its 1-based
// position in the message's token list) and positive.
type RawToken struct {
	ID       int64
	Platform string // "ios" or "android"
	Token    string
}

// Fields encodes e for Emit.
func (e DeliverEntry) Fields() []string {
	f := []string{FieldCampaign, e.Campaign, FieldUsers, ""}
	if len(e.Tokens) > 0 {
		f[2], f[3] = FieldTokens, EncodeTokens(e.Tokens)
	} else {
		f[3] = EncodeIDs(e.Users)
	}
	if e.Force {
		f = append(f, FieldForce, "1")
	}
	if len(e.ForceDevices) > 0 {
		f = append(f, FieldForceDevices, EncodeIDs(e.ForceDevices))
	}
	if e.Rounds > 0 {
		f = append(f, FieldRounds, strconv.Itoa(e.Rounds))
	}
	if e.SlotMs > 0 {
		f = append(f, FieldSlotMs, strconv.FormatInt(e.SlotMs, 10))
	}
	if e.SlotMs > 0 && e.SlotRate > 0 {
		f = append(f, FieldSlotRate, strconv.Itoa(e.SlotRate))
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
	var err error
	if raw, ok := f[FieldTokens]; ok {
		if e.Tokens, err = DecodeTokens(raw); err != nil {
			return e, fmt.Errorf("deliver entry tokens: %w", err)
		}
	} else if e.Users, err = DecodeIDs(f[FieldUsers]); err != nil {
		return e, fmt.Errorf("deliver entry users: %w", err)
	}
	if v, ok := f[FieldForceDevices]; ok {
		if e.ForceDevices, err = ascendingIDs(FieldForceDevices, v); err != nil {
			return e, fmt.Errorf("deliver entry: %w", err)
		}
	}
	if r, ok := f[FieldRounds]; ok {
		if e.Rounds, err = strconv.Atoi(r); err != nil || e.Rounds < 0 {
			return e, fmt.Errorf("deliver entry rounds %q: not a count", r)
		}
	}
	if v, ok := f[FieldSlotMs]; ok {
		if e.SlotMs, err = strconv.ParseInt(v, 10, 64); err != nil || e.SlotMs <= 0 {
			return e, fmt.Errorf("deliver entry slot_ms %q: not a time", v)
		}
	}
	if v, ok := f[FieldSlotRate]; ok {
		if e.SlotRate, err = strconv.Atoi(v); err != nil || e.SlotRate <= 0 {
			return e, fmt.Errorf("deliver entry slot_rate %q: not a rate", v)
		}
		// Fields writes it only with a slot: read alone, it was a rate of
		// no slot, dropped again by the entry's next Fields.
		if e.SlotMs == 0 {
			return e, fmt.Errorf("deliver entry slot_rate %q without slot_ms", v)
		}
	}
	return e, nil
}

// EncodeTokens packs raw tokens as lines of "id platform token": neither a
// platform nor a valid token (hex, or FCM's [A-Za-z0-9_:.-]) holds a space
// or a newline.
func EncodeTokens(ts []RawToken) string {
	var b strings.Builder
	for i, t := range ts {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(strconv.FormatInt(t.ID, 10))
		b.WriteByte(' ')
		b.WriteString(t.Platform)
		b.WriteByte(' ')
		b.WriteString(t.Token)
	}
	return b.String()
}

// DecodeTokens reverses EncodeTokens, checking what deliver relies on: at
// least one token, ids positive and strictly ascending, a platform and a
// token on every line. The token's format is the provider's to judge.
func DecodeTokens(s string) ([]RawToken, error) {
	if s == "" {
		return nil, errors.New("no tokens")
	}
	lines := strings.Split(s, "\n")
	out := make([]RawToken, len(lines))
	var prev int64
	for i, line := range lines {
		id, rest, ok1 := strings.Cut(line, " ")
		platform, token, ok2 := strings.Cut(rest, " ")
		n, err := strconv.ParseInt(id, 10, 64)
		switch {
		case !ok1 || !ok2 || platform == "" || token == "":
			return nil, fmt.Errorf("token %d: want \"id platform token\", got %q", i, line)
		case err != nil || n <= prev:
			return nil, fmt.Errorf("token %d: id %q: %w", i, id, ErrIDOrder)
		}
		out[i], prev = RawToken{ID: n, Platform: platform, Token: token}, n
	}
	return out, nil
}

// RangeEntry is one entry of the ranges stream: subscribers of one channel
// with ids in [Lo, Hi], a range split cut for resolve. Range is its
// deterministic id within the campaign.
type RangeEntry struct {
	Campaign, Channel, Range string
	Lo, Hi                   int64
}

// Fields encodes e for Emit.
func (e RangeEntry) Fields() []string {
	return []string{
		FieldCampaign, e.Campaign, FieldChannel, e.Channel, FieldRange, e.Range,
		FieldLo, strconv.FormatInt(e.Lo, 10), FieldHi, strconv.FormatInt(e.Hi, 10),
	}
}

// ParseRangeEntry decodes a ranges entry; errors mean it can never be
// handled. The campaign id is checked by its owner (campaign.ValidateID).
func ParseRangeEntry(f map[string]string) (RangeEntry, error) {
	e := RangeEntry{Campaign: f[FieldCampaign], Channel: f[FieldChannel], Range: f[FieldRange]}
	if e.Channel == "" || e.Range == "" {
		return e, fmt.Errorf("fields %s and %s are required", FieldChannel, FieldRange)
	}
	var err error
	if e.Lo, err = strconv.ParseInt(f[FieldLo], 10, 64); err != nil {
		return e, fmt.Errorf("field %s: %w", FieldLo, err)
	}
	if e.Hi, err = strconv.ParseInt(f[FieldHi], 10, 64); err != nil {
		return e, fmt.Errorf("field %s: %w", FieldHi, err)
	}
	if e.Lo > e.Hi {
		return e, fmt.Errorf("range %s: lo %d > hi %d", e.Range, e.Lo, e.Hi)
	}
	return e, nil
}

// DedupeEntry is one entry of the dedupe stream: users of one campaign in the
// entry's partition, reached (Users) or muted for the campaign's category
// (Muted), both ascending. Resolve writes it; dedupe reads it and forwards
// the encoded Users as they came (UsersRaw) when all of them are new.
type DedupeEntry struct {
	Campaign, Range string // Range: MessageRange for a direct message
	Reading         string // resolve's tag of the range's reading (RangeRecord); "" for messages
	Users, Muted    []int64
	UsersRaw        string // FieldUsers as read (ParseDedupeEntry)
	Force           bool
	// ExpiresMs (FieldExpires) is the campaign's expiry, unix ms, when the
	// writer knows it (the API, for a message), else 0. Dedupe needs it
	// before its commit script, and a message is a campaign dedupe has never
	// seen: carried here, it costs no read of the campaign's hash, a round
	// trip before the message's first send (#15).
	ExpiresMs int64
}

// MessageRange is the Range of a direct message's dedupe entries: it has no
// ranges, and it cannot be canceled, so dedupe does not watch its cancel
// flag.
const MessageRange = "message"

// Message reports whether e is a direct message's.
func (e DedupeEntry) Message() bool { return e.Range == MessageRange }

// Fields encodes e for Emit.
func (e DedupeEntry) Fields() []string {
	f := []string{FieldCampaign, e.Campaign, FieldRange, e.Range}
	if e.Reading != "" {
		f = append(f, FieldReading, e.Reading)
	}
	if len(e.Users) > 0 {
		f = append(f, FieldUsers, EncodeIDs(e.Users))
	}
	if len(e.Muted) > 0 {
		f = append(f, FieldMuted, EncodeIDs(e.Muted))
	}
	if e.Force {
		f = append(f, FieldForce, "1")
	}
	if e.ExpiresMs > 0 {
		f = append(f, FieldExpires, strconv.FormatInt(e.ExpiresMs, 10))
	}
	return f
}

// ParseDedupeEntry decodes a dedupe entry and checks what dedupe's script
// relies on: positive, strictly ascending ids, and at least one.
func ParseDedupeEntry(f map[string]string) (DedupeEntry, error) {
	e := DedupeEntry{Campaign: f[FieldCampaign], Range: f[FieldRange], Reading: f[FieldReading], UsersRaw: f[FieldUsers],
		Force: f[FieldForce] == "1"}
	var err error
	if e.UsersRaw != "" {
		if e.Users, err = ascendingIDs(FieldUsers, e.UsersRaw); err != nil {
			return e, err
		}
	}
	if m := f[FieldMuted]; m != "" {
		if e.Muted, err = ascendingIDs(FieldMuted, m); err != nil {
			return e, err
		}
	}
	if len(e.Users) == 0 && len(e.Muted) == 0 {
		return e, fmt.Errorf("no user ids in %s or %s", FieldUsers, FieldMuted)
	}
	if v, ok := f[FieldExpires]; ok {
		if e.ExpiresMs, err = strconv.ParseInt(v, 10, 64); err != nil || e.ExpiresMs <= 0 {
			return e, fmt.Errorf("field %s %q: not a time", FieldExpires, v)
		}
	}
	return e, nil
}

// ErrIDOrder is why a batch of ids that no stage writes is refused: zero or
// negative ids, repeats, disorder (dedupe's script relies on all three).
var ErrIDOrder = errors.New("user ids must be positive and strictly ascending")

func ascendingIDs(field, s string) ([]int64, error) {
	ids, err := DecodeIDs(s)
	if err != nil {
		return nil, fmt.Errorf("field %s: %w", field, err)
	}
	var prev int64
	for i, id := range ids {
		if id <= prev {
			return nil, fmt.Errorf("field %s: id %d (%d) after %d: %w", field, i, id, prev, ErrIDOrder)
		}
		prev = id
	}
	return ids, nil
}
