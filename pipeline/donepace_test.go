package pipeline

import "testing"

// TestParseDonePace: the older of the readings deliver keeps, and whether
// there are two; what it cannot read is no reading, not a zero one.
func TestParseDonePace(t *testing.T) {
	tests := []struct {
		give    string
		want    DoneReading
		two, ok bool
	}{
		{"1700000010000,40", DoneReading{Ms: 1700000010000, Done: 40}, false, true},
		{"1700000020000,90,1700000010000,40", DoneReading{Ms: 1700000010000, Done: 40}, true, true},
		{"", DoneReading{}, false, false},
		{"1700000010000", DoneReading{}, false, false},
		{"1700000020000,90,1700000010000", DoneReading{}, false, false},
		{"x,40", DoneReading{}, false, false},
		{"1700000020000,90,1700000010000,y", DoneReading{}, false, false},
	}
	for _, tt := range tests {
		got, two, ok := ParseDonePace(tt.give)
		if got != tt.want || two != tt.two || ok != tt.ok {
			t.Errorf("ParseDonePace(%q) = %+v, %v, %v; want %+v, %v, %v", tt.give, got, two, ok, tt.want, tt.two, tt.ok)
		}
	}
}
