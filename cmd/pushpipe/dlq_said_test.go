package main

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/pushpipe/pushpipe/pipeline"
)

// A webhook letter's reason ends with what the receiver answered
// (pipeline.ReceiverSaid), and a receiver's body carries request ids: the
// summary counts one outage as one row, with the newest letter's words,
// and a row keeps the status ("answered 500") beside the start of the
// words, where the middle cut kept only the words.
func TestDLQListGroupsWhatReceiversSaid(t *testing.T) {
	rdb, keys := dlqRedis(t, "dlqsaid")
	const status = "claimed for delivery 6, past --max-deliveries 5; last error: POST http://127.0.0.1:9/…: 3 attempts, last: answered 500 Internal Server Error"
	var msgs []pipeline.Message
	for i := range 4 {
		said := fmt.Sprintf(`{"error":"database is down","request_id":"req-%d-%s"}`, i, strings.Repeat("z", 40))
		msgs = append(msgs, pipeline.Message{Stream: keys.Stream(pipeline.StreamResults, i%keys.Partitions),
			Fields: []string{"reason", status + pipeline.ReceiverSaid + said}})
	}
	msgs = append(msgs, pipeline.Message{Stream: keys.Stream(pipeline.StreamResults, 0), Fields: []string{"reason", "no credentials"}})
	q := deadLettered(t, rdb, keys, "webhook", pipeline.StreamResults, msgs...)
	var out bytes.Buffer
	if err := parse(t, "dlq", "list").DLQ.List.run(t.Context(), q, &out); err != nil {
		t.Fatal(err)
	}
	list, summary, ok := strings.Cut(out.String(), "\n\nDead letters by stage and reason:\n")
	if !ok {
		t.Fatalf("no summary after the list:\n%s", out.String())
	}
	summary, _, _ = strings.Cut(summary, "\n\n")
	rows := strings.Split(summary, "\n")[1:]
	if len(rows) != 2 || !strings.HasPrefix(rows[0], "4 ") || !strings.Contains(rows[0], `; said: {"error":"database is down"`) {
		t.Errorf("summary rows %q: want the 4 letters of the 500 as one row with what the receiver said", rows)
	}
	for _, l := range strings.Split(list, "\n") {
		if strings.Contains(l, "req-") && !strings.Contains(l, "answered 500 Internal Server Error; said: ") {
			t.Errorf("row %q lost the receiver's status", l)
		}
	}
}

// A 401's or 413's reason has the webhook's advice after the status, and
// dlq list kept the head's end: the walk's 401 read "…ost's clock is
// within its tolerance of the receiver's (t= is this host's time); said:
// bad signature", the status it is about gone. The status stays, and the
// advice follows it as far as the column allows.
func TestDLQReasonKeepsTheStatus(t *testing.T) {
	t.Parallel()
	const post = "claimed for delivery 3, past --max-deliveries 2; last error: POST http://127.0.0.1:18791/…(sha256:6fc2d051): 2 attempts, last: "
	tests := []struct {
		name string
		give string
		want []string // in the clipped reason, in this order
	}{
		{"401 with its advice", post + "answered 401 Unauthorized: the receiver refused the request; check that it verifies " +
			"Pushpipe-Signature with a line of --secret-file, the credentials it wants in the URL, and that this host's clock is " +
			"within its tolerance of the receiver's (t= is this host's time)" + pipeline.ReceiverSaid + "bad signature",
			[]string{"…answered 401 Unauthorized: the receiver refused", "…; said: bad signature"}},
		{"413 with its advice", post + "answered 413 Request Entity Too Large: the receiver takes smaller bodies; lower --batch " +
			"(events per POST)" + pipeline.ReceiverSaid + "body over 10 MiB",
			[]string{"…answered 413 Request Entity Too Large: the receiver takes smaller bodies", "; said: body over 10 MiB"}},
		{"500, the status last", post + "answered 500 Internal Server Error" + pipeline.ReceiverSaid +
			`{"error":"database is down","request_id":"` + strings.Repeat("z", 80) + `"}`,
			[]string{"…", "last: answered 500 Internal Server Error; said: {\"error\":\"database is down\""}},
		{"no status", strings.Repeat("connection refused, ", 8) + "dial tcp 127.0.0.1:18791" + pipeline.ReceiverSaid + "nothing",
			[]string{"…", "dial tcp 127.0.0.1:18791; said: nothing"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := clip(tt.give, 100)
			if n := len([]rune(got)); n > 100 {
				t.Errorf("clip: %d runes, want at most 100: %q", n, got)
			}
			rest := got
			for _, w := range tt.want {
				_, after, ok := strings.Cut(rest, w)
				if !ok {
					t.Errorf("clip: %q\nwant %q in it (after %q)", got, w, tt.want)
					break
				}
				rest = after
			}
		})
	}
}
