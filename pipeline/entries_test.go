package pipeline

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

// TestDeliverEntryTokens: a raw-token deliver entry survives Fields and
// ParseDeliverEntry as it was (force and rounds too), and what deliver
// could never send is refused.
func TestDeliverEntryTokens(t *testing.T) {
	e := DeliverEntry{Campaign: "m1", Force: true, Rounds: 2, Tokens: []RawToken{
		{ID: 1, Platform: "ios", Token: strings.Repeat("ab", 32)},
		{ID: 7, Platform: "android", Token: "fcm1:APA91b-x_y.z"},
	}}
	fields := func(kv []string) map[string]string {
		m := map[string]string{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	got, err := ParseDeliverEntry(fields(e.Fields()))
	if err != nil || !reflect.DeepEqual(got, e) {
		t.Fatalf("round trip: %+v, %v; want %+v", got, err, e)
	}
	tests := []struct {
		name, tokens string
		order        bool // refused as ErrIDOrder
	}{
		{"empty", "", false},
		{"no token", "1 ios", false},
		{"empty platform", "1  abc", false},
		{"no id", "ios abc", false},
		{"id not a number", "x ios abc", true},
		{"id 0", "0 ios abc", true},
		{"ids out of order", "2 ios abc\n1 ios abd", true},
		{"id repeated", "2 ios abc\n2 android abd", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseDeliverEntry(map[string]string{FieldCampaign: "m1", FieldTokens: tt.tokens})
			if err == nil || errors.Is(err, ErrIDOrder) != tt.order {
				t.Errorf("got %v, want an error (id order: %v)", err, tt.order)
			}
		})
	}
}

// A deliver entry put off to its campaign's slot keeps the slot and the
// rate it was reserved at, and a
// forced round's retry its forced devices, through Fields and
// ParseDeliverEntry; a slot that is no time and forced devices out of order
// are refused.
func TestDeliverEntrySlot(t *testing.T) {
	e := DeliverEntry{Campaign: "c1", Users: []int64{3, 9}, Rounds: 1, SlotMs: 1796419252857, SlotRate: 40, ForceDevices: []int64{17, 40}}
	f := map[string]string{}
	kv := e.Fields()
	for i := 0; i < len(kv); i += 2 {
		f[kv[i]] = kv[i+1]
	}
	if got, err := ParseDeliverEntry(f); err != nil || !reflect.DeepEqual(got, e) {
		t.Fatalf("round trip: %+v, %v; want %+v", got, err, e)
	}
	for _, bad := range []string{"", "0", "-5", "soon"} {
		f[FieldSlotMs] = bad
		if _, err := ParseDeliverEntry(f); err == nil || !strings.Contains(err.Error(), "slot_ms") {
			t.Errorf("slot_ms %q: %v, want refused", bad, err)
		}
	}
	f[FieldSlotMs] = "1796419252857"
	for _, bad := range []string{"", "0", "-5", "fast"} {
		f[FieldSlotRate] = bad
		if _, err := ParseDeliverEntry(f); err == nil || !strings.Contains(err.Error(), "slot_rate") {
			t.Errorf("slot_rate %q: %v, want refused", bad, err)
		}
	}
	delete(f, FieldSlotMs)
	delete(f, FieldSlotRate)
	for _, bad := range [][]int64{{40, 17}, {17, 17}, {0}} {
		f[FieldForceDevices] = EncodeIDs(bad)
		if _, err := ParseDeliverEntry(f); err == nil || !strings.Contains(err.Error(), FieldForceDevices) {
			t.Errorf("force_devices %v: %v, want refused", bad, err)
		}
	}
}
