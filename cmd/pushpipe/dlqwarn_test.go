package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
)

// `dlq retry` of a webhook's dead letters while its receiver still fails
// says they will be back: it printed "retried 2 dead letters" alone, read
// as settled, and the letters were in the DLQ again after
// --max-deliveries. A receiver that accepts again (another group) is not
// named.
func TestDLQRetryWarnsOfAFailingReceiver(t *testing.T) {
	bin := pipelinetest.Binary(t)
	redis, rdb := testRedis(t)
	keys := pipeline.NewKeys("dlqwarn", 4)
	letter := func(group string) {
		t.Helper()
		if err := rdb.Do(t.Context(), rdb.B().Xadd().Key(keys.DLQ()).Id("*").FieldValue().
			FieldValue(pipeline.DLQStream, keys.Stream(pipeline.StreamResults, 1)).FieldValue(pipeline.DLQID, "1-0").
			FieldValue(pipeline.DLQGroup, group).FieldValue(pipeline.DLQConsumer, "vm-1").FieldValue(pipeline.DLQDeliveries, "3").
			FieldValue(pipeline.DLQError, "claimed for delivery 3, past --max-deliveries 2; last error: answered 500").
			FieldValue(pipeline.DLQFields, pipeline.EncodeDLQFields(map[string]string{pipeline.FieldMessage: "m1"})).Build()).Error(); err != nil {
			t.Fatal(err)
		}
	}
	letter("webhook")
	letter("webhook")
	letter("analytics")
	// What a failing webhook process records (stages/webhook, recordFailure):
	// since (unix ms), failed deliveries, last error.
	since := strconv.FormatInt(time.Now().Add(-2*time.Minute).UnixMilli(), 10)
	if err := rdb.Do(t.Context(), rdb.B().Hset().Key(keys.ReceiverFailing()).FieldValue().
		FieldValue("webhook", since+",4,POST http://127.0.0.1:1/hook: answered 500 Internal Server Error").Build()).Error(); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "dlq", "retry", "--all")
	cmd.Env = append(os.Environ(), "PUSHPIPE_REDIS_ADDR="+redis.Addr, "PUSHPIPE_PREFIX=dlqwarn", "PUSHPIPE_PARTITIONS=4")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("dlq retry: %v\n%s", err, stderr.String())
	}
	if !strings.Contains(stdout.String(), "retried 3 dead letters") {
		t.Errorf("stdout %q, want the 3 letters retried", stdout.String())
	}
	want := "warning: 2 retried letters went back to webhook group webhook, whose receiver fails now (for 2m, last: POST http://127.0.0.1:1/hook: answered 500 Internal Server Error)"
	if !strings.Contains(stderr.String(), want) || strings.Contains(stderr.String(), "analytics") {
		t.Errorf("stderr %q, want it to say %q and nothing of group analytics", stderr.String(), want)
	}
}
