package pipeline_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
)

// Dead letters are logged a line per batch or claim, with how many and
// why, not a line per entry: a webhook receiver answering 500 dead-lettered
// 3,560 entries in a minute and wrote 3,560 warnings.
func TestDeadLettersLogOneLinePerCall(t *testing.T) {
	c := client(t, env.Redis.Addr)
	keys := testKeys()
	const n = 300
	for range n / 100 {
		msgs := make([]pipeline.Message, 100)
		for i := range msgs {
			msgs[i] = pipeline.Message{Stream: keys.Stream("poison", 0), Fields: []string{"n", "x"}}
		}
		if _, err := pipeline.Emit(t.Context(), c, msgs...); err != nil {
			t.Fatal(err)
		}
	}
	h := pipeline.HandlerFunc(func(context.Context, *pipeline.Batch) error { return errors.New("receiver answered 500") })
	logs := runLogged(t, c, keys, pipeline.Options{Stage: "poison", Stream: "poison", Consumer: "p1", Partitions: []int{0},
		BatchSize: 100, MaxDeliveries: 1, ClaimIdle: 300 * time.Millisecond, RetryFor: 10 * time.Millisecond, Block: 100 * time.Millisecond}, h)
	q := pipeline.NewDLQ(c, keys)
	pipelinetest.Eventually(t, 30*time.Second, "every entry dead-lettered", func() bool {
		l, err := q.Len(t.Context())
		return err == nil && l == n
	})
	time.Sleep(100 * time.Millisecond)
	lines, entries := 0, 0
	for _, line := range strings.Split(logs.String(), "\n") {
		if !strings.Contains(line, "dead-lettered") {
			continue
		}
		lines++
		var v struct {
			Entries int    `json:"entries"`
			Reason  string `json:"reason"`
		}
		if err := json.Unmarshal([]byte(line), &v); err != nil {
			t.Fatal(err)
		}
		entries += v.Entries
		if !strings.Contains(v.Reason, "receiver answered 500") {
			t.Errorf("line without the reason: %s", line)
		}
	}
	if entries != n || lines > n/50 {
		t.Fatalf("%d dead-letter lines counting %d entries, want %d entries in at most %d lines", lines, entries, n, n/50)
	}
}
