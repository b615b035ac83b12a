package webhook_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/stages/webhook"
)

// benchBatch and benchConcurrency are what both sides of the comparison
// get: events per POST and POSTs in flight (the stage's defaults).
const (
	benchBatch       = 500
	benchConcurrency = 4
)

// BenchmarkWebhookVsBare POSTs n result events (the sub-benchmarks' b.N, at
// least a million: a second or so of steady sending, where at 100,000 the
// runner's start, ~40 ms, was a quarter of the webhook's time) to a
// local receiver that only verifies signatures, twice in the same run: from
// a bare Go HTTP client posting the same batches (marshal, sign, POST: no
// Redis; the floor, as any webhook sender must sign), then through the
// webhook stage (read from the results stream, parse, marshal, sign, POST,
// ack). Compare the events/s and the CPU per event (this process's: the
// receiver's included on both sides, verifying every batch).
func BenchmarkWebhookVsBare(b *testing.B) {
	secret := []byte("bench-secret-0123456789")
	var received atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := webhook.Verify(r.Header.Get(webhook.SignatureHeader), secret, body, time.Now(), time.Minute); err != nil {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		received.Add(int64(bytes.Count(body, []byte(`"id":`))))
	}))
	b.Cleanup(srv.Close)
	// The parent of sub-benchmarks runs once (b.N 1): each sub-benchmark
	// takes its n from its own b.N, and both get the same events.
	var all []pipeline.ResultEvent
	eventsFor := func(b *testing.B) (int, []pipeline.ResultEvent) {
		n := max(b.N, 1_000_000)
		all = slices.Grow(all, max(0, n-len(all)))
		for i := len(all); i < n; i++ {
			all = append(all, pipeline.ResultEvent{ID: pipeline.ResultID("bench", "", int64(i), pipeline.OutcomeSent), Campaign: "bench", App: "app1",
				UserID: int64(i + 1), Platform: "ios", Token: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
				Outcome: pipeline.OutcomeSent, AtMs: time.Now().UnixMilli()})
		}
		return n, all[:n]
	}

	b.Run("bare", func(b *testing.B) {
		n, events := eventsFor(b)
		received.Store(0)
		client := &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
		var next atomic.Int64
		var wg sync.WaitGroup
		runtime.GC() // the setup's garbage is not the measured side's to collect
		b.ResetTimer()
		start, cpu := time.Now(), processCPU()
		for range benchConcurrency {
			wg.Go(func() {
				for {
					i := int(next.Add(1)-1) * benchBatch
					if i >= n {
						return
					}
					body, _ := json.Marshal(map[string]any{"events": events[i:min(i+benchBatch, n)]})
					req, _ := http.NewRequest(http.MethodPost, srv.URL, bytes.NewReader(body))
					req.Header.Set("Content-Type", "application/json")
					req.Header.Set(webhook.SignatureHeader, webhook.Sign([][]byte{secret}, time.Now(), body))
					resp, err := client.Do(req)
					if err != nil {
						b.Error(err)
						return
					}
					if resp.StatusCode != http.StatusOK {
						b.Errorf("receiver answered %d", resp.StatusCode)
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			})
		}
		wg.Wait()
		elapsed, cpu := time.Since(start), processCPU()-cpu
		b.StopTimer()
		if got := received.Load(); got != int64(n) {
			b.Fatalf("receiver counted %d events, want %d", got, n)
		}
		b.ReportMetric(float64(n)/elapsed.Seconds(), "events/s")
		b.ReportMetric(float64(cpu.Microseconds())/float64(n), "cpu-µs/event")
	})

	b.Run("webhook", func(b *testing.B) {
		n, events := eventsFor(b)
		received.Store(0)
		f := newFixture(b)
		// As deliver writes them: per partition, entries of the devices
		// one mark call recorded (here 100).
		byPart := map[int][]pipeline.ResultEvent{}
		for _, e := range events {
			p := f.keys.UserPartition(e.UserID)
			byPart[p] = append(byPart[p], e)
		}
		var msgs []pipeline.Message
		for p, evs := range byPart {
			for i := 0; i < len(evs); i += 100 {
				msgs = append(msgs, pipeline.Message{Stream: f.keys.Stream(pipeline.StreamResults, p), Fields: pipeline.ResultFields(evs[i:min(i+100, len(evs))]...)})
			}
		}
		if _, err := pipeline.Emit(b.Context(), f.rdb, msgs...); err != nil {
			b.Fatal(err)
		}
		h, err := webhook.New(webhook.Config{Redis: f.rdb, Keys: f.keys, URL: srv.URL, Secrets: [][]byte{secret}, Batch: benchBatch})
		if err != nil {
			b.Fatal(err)
		}
		def, _ := pipeline.StageNamed("webhook")
		opts := def.Options()
		opts.BatchSize, opts.Concurrency = benchBatch/100, benchConcurrency
		r := pipeline.NewRunner(f.rdb, f.keys, opts, h, zerolog.Nop(), nil)
		runtime.GC() // the setup's garbage is not the measured side's to collect
		b.ResetTimer()
		start, cpu, rcpu := time.Now(), processCPU(), redisCPU(b, f)
		done := make(chan error, 1)
		rctx, stop := context.WithCancel(b.Context())
		go func() { done <- r.Run(rctx) }()
		for received.Load() < int64(n) {
			time.Sleep(2 * time.Millisecond)
		}
		elapsed, cpu, rcpu := time.Since(start), processCPU()-cpu, redisCPU(b, f)-rcpu
		b.StopTimer()
		stop()
		<-done
		if got := received.Load(); got != int64(n) {
			b.Fatalf("receiver counted %d events, want %d", got, n)
		}
		b.ReportMetric(float64(n)/elapsed.Seconds(), "events/s")
		b.ReportMetric(float64(cpu.Microseconds())/float64(n), "cpu-µs/event")
		b.ReportMetric(float64(rcpu.Microseconds())/float64(n), "redis-cpu-µs/event")
		// Where Redis's time went: the runner's reads, keeps and acks.
		info, _ := f.rdb.Do(f.ctx, f.rdb.B().Info().Section("commandstats").Build()).ToString()
		for _, l := range strings.Split(info, "\n") {
			if strings.HasPrefix(l, "cmdstat_x") || strings.HasPrefix(l, "cmdstat_evalsha") {
				b.Log(strings.TrimSpace(l))
			}
		}
	})
}

// redisCPU is the Redis server's CPU time so far, from INFO cpu.
func redisCPU(b *testing.B, f *fixture) time.Duration {
	info, err := f.rdb.Do(f.ctx, f.rdb.B().Info().Section("cpu").Build()).ToString()
	if err != nil {
		b.Fatal(err)
	}
	var total float64
	for _, line := range strings.Split(info, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if ok && (k == "used_cpu_user" || k == "used_cpu_sys") {
			x, _ := strconv.ParseFloat(v, 64)
			total += x
		}
	}
	return time.Duration(total * float64(time.Second))
}

// processCPU is this process's user+system CPU time so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
