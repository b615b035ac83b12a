package pipeline

import (
	"reflect"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

// The entry codecs' fuzz targets: what a stage writes reads back as it was
// (decode(encode(x)) == x), and whatever fields anyone with Redis access
// writes are read or refused with an error naming the field, never a panic.

// fieldMap is an entry's fields as a runner hands them to a parser.
func fieldMap(kv []string) map[string]string {
	m := make(map[string]string, len(kv)/2)
	for i := 0; i < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}

// ascending turns arbitrary ids into what the stages write: positive,
// strictly ascending, so a round trip can be asked of them.
func ascending(ids []int64) []int64 {
	var out []int64
	for _, id := range ids {
		if id > 0 {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// idsOf reads fuzz bytes as ids, 8 bytes each (little endian).
func idsOf(b []byte) []int64 {
	var ids []int64
	for ; len(b) >= 8; b = b[8:] {
		var v int64
		for i := 7; i >= 0; i-- {
			v = v<<8 | int64(b[i])
		}
		ids = append(ids, v)
	}
	return ids
}

// corrupt replaces field's value with v (or deletes it) and checks the
// parser either reads the entry or refuses it naming the field (or one of
// names, the words its errors use for it). A read entry must survive its
// own round trip: what is accepted is read one way only.
func corrupt[E any](t *testing.T, kv []string, field, v string, del bool, names []string,
	parse func(map[string]string) (E, error), fields func(E) []string) {
	t.Helper()
	f := fieldMap(kv)
	if del {
		delete(f, field)
	} else {
		f[field] = v
	}
	e, err := parse(f)
	if err != nil {
		msg := err.Error()
		for _, n := range names {
			if strings.Contains(msg, n) {
				return
			}
		}
		t.Fatalf("field %s = %q (deleted %v): error %q names none of %q", field, v, del, msg, names)
	}
	again, err := parse(fieldMap(fields(e)))
	if err != nil || !reflect.DeepEqual(again, e) {
		t.Fatalf("field %s = %q read as %+v, which reads back as %+v, %v", field, v, e, again, err)
	}
}

// FuzzDeliverEntry: a deliver entry of users or of raw tokens survives
// Fields and ParseDeliverEntry; any one field of it replaced by arbitrary
// bytes is read consistently or refused naming that field.
func FuzzDeliverEntry(f *testing.F) {
	u := string([]byte{0, 0, 0, 0, 0, 0, 0, 1, 9, 0, 0, 0, 0, 0, 0, 0})
	f.Add("c1", u, "", "", true, []byte{17, 0, 0, 0, 0, 0, 0, 0}, 2, int64(1796419252857), 40, uint8(0), "")
	f.Add("m1", "", "ios", strings.Repeat("ab", 32), false, []byte{}, 0, int64(0), 0, uint8(1), "\x01\x00")
	f.Add("m2", "", "android", "fcm1:APA91b-x_y.z", false, []byte{}, 1, int64(5), 0, uint8(2), "1 ios a\n1 ios b")
	f.Add("c2", u, "", "", false, []byte{}, 0, int64(0), 0, uint8(3), "+7")
	f.Add("c3", u, "", "", false, []byte{}, 1, int64(9), 3, uint8(4), "-1")
	f.Add("c4", u, "", "", false, []byte{}, 1, int64(9), 3, uint8(5), "99999999999999999999")
	f.Add("c5", u, "", "", false, []byte{5, 0, 0, 0, 0, 0, 0, 0}, 0, int64(0), 0, uint8(6), "\x02\x04\x00")
	f.Add("c6", u, "", "", false, []byte{}, 0, int64(0), 0, uint8(7), "")
	f.Fuzz(func(t *testing.T, campaign, users, platform, token string, force bool, forceDevices []byte,
		rounds int, slotMs int64, slotRate int, which uint8, junk string) {
		e := DeliverEntry{Campaign: campaign, Force: force, ForceDevices: ascending(idsOf(forceDevices)),
			Rounds: max(rounds, 0), SlotMs: max(slotMs, 0)}
		if e.SlotMs > 0 {
			e.SlotRate = max(slotRate, 0)
		}
		if platform != "" {
			// What the API writes (campaign.CreateMessage): a platform and
			// a token with no space or newline, ids 1, 2, ...
			e.Tokens = []RawToken{{ID: 1, Platform: platform, Token: token}, {ID: 2, Platform: platform, Token: token + "x"}}
		} else {
			e.Users = ascending(idsOf([]byte(users)))
		}
		writable := campaign != "" && (platform == "" && len(e.Users) > 0 || platform != "" && token != "" && !strings.ContainsAny(platform+token, " \n"))
		got, err := ParseDeliverEntry(fieldMap(e.Fields()))
		switch {
		case !writable:
			if err == nil && campaign == "" {
				t.Fatalf("%+v: read without a campaign", e)
			}
		case err != nil || !reflect.DeepEqual(got, e):
			t.Fatalf("round trip of %+v: %+v, %v", e, got, err)
		}
		if !writable {
			return
		}
		type field struct {
			name  string
			names []string
		}
		fields := []field{
			{FieldCampaign, []string{"campaign"}}, {FieldUsers, []string{"users"}}, {FieldTokens, []string{"tokens", "users"}}, // deleted: read as an entry of users, which it has none of,
			{FieldForce, nil}, {FieldForceDevices, []string{FieldForceDevices}}, {FieldRounds, []string{FieldRounds}},
			{FieldSlotMs, []string{FieldSlotMs}}, {FieldSlotRate, []string{FieldSlotRate}},
		}
		c := fields[int(which/2)%len(fields)]
		corrupt(t, e.Fields(), c.name, junk, which%2 == 1 && c.name != FieldCampaign, c.names, ParseDeliverEntry,
			func(e DeliverEntry) []string { return e.Fields() })
	})
}

// FuzzDecodeTokens: any string is read as tokens deliver can send (ids
// positive and strictly ascending, a platform and a token each) that
// EncodeTokens writes back byte for byte, or refused.
func FuzzDecodeTokens(f *testing.F) {
	for _, s := range []string{"1 ios " + strings.Repeat("ab", 32), "1 ios a\n2 android b:c", "", "\n", "1 ios", "1  x",
		"0 ios a", "2 ios a\n1 ios b", "+1 ios a", "01 ios a", "1 ios a b", "1 ios a\n", "9223372036854775808 ios a"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ts, err := DecodeTokens(s)
		if err != nil {
			if ts != nil {
				t.Fatalf("%q: refused (%v) with %d tokens", s, err, len(ts))
			}
			return
		}
		var prev int64
		for _, tok := range ts {
			if tok.ID <= prev || tok.Platform == "" || tok.Token == "" {
				t.Fatalf("%q: read %+v", s, ts)
			}
			prev = tok.ID
		}
		again, err := DecodeTokens(EncodeTokens(ts))
		if err != nil || !reflect.DeepEqual(again, ts) {
			t.Fatalf("%q: %+v re-encodes to what reads as %+v, %v", s, ts, again, err)
		}
	})
}

// FuzzRangeEntry: a range entry survives Fields and ParseRangeEntry, and
// any one field replaced is read consistently or refused naming it.
func FuzzRangeEntry(f *testing.F) {
	f.Add("c1", "breaking", "r0", int64(1), int64(1000), uint8(0), "")
	f.Add("c1", "a", "r1", int64(5), int64(5), uint8(6), "4")
	f.Add("c1", "a", "r1", int64(5), int64(5), uint8(8), "4")
	f.Add("c1", "a", "r1", int64(-9), int64(9), uint8(7), " 1")
	f.Add("c1", "a", "r1", int64(1), int64(9), uint8(9), "9223372036854775808")
	f.Add("c1", "", "", int64(2), int64(1), uint8(2), "x")
	f.Fuzz(func(t *testing.T, campaign, channel, rng string, lo, hi int64, which uint8, junk string) {
		e := RangeEntry{Campaign: campaign, Channel: channel, Range: rng, Lo: min(lo, hi), Hi: max(lo, hi)}
		got, err := ParseRangeEntry(fieldMap(e.Fields()))
		if channel == "" || rng == "" {
			if err == nil {
				t.Fatalf("%+v: read without a channel or range", e)
			}
			return
		}
		if err != nil || got != e {
			t.Fatalf("round trip of %+v: %+v, %v", e, got, err)
		}
		fields := []struct {
			name  string
			names []string
		}{
			{FieldCampaign, nil}, {FieldChannel, []string{FieldChannel}}, {FieldRange, []string{FieldRange}},
			{FieldLo, []string{FieldLo, " lo "}}, {FieldHi, []string{FieldHi, " hi "}},
		}
		c := fields[int(which/2)%len(fields)]
		if c.name == FieldCampaign {
			// Not checked here: the campaign id is its owner's to judge
			// (campaign.ValidateID, in resolve's parse).
			return
		}
		corrupt(t, e.Fields(), c.name, junk, which%2 == 1, c.names, ParseRangeEntry,
			func(e RangeEntry) []string { return e.Fields() })
	})
}

// FuzzDedupeEntry: a dedupe entry (reached and muted ids, a message's
// expiry) survives Fields and ParseDedupeEntry, u as read being the
// canonical encoding of what was checked; any one field replaced is read
// consistently or refused naming it.
func FuzzDedupeEntry(f *testing.F) {
	one := []byte{1, 0, 0, 0, 0, 0, 0, 0}
	f.Add("c1", "r0", "rd1", one, []byte{}, false, int64(0), uint8(0), "")
	f.Add("m1", MessageRange, "", one, one, true, int64(1765000000000), uint8(2), EncodeIDs([]int64{2, 1}))
	f.Add("c1", "r0", "", []byte{}, one, false, int64(0), uint8(3), "")
	f.Add("c1", "r0", "", one, []byte{}, false, int64(0), uint8(4), "\x01\x00")
	f.Add("c1", "r0", "", one, []byte{}, false, int64(0), uint8(2), "\x01\x80")
	f.Add("m1", MessageRange, "", one, []byte{}, false, int64(1765000000000), uint8(10), "0")
	f.Add("m1", MessageRange, "", one, []byte{}, false, int64(1765000000000), uint8(10), "1e3")
	f.Fuzz(func(t *testing.T, campaign, rng, reading string, users, muted []byte, force bool, expires int64, which uint8, junk string) {
		// A message's entries carry its expiry (exp_ms); 0 is none, and
		// none is written.
		e := DedupeEntry{Campaign: campaign, Range: rng, Reading: reading, Users: ascending(idsOf(users)),
			Muted: ascending(idsOf(muted)), Force: force, ExpiresMs: max(expires, 0)}
		if len(e.Users) > 0 {
			e.UsersRaw = EncodeIDs(e.Users)
		}
		got, err := ParseDedupeEntry(fieldMap(e.Fields()))
		if len(e.Users)+len(e.Muted) == 0 {
			if err == nil {
				t.Fatalf("%+v: read without ids", e)
			}
			return
		}
		if err != nil || !reflect.DeepEqual(got, e) {
			t.Fatalf("round trip of %+v: %+v, %v", e, got, err)
		}
		fields := []struct {
			name  string
			names []string
		}{
			{FieldUsers, []string{"field " + FieldUsers, "no user ids"}}, {FieldMuted, []string{"field " + FieldMuted, "no user ids"}},
			{FieldRange, nil}, {FieldReading, nil}, {FieldForce, nil}, {FieldExpires, []string{"field " + FieldExpires}},
		}
		c := fields[int(which/2)%len(fields)]
		corrupt(t, e.Fields(), c.name, junk, which%2 == 1, c.names, ParseDedupeEntry,
			func(e DedupeEntry) []string { return e.Fields() })
	})
}

// FuzzDLQFields: whatever an entry's fields were (binary id batches,
// invalid UTF-8, text that happens to hold U+FFFD), its dead letter keeps
// them exactly, so `pushpipe dlq retry` re-injects the same entry; and any
// string is decoded or refused, never a panic.
func FuzzDLQFields(f *testing.F) {
	f.Add(FieldUsers, EncodeIDs([]int64{1, 2, 3}), FieldCampaign, "c1", `{"u":"x"}`)
	f.Add(FieldMuted, "\xff\xfe", "text", "\uFFFD", `{"u":{"base64":"!!"}}`)
	f.Add(FieldUsers, "\x01\xc2\x80\xef\xbf\xbd\x02", "x", "", `{"a":1}`) // EncodeIDs([]int64{42613989409})
	f.Add(FieldUsers, EncodeIDs([]int64{1, 1<<62 + 3, 7}), "", "", `[]`)
	f.Add("", "", "", "", `{"u":"\ufffd"}`)
	f.Add("\xffname", "v", "\uFFFDn", "\xfe", `{"\ufffd!!":"x"}`)
	f.Fuzz(func(t *testing.T, k1, v1, k2, v2, junk string) {
		_, _ = DecodeDLQFields(junk)
		m := map[string]string{k1: v1, k2: v2}
		got, err := DecodeDLQFields(EncodeDLQFields(m))
		if err != nil || !reflect.DeepEqual(got, m) {
			t.Fatalf("%q: dead letter keeps %q, %v", m, got, err)
		}
	})
}

// TestDLQFieldsKeepUTF8IDBatches: an id batch that happens to be valid
// UTF-8 holding U+FFFD (FuzzDLQFields found one) is kept exactly; it was
// written as a plain string and read back as one mangled by json.Marshal,
// a dead letter `pushpipe dlq retry` refused.
func TestDLQFieldsKeepUTF8IDBatches(t *testing.T) {
	tests := []struct {
		name string
		give []int64
	}{
		{"one user", []int64{42613989409}},
		{"after a small id", []int64{1, 42613989410}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := EncodeIDs(tt.give)
			if !utf8.ValidString(u) || !strings.ContainsRune(u, utf8.RuneError) {
				t.Fatalf("EncodeIDs(%v) = %q: not UTF-8 holding U+FFFD", tt.give, u)
			}
			give := map[string]string{FieldCampaign: "c1", FieldUsers: u, FieldMuted: u}
			got, err := DecodeDLQFields(EncodeDLQFields(give))
			if err != nil || !reflect.DeepEqual(got, give) {
				t.Fatalf("dead letter keeps %q, %v; want %q", got, err, give)
			}
		})
	}
}
