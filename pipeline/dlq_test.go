package pipeline_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/redis/rueidis"
	"github.com/rs/zerolog"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
)

// opsDeadLetters runs a real deliver runner whose handler dead-letters every
// entry of campaign "bad", over entries n=0..count-1 spread over the
// partitions (every third is "bad"), and returns once they are all handled.
func opsDeadLetters(t *testing.T, c rueidis.Client, keys pipeline.Keys, count int) (bad map[string]int) {
	t.Helper()
	ctx := t.Context()
	bad = map[string]int{} // n → partition
	for i := range count {
		p, camp := i%keys.Partitions, "good"
		if i%3 == 0 {
			camp = "bad"
			bad[strconv.Itoa(i)] = p
		}
		if _, err := pipeline.Emit(ctx, c, pipeline.Message{Stream: keys.Stream(pipeline.StreamDeliver, p),
			Fields: []string{pipeline.FieldCampaign, camp, "n", strconv.Itoa(i), pipeline.FieldUsers, pipeline.EncodeIDs([]int64{int64(i)})}}); err != nil {
			t.Fatal(err)
		}
	}
	h := pipeline.HandlerFunc(func(_ context.Context, b *pipeline.Batch) error {
		for i, e := range b.Entries {
			if e.Fields[pipeline.FieldCampaign] == "bad" {
				b.DeadLetter(i, fmt.Errorf("payload rejected for n=%s", e.Fields["n"]))
			}
		}
		return nil
	})
	// BatchSize 1: each entry a batch of its own (a batch mixing dead
	// letters with entries to ack is TestDeadLetterBesideGoodEntries's).
	r := pipeline.NewRunner(c, keys, pipeline.Options{Stage: "deliver", Stream: pipeline.StreamDeliver,
		Consumer: "d1", Block: 50 * time.Millisecond, BatchSize: 1}, h, zerolog.Nop(), nil)
	rctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { r.Run(rctx) })
	defer wg.Wait()
	defer cancel()
	// Every bad entry in the DLQ, then nothing outstanding (the group's lag
	// alone can read 0 before the runner has read anything).
	dlq := pipeline.NewDLQ(c, keys)
	opsPoll(t, 10*time.Second, "every entry acked", func() bool {
		letters, lerr := dlq.Len(ctx)
		n, err := pipeline.Outstanding(ctx, c, keys.Streams(pipeline.StreamDeliver), "deliver")
		return lerr == nil && letters >= int64(len(bad)) && err == nil && n == 0 && r.Ready()
	})
	return bad
}

func opsPoll(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestDLQListShowFilter(t *testing.T) {
	c, keys := opsRedis(t)
	ctx := t.Context()
	bad := opsDeadLetters(t, c, keys, 60)
	q := pipeline.NewDLQ(c, keys)

	all, err := q.List(ctx, pipeline.DLQFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := q.Len(ctx); len(all) != len(bad) || n != int64(len(bad)) {
		t.Fatalf("list has %d, len %d, want %d dead letters", len(all), n, len(bad))
	}
	for i, d := range all {
		if i > 0 && !opsIDLess(all[i-1].ID, d.ID) {
			t.Errorf("list not oldest first: %s before %s", all[i-1].ID, d.ID)
		}
		p, ok := bad[d.Fields["n"]]
		if !ok || d.Campaign() != "bad" {
			t.Fatalf("dead letter of a good entry: %+v", d)
		}
		if d.Name != pipeline.StreamDeliver || d.Partition != p || d.Stream != keys.Stream(pipeline.StreamDeliver, p) {
			t.Errorf("n=%s: origin %s (%s/%d), want partition %d", d.Fields["n"], d.Stream, d.Name, d.Partition, p)
		}
		if d.Error != "payload rejected for n="+d.Fields["n"] || d.Group != "deliver" || d.Consumer != "d1" || d.OrigID == "" || d.Malformed != "" {
			t.Errorf("n=%s: reason/origin not kept: %+v", d.Fields["n"], d)
		}
		if ids, err := pipeline.DecodeIDs(d.Fields[pipeline.FieldUsers]); err != nil || len(ids) != 1 || strconv.FormatInt(ids[0], 10) != d.Fields["n"] {
			t.Errorf("n=%s: binary field u did not survive: %v %v", d.Fields["n"], ids, err)
		}
	}
	first2, err := q.List(ctx, pipeline.DLQFilter{Limit: 2})
	if err != nil || len(first2) != 2 || first2[0].ID != all[0].ID || first2[1].ID != all[1].ID {
		t.Fatalf("limit 2 = %v, %v", first2, err)
	}
	if got, err := q.List(ctx, pipeline.DLQFilter{Campaign: "good"}); err != nil || len(got) != 0 {
		t.Errorf("campaign filter good: %d (err %v)", len(got), err)
	}
	if got, err := q.List(ctx, pipeline.DLQFilter{Stream: pipeline.StreamDedupe}); err != nil || len(got) != 0 {
		t.Errorf("stream filter dedupe: %d (err %v)", len(got), err)
	}
	one, err := q.Show(ctx, all[3].ID)
	if err != nil || one.ID != all[3].ID || !maps.Equal(one.Fields, all[3].Fields) {
		t.Fatalf("show %s = %+v, %v", all[3].ID, one, err)
	}
	if _, err := q.Show(ctx, "1-1"); !errors.Is(err, pipeline.ErrNoDeadLetter) {
		t.Fatalf("show of a missing id: %v", err)
	}
}

func TestDLQRetryGoesBackToItsPartitionAndDropsTheLetter(t *testing.T) {
	c, keys := opsRedis(t)
	ctx := t.Context()
	bad := opsDeadLetters(t, c, keys, 40)
	q := pipeline.NewDLQ(c, keys)
	letters, _ := q.List(ctx, pipeline.DLQFilter{})
	tail := map[int]string{}
	for p := range keys.Partitions {
		xs := opsRange(t, c, keys.Stream(pipeline.StreamDeliver, p), "-")
		tail[p] = xs[len(xs)-1].ID
	}

	// Retry two by id, then the rest by filter.
	res, err := q.Retry(ctx, pipeline.DLQFilter{IDs: []string{letters[0].ID, letters[5].ID, "9-9"}})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.Done, []string{letters[0].ID, letters[5].ID}) || len(res.NewIDs) != 2 || res.Failed["9-9"] == "" {
		t.Fatalf("retry by id: %+v", res)
	}
	if n, _ := q.Len(ctx); n != int64(len(bad)-2) {
		t.Fatalf("dlq has %d after retrying 2 of %d", n, len(bad))
	}
	res, err = q.Retry(ctx, pipeline.DLQFilter{Campaign: "bad"})
	if err != nil || len(res.Done) != len(bad)-2 || len(res.Failed) != 0 {
		t.Fatalf("retry by filter: %d done, %v, %v", len(res.Done), res.Failed, err)
	}
	if n, err := q.Len(ctx); err != nil || n != 0 {
		t.Fatalf("dlq has %d after retrying all (err %v)", n, err)
	}
	got := map[string]int{}
	for p := range keys.Partitions {
		for _, x := range opsRange(t, c, keys.Stream(pipeline.StreamDeliver, p), "("+tail[p]) {
			n := x.FieldValues["n"]
			got[n]++
			if want, ok := bad[n]; !ok || want != p {
				t.Errorf("n=%s re-injected into partition %d, want %d (bad=%v)", n, p, want, ok)
			}
			if ids, err := pipeline.DecodeIDs(x.FieldValues[pipeline.FieldUsers]); err != nil || strconv.FormatInt(ids[0], 10) != n {
				t.Errorf("n=%s: fields changed on retry: %v", n, x.FieldValues)
			}
		}
	}
	for n := range bad {
		if got[n] != 1 {
			t.Errorf("n=%s re-injected %d times, want 1", n, got[n])
		}
	}
}

// TestDLQRetriesAtOnceReinjectEachLetterOnce: two `pushpipe dlq retry` run
// at once (two operators, a retry typed again while the first runs) both
// list the same letters; each letter must still go back once. Two entries of
// one deliver letter read together both pass deliver's sent marks (a
// raw-token message's entry has no dedupe before it), and a webhook batch
// would be POSTed twice.
func TestDLQRetriesAtOnceReinjectEachLetterOnce(t *testing.T) {
	c, keys := opsRedis(t)
	ctx := t.Context()
	bad := opsDeadLetters(t, c, keys, 300)
	q := pipeline.NewDLQ(c, keys)
	tail := map[int]string{}
	for p := range keys.Partitions {
		xs := opsRange(t, c, keys.Stream(pipeline.StreamDeliver, p), "-")
		tail[p] = xs[len(xs)-1].ID
	}
	const retries = 2
	results := make([]pipeline.DLQResult, retries)
	errs := make([]error, retries)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range retries {
		wg.Go(func() {
			<-start
			results[i], errs[i] = q.Retry(ctx, pipeline.DLQFilter{})
		})
	}
	close(start)
	wg.Wait()
	done := map[string]int{}
	for i, res := range results {
		if errs[i] != nil || len(res.Failed) != 0 {
			t.Fatalf("retry %d: %v, failed %v", i, errs[i], res.Failed)
		}
		for _, id := range res.Done {
			done[id]++
		}
	}
	if n, err := q.Len(ctx); err != nil || n != 0 {
		t.Errorf("dlq has %d after both retries (err %v)", n, err)
	}
	got := map[string]int{}
	for p := range keys.Partitions {
		for _, x := range opsRange(t, c, keys.Stream(pipeline.StreamDeliver, p), "("+tail[p]) {
			got[x.FieldValues["n"]]++
		}
	}
	twice := 0
	for n := range bad {
		switch {
		case got[n] == 0:
			t.Errorf("n=%s never re-injected", n)
		case got[n] > 1:
			twice++
		}
	}
	if twice > 0 || len(done) != len(bad) {
		t.Errorf("%d of %d letters re-injected more than once; %d retried (by %d and %d)", twice, len(bad), len(done), len(results[0].Done), len(results[1].Done))
	}
}

func TestDLQDropAndMalformedLetters(t *testing.T) {
	c, keys := opsRedis(t)
	ctx := t.Context()
	bad := opsDeadLetters(t, c, keys, 30)
	q := pipeline.NewDLQ(c, keys)
	// A dead letter pointing outside the deployment must never be retried.
	evil := "not-ours:{p0}:deliver"
	for _, origin := range []string{evil, keys.Stream("nope", 0), keys.Stream(pipeline.StreamDeliver, 99)} {
		if _, err := pipeline.Emit(ctx, c, pipeline.Message{Stream: keys.DLQ(), Fields: []string{
			pipeline.DLQStream, origin, pipeline.DLQID, "1-0", pipeline.DLQFields, `{"campaign":"bad","n":"x"}`}}); err != nil {
			t.Fatal(err)
		}
	}
	res, err := q.Retry(ctx, pipeline.DLQFilter{Campaign: "bad"})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Done) != len(bad) || len(res.Failed) != 3 {
		t.Fatalf("retry: %d done, failed %v; want %d done, 3 failed", len(res.Done), res.Failed, len(bad))
	}
	for _, k := range []string{evil, keys.Stream("results", 0), keys.Stream(pipeline.StreamDeliver, 99)} {
		if n, err := c.Do(ctx, c.B().Exists().Key(k).Build()).AsInt64(); err != nil || n != 0 {
			t.Errorf("retry wrote to %s (err %v)", k, err)
		}
	}
	left, _ := q.List(ctx, pipeline.DLQFilter{})
	if len(left) != 3 {
		t.Fatalf("%d letters left, want the 3 malformed", len(left))
	}
	res, err = q.Drop(ctx, pipeline.DLQFilter{IDs: []string{left[1].ID}})
	if err != nil || !slices.Equal(res.Done, []string{left[1].ID}) {
		t.Fatalf("drop: %+v %v", res, err)
	}
	after, _ := q.List(ctx, pipeline.DLQFilter{})
	if len(after) != 2 || after[0].ID != left[0].ID || after[1].ID != left[2].ID {
		t.Fatalf("after drop: %v", after)
	}
	if res, err := q.Drop(ctx, pipeline.DLQFilter{}); err != nil || len(res.Done) != 2 {
		t.Fatalf("drop all: %+v %v", res, err)
	}
	if n, err := q.Len(ctx); err != nil || n != 0 {
		t.Fatalf("dlq has %d after dropping all (err %v)", n, err)
	}
}

func opsIDLess(a, b string) bool {
	am, as := opsSplitID(a)
	bm, bs := opsSplitID(b)
	return am < bm || (am == bm && as < bs)
}

func opsSplitID(id string) (uint64, uint64) {
	var ms, seq uint64
	fmt.Sscanf(id, "%d-%d", &ms, &seq)
	return ms, seq
}

func TestDLQFieldsKeepBinaryValues(t *testing.T) {
	u := pipeline.EncodeIDs([]int64{1_000_000, 1_000_173, 5_000_000_000}) // varint bytes ≥ 0x80: not UTF-8
	if utf8.ValidString(u) {
		t.Fatal("test ids encode to valid UTF-8; pick larger ones")
	}
	// Names too: one not UTF-8 (an entry from another producer), one
	// holding U+FFFD, and one that looks like an encoded name.
	give := map[string]string{pipeline.FieldCampaign: "c-ü", pipeline.FieldUsers: u, "empty": "",
		"\xffname\x80": "binary name", "n\uFFFD": "name with U+FFFD", "\uFFFD/w==": "looks encoded"}
	got, err := pipeline.DecodeDLQFields(pipeline.EncodeDLQFields(give))
	if err != nil || !maps.Equal(got, give) {
		t.Fatalf("round trip: %q, %v; want %q", got, err, give)
	}
	// Dead letters of plain JSON strings (the old encoding) still decode.
	if got, err := pipeline.DecodeDLQFields(`{"campaign":"c","n":"7"}`); err != nil || got["n"] != "7" {
		t.Fatalf("plain JSON: %v, %v", got, err)
	}

	// A letter whose u went through json.Marshal lost its bytes: it must be
	// reported, never retried with other users than it had.
	c, keys := opsRedis(t)
	ctx := t.Context()
	mangled, _ := json.Marshal(map[string]string{pipeline.FieldCampaign: "c", pipeline.FieldUsers: u})
	good := pipeline.EncodeDLQFields(map[string]string{pipeline.FieldCampaign: "c", pipeline.FieldUsers: u})
	for _, f := range []string{string(mangled), good} {
		if _, err := pipeline.Emit(ctx, c, pipeline.Message{Stream: keys.DLQ(), Fields: []string{
			pipeline.DLQStream, keys.Stream(pipeline.StreamDeliver, 2), pipeline.DLQID, "1-0", pipeline.DLQFields, f}}); err != nil {
			t.Fatal(err)
		}
	}
	res, err := pipeline.NewDLQ(c, keys).Retry(ctx, pipeline.DLQFilter{})
	if err != nil || len(res.Done) != 1 || len(res.Failed) != 1 {
		t.Fatalf("retry: %+v, %v; want 1 done, 1 failed", res, err)
	}
	xs := opsRange(t, c, keys.Stream(pipeline.StreamDeliver, 2), "-")
	if len(xs) != 1 || xs[0].FieldValues[pipeline.FieldUsers] != u {
		t.Fatalf("re-injected %+v, want the exact binary users field", xs)
	}
}

// TestDeadLetterKeepsTheReasonAcrossConsumers: the consumer that finds an
// entry delivered too often is often not the one that saw it fail (another
// process claimed it, or the process restarted): the dead letter still
// says why the handler refused it. The reason lived in the failing
// process's memory only, so such dead letters said "delivered 4 times" and
// nothing more.
func TestDeadLetterKeepsTheReasonAcrossConsumers(t *testing.T) {
	tests := []struct {
		name string
		give string // the consumer that dead-letters, after "a" failed
	}{
		{name: "another consumer", give: "b"},
		{name: "the same consumer restarted", give: "a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := client(t, env.Redis.Addr)
			keys := testKeys()
			stream := keys.Stream("src", 2)
			if _, err := pipeline.Emit(context.Background(), c, pipeline.Message{Stream: stream, Fields: []string{"n", "poison"}}); err != nil {
				t.Fatal(err)
			}
			const maxDeliveries = 3
			var attempts atomic.Int64
			failed := make(chan struct{})
			h := pipeline.HandlerFunc(func(ctx context.Context, b *pipeline.Batch) error {
				for i := range b.Entries {
					b.Fail(i, errors.New("cannot parse poison"))
					if attempts.Add(1) == maxDeliveries {
						close(failed)
					}
				}
				return nil
			})
			run := func(ctx context.Context, consumer string) chan error {
				r := pipeline.NewRunner(c, keys, pipeline.Options{Stage: "src", Stream: "src", Consumer: consumer, Partitions: []int{2},
					ClaimIdle: 500 * time.Millisecond, MaxDeliveries: maxDeliveries, Block: 100 * time.Millisecond}, h, zerolog.Nop(), nil)
				done := make(chan error, 1)
				go func() { done <- r.Run(ctx) }()
				return done
			}
			// "a" handles the entry MaxDeliveries times, then goes away
			// before its next claim would dead-letter it.
			ctx, stop := context.WithCancel(context.Background())
			done := run(ctx, "a")
			select {
			case <-failed:
			case <-time.After(20 * time.Second):
				t.Fatal("the poison entry was not handled MaxDeliveries times")
			}
			stop()
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			ctx, stop = context.WithCancel(context.Background())
			defer stop()
			done = run(ctx, tt.give)
			var dlq []rueidis.XRangeEntry
			pipelinetest.Eventually(t, 20*time.Second, "a dead letter", func() bool {
				dlq, _ = c.Do(ctx, c.B().Xrange().Key(keys.DLQ()).Start("-").End("+").Build()).AsXRange()
				return len(dlq) > 0
			})
			stop()
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			d := dlq[0].FieldValues
			if got := attempts.Load(); got != maxDeliveries || d[pipeline.DLQDeliveries] != "4" {
				t.Fatalf("handled %d times, dead-lettered after %s deliveries: want %d and 4", got, d[pipeline.DLQDeliveries], maxDeliveries)
			}
			// Said so that the limit reads kept: the handler had its 3
			// deliveries, and the claim of the 4th dead-lettered it. It
			// was "delivered 4 times (max 3)", read as one too many.
			want := "claimed for delivery 4, past --max-deliveries 3; last error: cannot parse poison"
			if d[pipeline.DLQError] != want {
				t.Fatalf("dead letter reason %q, want %q (the handler's error after the deliveries it had)", d[pipeline.DLQError], want)
			}
		})
	}
}

// TestExhaustedEntriesNeverReachTheHandler: entries claimed from a dead
// consumer past MaxDeliveries are dead-lettered, however many of the
// claimer's own pending entries lie between them. Their delivery counts
// come from one XPENDING over the claimed span, filtered to the claimer,
// whose COUNT stopped at four per claimed entry: here the claimer holds 298
// fresh entries between the two claimed ones, and the second one's count
// was not in the reply, so it was handed to the handler an eleventh time.
func TestExhaustedEntriesNeverReachTheHandler(t *testing.T) {
	ctx := context.Background()
	c := client(t, env.Redis.Addr)
	keys := testKeys()
	stream := keys.Stream("src", 0)
	const n, maxDeliveries = 300, 3
	msgs := make([]pipeline.Message, n)
	for i := range msgs {
		msgs[i] = pipeline.Message{Stream: stream, Fields: []string{"n", strconv.Itoa(i)}}
	}
	ids, err := pipeline.Emit(ctx, c, msgs...)
	if err != nil {
		t.Fatal(err)
	}
	if err := pipeline.CreateGroup(ctx, c, stream, "src"); err != nil {
		t.Fatal(err)
	}
	// Every entry is pending for "live", just read; the first and the last
	// then go to "dead", long idle and delivered 10 times.
	if err := c.Do(ctx, c.B().Xreadgroup().Group("src", "live").Count(n).Streams().Key(stream).Id(">").Build()).Error(); err != nil {
		t.Fatal(err)
	}
	poison := []string{ids[0], ids[n-1]}
	for _, id := range poison {
		if err := c.Do(ctx, c.B().Xclaim().Key(stream).Group("src").Consumer("dead").MinIdleTime("0").Id(id).
			Idle(60_000).Retrycount(10).Justid().Build()).Error(); err != nil {
			t.Fatal(err)
		}
	}
	var handled sync.Map
	h := pipeline.HandlerFunc(func(ctx context.Context, b *pipeline.Batch) error {
		for _, e := range b.Entries {
			handled.Store(e.ID, true)
		}
		return nil
	})
	// The first claim (after ClaimIdle/4) takes the two poison entries
	// only: "live"'s own stay fresh for ClaimIdle.
	r := pipeline.NewRunner(c, keys, pipeline.Options{Stage: "src", Stream: "src", Consumer: "live", Partitions: []int{0},
		ClaimIdle: 4 * time.Second, MaxDeliveries: maxDeliveries, Block: 100 * time.Millisecond}, h, zerolog.Nop(), nil)
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- r.Run(rctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	var dlq []rueidis.XRangeEntry
	pipelinetest.Eventually(t, 20*time.Second, "both poison entries dead-lettered, or one handled", func() bool {
		for _, id := range poison {
			if _, ok := handled.Load(id); ok {
				return true
			}
		}
		dlq, _ = c.Do(ctx, c.B().Xrange().Key(keys.DLQ()).Start("-").End("+").Build()).AsXRange()
		return len(dlq) == len(poison)
	})
	for _, id := range poison {
		if _, ok := handled.Load(id); ok {
			t.Fatalf("entry %s, delivered 11 times (max %d), reached the handler", id, maxDeliveries)
		}
	}
	for _, d := range dlq {
		if d.FieldValues[pipeline.DLQDeliveries] != "11" || !slices.Contains(poison, d.FieldValues[pipeline.DLQID]) {
			t.Errorf("dead letter %v, want one of the poison entries after 11 deliveries", d.FieldValues)
		}
	}
}

// TestClaimedEntryIsNotDeadLetteredTwice: a consumer whose batch another
// consumer claimed while it was handled writes none of the batch's dead
// letters: the new owner handles the entries, and dead-letters the bad one
// itself. The dead letters were written (and the entries acked under the
// new owner) before any check of ownership, so each claim race left a
// second dead letter of the same entry.
func TestClaimedEntryIsNotDeadLetteredTwice(t *testing.T) {
	ctx := context.Background()
	c := client(t, env.Redis.Addr)
	keys := testKeys()
	stream := keys.Stream("src", 0)
	if _, err := pipeline.Emit(ctx, c,
		pipeline.Message{Stream: stream, Fields: []string{"n", "bad"}},
		pipeline.Message{Stream: stream, Fields: []string{"n", "1"}}); err != nil {
		t.Fatal(err)
	}
	entered, claimed := make(chan []string, 1), make(chan struct{})
	h := pipeline.HandlerFunc(func(ctx context.Context, b *pipeline.Batch) error {
		ids := make([]string, len(b.Entries))
		for i, e := range b.Entries {
			ids[i] = e.ID
		}
		entered <- ids
		<-claimed // a slow handler that does not watch b.Lost
		for i, e := range b.Entries {
			if e.Fields["n"] == "bad" {
				b.DeadLetter(i, errors.New("bad entry"))
			}
		}
		return nil
	})
	r := pipeline.NewRunner(c, keys, pipeline.Options{Stage: "src", Stream: "src", Consumer: "a", Partitions: []int{0},
		ClaimIdle: 30 * time.Second, Block: 100 * time.Millisecond}, h, zerolog.Nop(), nil)
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- r.Run(rctx) }()
	var ids []string
	select {
	case ids = <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the batch never reached the handler")
	}
	if len(ids) != 2 {
		t.Fatalf("batch of %d entries, want both", len(ids))
	}
	// "b" takes the batch over, as its XAUTOCLAIM would.
	if err := c.Do(ctx, c.B().Xclaim().Key(stream).Group("src").Consumer("b").MinIdleTime("0").Id(ids...).Justid().Build()).Error(); err != nil {
		t.Fatal(err)
	}
	close(claimed)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n, err := c.Do(ctx, c.B().Xlen().Key(keys.DLQ()).Build()).AsInt64(); err != nil || n != 0 {
		t.Fatalf("%d dead letters (%v) from the consumer that lost the batch, want none", n, err)
	}
	rows, err := c.Do(ctx, c.B().Xpending().Key(stream).Group("src").Start("-").End("+").Count(10).Build()).ToArray()
	if err != nil || len(rows) != 2 {
		t.Fatalf("%d entries pending (%v), want both, for their new owner", len(rows), err)
	}
}

// TestErrorNotesGoOnceTheEntryIsDone: the note of why an entry failed
// (kept in Redis for whoever dead-letters it) is dropped once the entry
// succeeds, whichever consumer it succeeds on. Only the consumer that
// wrote a note dropped it, so an entry that failed on one process and
// went through on another left its note behind for good, while failures
// kept the hash alive.
func TestErrorNotesGoOnceTheEntryIsDone(t *testing.T) {
	ctx := context.Background()
	c := client(t, env.Redis.Addr)
	keys := testKeys()
	stream := keys.Stream("src", 0)
	if _, err := pipeline.Emit(ctx, c, pipeline.Message{Stream: stream, Fields: []string{"n", "1"}}); err != nil {
		t.Fatal(err)
	}
	notes := stream + ":errors" // the runner's hash of notes beside the stream
	fail := func(ctx context.Context, b *pipeline.Batch) error {
		for i := range b.Entries {
			b.Fail(i, errors.New("not yet"))
		}
		return nil
	}
	run := func(ctx context.Context, consumer string, h pipeline.HandlerFunc) chan error {
		r := pipeline.NewRunner(c, keys, pipeline.Options{Stage: "src", Stream: "src", Consumer: consumer, Partitions: []int{0},
			ClaimIdle: 300 * time.Millisecond, Block: 100 * time.Millisecond}, h, zerolog.Nop(), nil)
		done := make(chan error, 1)
		go func() { done <- r.Run(ctx) }()
		return done
	}
	actx, stopA := context.WithCancel(ctx)
	done := run(actx, "a", fail)
	pipelinetest.Eventually(t, 10*time.Second, "a's note", func() bool {
		n, err := c.Do(ctx, c.B().Hlen().Key(notes).Build()).AsInt64()
		return err == nil && n == 1
	})
	stopA()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	bctx, stopB := context.WithCancel(ctx)
	defer stopB()
	done = run(bctx, "b", func(context.Context, *pipeline.Batch) error { return nil })
	pipelinetest.Eventually(t, 10*time.Second, "the entry done on b", func() bool {
		n, err := pipeline.Outstanding(ctx, c, []string{stream}, "src")
		return err == nil && n == 0
	})
	stopB()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n, err := c.Do(ctx, c.B().Hlen().Key(notes).Build()).AsInt64(); err != nil || n != 0 {
		t.Fatalf("%d notes (%v) left for an entry done since, want none", n, err)
	}
}

// An id that is not a stream id names no dead letter: Show says so as for a
// missing one, and Retry and Drop leave it in place, saying it is no id (it
// was "not in the dlq"), and go on with the others.
func TestDLQMalformedIDIsNoDeadLetter(t *testing.T) {
	c, keys := opsRedis(t)
	ctx := t.Context()
	opsDeadLetters(t, c, keys, 6) // every third entry: two dead letters
	q := pipeline.NewDLQ(c, keys)
	all, err := q.List(ctx, pipeline.DLQFilter{})
	if err != nil || len(all) != 2 {
		t.Fatalf("list: %d, %v", len(all), err)
	}
	tests := []struct {
		name string
		op   func(context.Context, pipeline.DLQFilter) (pipeline.DLQResult, error)
	}{
		{"retry", q.Retry},
		{"drop", q.Drop},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := q.Show(ctx, "nosuch"); !errors.Is(err, pipeline.ErrNoDeadLetter) || !strings.Contains(err.Error(), "1700000000000-0") {
				t.Fatalf("show nosuch: %v, want ErrNoDeadLetter with an example id", err)
			}
			res, err := tt.op(ctx, pipeline.DLQFilter{IDs: []string{"nosuch", all[i].ID}})
			if err != nil {
				t.Fatalf("%s: %v", tt.name, err)
			}
			if !slices.Equal(res.Done, []string{all[i].ID}) || res.Failed["nosuch"] != "not an id such as 1700000000000-0 (the ID column of dlq list)" {
				t.Errorf("%s: done %v, failed %v; want %s done and nosuch left in place", tt.name, res.Done, res.Failed, all[i].ID)
			}
		})
	}
}

// A stream two groups read (two webhook receivers on results): an entry one
// group dead-lettered and the other handled goes back, on retry, to the
// group that gave up on it alone. The other acks it unhandled: it would
// have been handled twice there.
func TestDLQRetryGoesBackToItsGroupOnly(t *testing.T) {
	c, keys := opsRedis(t)
	ctx := t.Context()
	var reject atomic.Bool
	reject.Store(true)
	var mu sync.Mutex
	handled := map[string]map[string]int{"a": {}, "b": {}} // group → n → times
	runner := func(group string) {
		h := pipeline.HandlerFunc(func(_ context.Context, b *pipeline.Batch) error {
			mu.Lock()
			defer mu.Unlock()
			for i, e := range b.Entries {
				if group == "a" && e.Fields["n"] == "2" && reject.Load() {
					b.DeadLetter(i, errors.New("receiver a is down"))
					continue
				}
				handled[group][e.Fields["n"]]++
			}
			return nil
		})
		r := pipeline.NewRunner(c, keys, pipeline.Options{Stage: group, Stream: pipeline.StreamResults, Consumer: group + "-1", Partitions: []int{0},
			Block: 50 * time.Millisecond, BatchSize: 1}, h, zerolog.Nop(), nil)
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- r.Run(rctx) }()
		t.Cleanup(func() {
			cancel()
			<-done
		})
		pipelinetest.Eventually(t, 10*time.Second, group+" ready", r.Ready)
	}
	runner("a")
	runner("b")
	for n := range 3 {
		if _, err := pipeline.Emit(ctx, c, pipeline.Message{Stream: keys.Stream(pipeline.StreamResults, 0), Fields: []string{"n", strconv.Itoa(n + 1)}}); err != nil {
			t.Fatal(err)
		}
	}
	count := func(group, n string) int { mu.Lock(); defer mu.Unlock(); return handled[group][n] }
	q := pipeline.NewDLQ(c, keys)
	pipelinetest.Eventually(t, 10*time.Second, "b handled 3, a 2 and a dead letter", func() bool {
		dead, err := q.Len(ctx)
		return err == nil && dead == 1 && count("b", "1")+count("b", "2")+count("b", "3") == 3 && count("a", "1")+count("a", "3") == 2
	})
	reject.Store(false)
	if res, err := q.Retry(ctx, pipeline.DLQFilter{}); err != nil || len(res.Done) != 1 {
		t.Fatalf("retry: %+v, %v", res, err)
	}
	pipelinetest.Eventually(t, 10*time.Second, "a handled the retried entry", func() bool { return count("a", "2") == 1 })
	pipelinetest.Eventually(t, 10*time.Second, "b acked the retried entry", func() bool {
		n, err := pipeline.Outstanding(ctx, c, []string{keys.Stream(pipeline.StreamResults, 0)}, "b")
		return err == nil && n == 0
	})
	if n := count("b", "2"); n != 1 {
		t.Errorf("b handled entry 2 %d times, want once: the retry was a's", n)
	}
}

// A webhook receiver retired for good: its group kept every result event in
// Redis (streams are trimmed below what every group has read) until someone
// destroyed it by hand on each partition. RetireGroup removes it from every
// partition, refuses while its process runs, refuses a stage's own group,
// and names the groups when given one that does not exist; a dead letter of
// the retired group is then left in place by a retry, where it went back to
// the stream and every group left acked it unsent.
func TestRetireGroup(t *testing.T) {
	c, keys := opsRedis(t)
	ctx := t.Context()
	var reject atomic.Bool
	reject.Store(true)
	start := func(group string) (stop func()) {
		h := pipeline.HandlerFunc(func(_ context.Context, b *pipeline.Batch) error {
			for i, e := range b.Entries {
				if group == "old" && reject.Load() {
					b.DeadLetter(i, errors.New("receiver old is down"))
				}
				if group == "new" && e.Fields["n"] == "3" {
					b.DeadLetter(i, errors.New("receiver new refused it"))
				}
			}
			return nil
		})
		r := pipeline.NewRunner(c, keys, pipeline.Options{Stage: group, Stream: pipeline.StreamResults, Consumer: group + "-1",
			Block: 50 * time.Millisecond, BatchSize: 1, AliveEvery: 100 * time.Millisecond}, h, zerolog.Nop(), nil)
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- r.Run(rctx) }()
		pipelinetest.Eventually(t, 10*time.Second, group+" ready", r.Ready)
		var once sync.Once
		stop = func() { once.Do(func() { cancel(); <-done }) }
		t.Cleanup(stop)
		return stop
	}
	stopOld := start("old")
	start("new")
	if _, err := pipeline.Emit(ctx, c, pipeline.Message{Stream: keys.Stream(pipeline.StreamResults, 1), Fields: []string{"n", "1"}}); err != nil {
		t.Fatal(err)
	}
	q := pipeline.NewDLQ(c, keys)
	pipelinetest.Eventually(t, 10*time.Second, "old dead-lettered the entry", func() bool { n, err := q.Len(ctx); return err == nil && n == 1 })

	if _, err := pipeline.RetireGroup(ctx, c, keys, pipeline.StreamResults, "old", false); !errors.Is(err, pipeline.ErrGroupRunning) {
		t.Fatalf("retire a running group: %v, want ErrGroupRunning", err)
	}
	stopOld()
	if _, err := pipeline.Emit(ctx, c, pipeline.Message{Stream: keys.Stream(pipeline.StreamResults, 2), Fields: []string{"n", "2"}}); err != nil {
		t.Fatal(err)
	}
	r, err := pipeline.RetireGroup(ctx, c, keys, pipeline.StreamResults, "old", false)
	if err != nil || r.Partitions != keys.Partitions || r.Unread != 1 {
		t.Fatalf("retire old: %+v, %v; want every partition and the one entry it had not read", r, err)
	}
	groups, err := pipeline.StreamGroups(ctx, c, keys.Streams(pipeline.StreamResults))
	if err != nil {
		t.Fatal(err)
	}
	for i, gs := range groups {
		if len(gs) != 1 || gs[0].Name != "new" {
			t.Fatalf("partition %d's groups after the retire: %+v, want new alone", i, gs)
		}
	}
	if _, err := pipeline.RetireGroup(ctx, c, keys, pipeline.StreamResults, "old", false); err == nil || !strings.Contains(err.Error(), "its groups: new") {
		t.Errorf("retire a group that is gone: %v, want an error naming the stream's groups", err)
	}
	if _, err := pipeline.RetireGroup(ctx, c, keys, pipeline.StreamDeliver, "deliver", true); err == nil || !strings.Contains(err.Error(), "own group") {
		t.Errorf("retire deliver's own group: %v, want a refusal", err)
	}
	reject.Store(false)
	// A letter of the group still running, which the retired group's
	// cleanup must leave alone.
	if _, err := pipeline.Emit(ctx, c, pipeline.Message{Stream: keys.Stream(pipeline.StreamResults, 3), Fields: []string{"n", "3"}}); err != nil {
		t.Fatal(err)
	}
	pipelinetest.Eventually(t, 10*time.Second, "new dead-lettered its entry", func() bool { n, err := q.Len(ctx); return err == nil && n == 2 })
	res, err := q.Retry(ctx, pipeline.DLQFilter{Group: "old"})
	if err != nil || len(res.Done) != 0 || len(res.Failed) != 1 {
		t.Fatalf("retry of the retired group's dead letter: %+v, %v; want it left in place", res, err)
	}
	for _, why := range res.Failed {
		if !strings.Contains(why, "group old no longer reads") || !strings.HasSuffix(why, "pushpipe dlq drop --all --group old") {
			t.Errorf("left in place because %q, want the group named as retired and the command that drops its letters", why)
		}
	}
	// What the reason says to run drops the retired group's letters only.
	if res, err := q.Drop(ctx, pipeline.DLQFilter{Group: "old"}); err != nil || len(res.Done) != 1 {
		t.Fatalf("drop --group old: %+v, %v; want its one letter", res, err)
	}
	left, err := q.List(ctx, pipeline.DLQFilter{})
	if err != nil || len(left) != 1 || left[0].Group != "new" {
		t.Errorf("left after dropping old's letters: %+v, %v; want new's one letter", left, err)
	}
}
