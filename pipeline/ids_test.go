package pipeline

import (
	"math"
	"slices"
	"testing"
	"time"
)

func TestIDsRoundTrip(t *testing.T) {
	tests := [][]int64{
		nil,
		{1},
		{1, 2, 3, 1000, 1001},
		{math.MaxInt64, 0, math.MinInt64 + 1, -5, 1 << 40},
		{999_999_999_999, 5, 1_000_000_000_000},
	}
	for _, give := range tests {
		got, err := DecodeIDs(EncodeIDs(give))
		if err != nil {
			t.Fatalf("%v: %v", give, err)
		}
		if !slices.Equal(got, give) && !(len(got) == 0 && len(give) == 0) {
			t.Fatalf("round trip of %v gave %v", give, got)
		}
	}
}

func TestIDsRejectCorruptInput(t *testing.T) {
	good := EncodeIDs([]int64{10, 20, 30})
	tests := map[string]string{
		"empty":      "",
		"truncated":  good[:len(good)-1],
		"trailing":   good + "x",
		"huge count": string([]byte{0xff, 0xff, 0xff, 0xff, 0x0f}),
		"overflow":   string([]byte{1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}),
	}
	for name, give := range tests {
		if _, err := DecodeIDs(give); err == nil {
			t.Errorf("%s: decoded without error", name)
		}
	}
}

// FuzzDecodeIDs: any input either decodes to ids that re-encode to the same
// bytes, or is rejected; it never panics or allocates beyond the input's size.
func FuzzDecodeIDs(f *testing.F) {
	f.Add(EncodeIDs([]int64{1, 2, 3}))
	f.Add(EncodeIDs([]int64{math.MaxInt64, math.MinInt64}))
	f.Add("")
	f.Add("\x80")
	f.Fuzz(func(t *testing.T, s string) {
		ids, err := DecodeIDs(s)
		if err != nil {
			return
		}
		if len(ids) > len(s) {
			t.Fatalf("%d ids from %d bytes", len(ids), len(s))
		}
		if again := EncodeIDs(ids); again != s && len(ids) > 0 {
			// Non-canonical varints (padded) decode fine but re-encode shorter.
			if back, _ := DecodeIDs(again); !slices.Equal(back, ids) {
				t.Fatalf("re-encoding changed the ids")
			}
		}
	})
}

func TestEntryWritten(t *testing.T) {
	tests := []struct {
		id   string
		want time.Time
	}{
		{"1733371234567-0", time.UnixMilli(1733371234567)},
		{"1733371234567-42", time.UnixMilli(1733371234567)},
		{"0-1", time.UnixMilli(0)},
		{"", time.Time{}},
		{"not-an-id", time.Time{}},
	}
	for _, tt := range tests {
		if got := (Entry{ID: tt.id}).Written(); !got.Equal(tt.want) {
			t.Errorf("Entry{ID: %q}.Written() = %v, want %v", tt.id, got, tt.want)
		}
	}
}
