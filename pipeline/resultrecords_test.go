package pipeline_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/pushpipe/pushpipe/pipeline"
)

// Every token comes back exactly, in the shortest form that can write it:
// an APNs token's hex as bytes, an FCM token's base64url at 6 bits a
// character, anything else as it is.
func TestResultRecordTokens(t *testing.T) {
	apns := strings.Repeat("0123456789abcdef", 4)
	fcm := "dGVzdC1pbnN0YW5jZQ:APA91b" + strings.Repeat("Zm9vYmFyX2Jhei1xdXV4", 4) + "_-9"
	tests := []struct {
		name  string
		token string
		bytes int // the token's in the record
	}{
		{"apns hex", apns, 32},
		{"fcm", fcm, 1 + 81}, // the colon's place, 107 characters at 6 bits
		{"fcm without colon", strings.ReplaceAll(fcm, ":", ""), 1 + 81},
		{"upper-case hex", strings.ToUpper(apns), 1 + 48},
		{"odd hex", apns[:63], 1 + 48},
		{"two colons", "a:b:c", 5},
		{"one colon alone", ":", 1},
		{"empty", "", 0},
		{"not ascii", "tøken\x00\t\n", 9},
		{"long, colon inside", "x:" + strings.Repeat("A", 400), 1 + 1 + 301}, // a 2-byte length; 401 characters
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := pipeline.ResultEvent{ID: pipeline.ResultID("c1", "", 9_000_001, pipeline.OutcomeSent), Campaign: "c1", App: "a", UserID: 7_000_001,
				Platform: "android", Token: tt.token, Outcome: pipeline.OutcomeSent, AtMs: 1}
			f := fieldMap(pipeline.ResultFields(ev))
			got, err := pipeline.ParseResults(f)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 1 || got[0] != ev {
				t.Fatalf("round trip:\n%+v\nwant\n%+v", got, ev)
			}
			// flags, 4 + 4 bytes of ids, the token's length, the reason's
			if n := len(f[pipeline.FieldEvents]); n != 11+tt.bytes {
				t.Errorf("record of %d bytes, want %d", n, 11+tt.bytes)
			}
		})
	}
}

// A mark call's devices are neighbours: each record after the first pays a
// byte or two for its ids, whichever way they move.
func TestResultRecordIDs(t *testing.T) {
	var evs []pipeline.ResultEvent
	for i, d := range []int64{1 << 40, 1<<40 + 3, 17, 0, 1 << 62, -5} {
		outcome := []string{"sent", "failed", "invalid"}[i%3]
		evs = append(evs, pipeline.ResultEvent{ID: pipeline.ResultID("", "m", d, outcome), Message: "m", App: "a", UserID: d / 2,
			Platform: []string{"ios", "android", "web"}[i%3], Token: "", Outcome: outcome,
			Reason: strings.Repeat("r", i), AtMs: 3})
	}
	got, err := pipeline.ParseResults(fieldMap(pipeline.ResultFields(evs...)))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, evs) {
		t.Errorf("round trip:\n%+v\nwant\n%+v", got, evs)
	}
	r := pipeline.NewResultRecords(0)
	r.Add(1_000_000, 800_000, "ios", "sent", "", "")
	first := len(r.Bytes())
	r.Add(1_000_003, 800_002, "ios", "sent", "", "")
	if n := len(r.Bytes()) - first; n != 5 {
		t.Errorf("a neighbour's record is %d bytes, want 5 (flags, two one-byte deltas, the lengths of token and reason)", n)
	}
}

// Any bytes are refused or read, never a panic; what Add writes reads back.
func FuzzResultRecords(f *testing.F) {
	f.Add(int64(5), int64(7), "ios", "sent", strings.Repeat("ab", 32), "", []byte{})
	f.Add(int64(-1), int64(1<<62), "web", "invalid", "x:APA91b-_", "BadDeviceToken", []byte{0x20, 0x01})
	f.Fuzz(func(t *testing.T, device, user int64, platform, outcome, token, reason string, junk []byte) {
		f := map[string]string{pipeline.FieldCampaign: "c", pipeline.FieldAtMs: "1", pipeline.FieldEvents: string(junk)}
		_, _ = pipeline.ParseResults(f) // must not panic
		r := pipeline.NewResultRecords(0)
		r.Add(device, user, platform, outcome, token, reason)
		r.Add(device+1, user-1, platform, outcome, token, reason)
		f[pipeline.FieldEvents] = string(r.Bytes())
		got, err := pipeline.ParseResults(f)
		switch outcome {
		case pipeline.OutcomeSent, pipeline.OutcomeFailed, pipeline.OutcomeInvalid:
		default:
			if err == nil {
				t.Fatalf("outcome %q read back", outcome)
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 {
			t.Fatalf("%d events, want 2", len(got))
		}
		for i, e := range got {
			if e.ID != pipeline.ResultID("c", "", device+int64(i), outcome) || e.UserID != user-int64(i) || e.Platform != platform ||
				e.Outcome != outcome || e.Token != token || e.Reason != reason {
				t.Fatalf("event %d: %+v, want device %d user %d %q %q %q %q", i, e, device+int64(i), user-int64(i), platform, outcome, token, reason)
			}
		}
	})
}

// BenchmarkResultRecords is deliver's cost of a mark call's records: 1,000
// devices, APNs and FCM tokens alternately, in a buffer of the size deliver
// gives it (ResultRecordMax).
func BenchmarkResultRecords(b *testing.B) {
	tokens := []string{strings.Repeat("0123456789abcdef", 4), "00000000002dc6c0:APA91b" + strings.Repeat("Zm9vYmFyX2Jhei1xdXV4", 3) + "abcdefghijklmnopq"}
	size := 500 * (pipeline.ResultRecordMax(3, len(tokens[0]), 0) + pipeline.ResultRecordMax(7, len(tokens[1]), 0))
	for b.Loop() {
		r := pipeline.NewResultRecords(size)
		for i := range 1000 {
			r.Add(int64(i)+1_000_000, int64(i/2)+800_000, "ios", pipeline.OutcomeSent, tokens[i&1], "")
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*1000), "ns/device")
}
