package webhook_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
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

// BenchmarkWebhookVsBare POSTs n result events (b.N, at least 100,000) to a
// local receiver that only verifies signatures, twice in the same run: from
// a bare Go HTTP client posting the same batches (marshal and POST, no
// Redis, no signature: the floor), then through the webhook stage (read
// from the results stream, parse, marshal, sign, POST, ack). Compare the
// events/s and the CPU per event (this process's: the receiver's included
// on both sides).
func BenchmarkWebhookVsBare(b *testing.B) {
	n := max(b.N, 100_000)
	secret := []byte("bench-secret")
	var received atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if r.Header.Get(webhook.SignatureHeader) != "" {
			if err := webhook.Verify(r.Header.Get(webhook.SignatureHeader), secret, body, time.Now(), time.Minute); err != nil {
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
		}
		received.Add(int64(bytes.Count(body, []byte(`"id":`))))
	}))
	b.Cleanup(srv.Close)
	events := make([]pipeline.ResultEvent, n)
	for i := range events {
		events[i] = pipeline.ResultEvent{ID: pipeline.ResultID("bench", "", int64(i)), Campaign: "bench", App: "app1",
			UserID: int64(i + 1), Platform: "ios", Token: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
			Outcome: pipeline.OutcomeSent, AtMs: time.Now().UnixMilli()}
	}

	b.Run("bare", func(b *testing.B) {
		received.Store(0)
		client := &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
		var next atomic.Int64
		var wg sync.WaitGroup
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
					resp, err := client.Post(srv.URL, "application/json", bytes.NewReader(body))
					if err != nil {
						b.Error(err)
						return
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
