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
	const status = "delivered 5 times (max 5); last error: POST http://127.0.0.1:9/…: 3 attempts, last: answered 500 Internal Server Error"
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
	summary, list, ok := strings.Cut(out.String(), "\n\nID ")
	if !ok {
		t.Fatalf("no summary before the list:\n%s", out.String())
	}
	rows := strings.Split(strings.TrimSpace(summary), "\n")[2:]
	if len(rows) != 2 || !strings.HasPrefix(rows[0], "4 ") || !strings.Contains(rows[0], `; said: {"error":"database is down"`) {
		t.Errorf("summary rows %q: want the 4 letters of the 500 as one row with what the receiver said", rows)
	}
	for _, l := range strings.Split(list, "\n") {
		if strings.Contains(l, "req-") && !strings.Contains(l, "answered 500 Internal Server Error; said: ") {
			t.Errorf("row %q lost the receiver's status", l)
		}
	}
}
