package push

import "testing"

func TestOutcomeZeroIsNotSent(t *testing.T) {
	var r Result
	if r.Outcome == Sent {
		t.Fatal("zero Result must not read as Sent")
	}
	tests := []struct {
		give Outcome
		want string
	}{
		{Sent, "sent"}, {Retry, "retry"}, {Invalid, "invalid"}, {Failed, "failed"}, {0, "unknown"},
	}
	for _, tt := range tests {
		if got := tt.give.String(); got != tt.want {
			t.Errorf("Outcome(%d).String() = %q, want %q", tt.give, got, tt.want)
		}
	}
}
