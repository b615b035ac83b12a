package main

import (
	"strings"
	"testing"
	"time"
)

// --send-at takes a duration from now, what a person scheduling from a
// shell types first ("+10m" was refused as not RFC 3339), and a time with
// no zone is refused with the same time in UTC to copy.
func TestSendAtFromNow(t *testing.T) {
	tests := []struct {
		give    string
		want    time.Duration // from now; 0: refused
		wantErr string
	}{
		{give: "+10m", want: 10 * time.Minute},
		{give: "in 2h", want: 2 * time.Hour},
		{give: "+1h30m", want: 90 * time.Minute},
		{give: "+-5m", wantErr: `"+-5m" is not a duration from now`},
		{give: "in soon", wantErr: `"in soon" is not a duration from now`},
		{give: "10m", wantErr: `got "10m": "+10m" if from now`},
		{give: "2026-12-24 18:00", wantErr: `which has no time zone: "2026-12-24T18:00:00Z" if it is UTC`},
	}
	for _, tt := range tests {
		t.Run(tt.give, func(t *testing.T) {
			before := time.Now().Truncate(time.Second)
			kctx, err := kongParse("send", "--app", "a", "--channel", "x", "--title", "t", "--send-at", tt.give)
			after := time.Now()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one saying %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := kctx.Selected().Target.Addr().Interface().(*SendCmd).sendAt
			if got.Before(before.Add(tt.want)) || got.After(after.Add(tt.want)) {
				t.Fatalf("--send-at %s read as %v, want %v from now (between %v and %v)", tt.give, got, tt.want, before.Add(tt.want), after.Add(tt.want))
			}
		})
	}
}
