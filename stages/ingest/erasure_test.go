package ingest_test

import (
	"context"
	"slices"
	"testing"

	"github.com/pushpipe/pushpipe/pipeline/devices"
)

// After a user's erasure, ingest applies the user's events no newer than
// it as tombstones without the user (a registration accepted before the
// erasure and still queued must not bring the device back), and newer
// puts as usual (the user came back). The erasure time is past every row
// the user had, so each row's delete event wins even when its put was
// stamped later than the time asked for.
func TestErasureVoidsOlderEventsOfTheUser(t *testing.T) {
	h := newHandler(t)
	tok := apnsToken
	// before the erasure: 42's devices 1 and 7 (7 stamped after the time
	// the erasure asks for), 9 owned by user 5
	h.batch(put(tok(1), 42, 1), put(tok(7), 42, 50), put(tok(9), 5, 1))
	e, err := devices.Erase(context.Background(), h.db, 42, base+10)
	if err != nil {
		t.Fatal(err)
	}
	if e.At != base+51 {
		t.Fatalf("erasure time %d, want %d: past the user's newest row", e.At-base, 51)
	}
	var erased []string
	for _, ev := range e.Tokens {
		erased = append(erased, ev.Token)
	}
	slices.Sort(erased)
	if want := []string{tok(1), tok(7)}; !slices.Equal(erased, want) {
		t.Fatalf("delete events for %v, want %v", erased, want)
	}
	// what was still queued, then the erasure's deletes, then later events
	if err := h.h.Handle(context.Background(), batchOf(h.keys, put(tok(2), 42, 5), put(tok(9), 42, 6), invalidate(tok(3), 42, 7), put(tok(4), 43, 8))); err != nil {
		t.Fatal(err)
	}
	if err := h.h.Handle(context.Background(), batchOf(h.keys, e.Tokens...)); err != nil {
		t.Fatal(err)
	}
	if err := h.h.Handle(context.Background(), batchOf(h.keys, put(tok(5), 42, 60), put(tok(1), 42, 40))); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		token string
		want  row
	}{
		{"a device in the table is deleted", tok(1), row{State: devices.Deleted, At: base + 51}},
		{"its put stamped past the time asked for too", tok(7), row{State: devices.Deleted, At: base + 51}},
		{"a queued registration is a tombstone", tok(2), row{Platform: devices.IOS, State: devices.Deleted, At: base + 5}},
		{"a queued move of another's device deletes it", tok(9), row{Platform: devices.IOS, State: devices.Deleted, At: base + 6}},
		{"an invalidation no longer names the user", tok(3), row{Platform: devices.IOS, State: devices.Invalidated, At: base + 7}},
		{"another user is untouched", tok(4), row{User: 43, Platform: devices.IOS, Locale: "en", At: base + 8}},
		{"a registration after the erasure registers", tok(5), row{User: 42, Platform: devices.IOS, Locale: "en", At: base + 60}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := h.row(tt.token); got != tt.want {
				t.Errorf("row %v, want %v", got, tt.want)
			}
		})
	}
}
