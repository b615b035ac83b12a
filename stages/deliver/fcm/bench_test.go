package fcm

import (
	"context"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	firebase "firebase.google.com/go/v4"
	"firebase.google.com/go/v4/messaging"
	"google.golang.org/api/option"

	"github.com/pushpipe/pushpipe/stages/deliver/fakeprovider"
	"github.com/pushpipe/pushpipe/stages/deliver/push"
)

// benchWorkers is the in-flight request count the deliver stage is compared
// at.
const benchWorkers = 500

// runWorkers calls send b.N times from benchWorkers goroutines and reports
// sends per second and CPU per send.
func runWorkers(b *testing.B, send func(i int) bool) {
	b.Helper()
	var next, failed atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	start, cpu := time.Now(), processCPU()
	for range benchWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(b.N) {
					return
				}
				if !send(int(i)) {
					failed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	elapsed, cpu := time.Since(start), processCPU()-cpu
	b.StopTimer()
	if n := failed.Load(); n > 0 {
		b.Fatalf("%d of %d sends failed", n, b.N)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "sends/s")
	// Client and the in-process fake together.
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/send")
}

// BenchmarkBareFCM is the floor: the firebase messaging client with a plain
// HTTP/2 client, calling Send from 500 goroutines against the fakeprovider.
func BenchmarkBareFCM(b *testing.B) {
	fake := fakeprovider.Start(b, fakeprovider.Options{})
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig.RootCAs = fake.CertPool()
	tr.ForceAttemptHTTP2 = true
	ctx := context.Background()
	app, err := firebase.NewApp(ctx, &firebase.Config{ProjectID: "test-project"},
		option.WithHTTPClient(&http.Client{Transport: tr}), option.WithEndpoint(fake.URL()+"/v1"))
	if err != nil {
		b.Fatal(err)
	}
	c, err := app.Messaging(ctx)
	if err != nil {
		b.Fatal(err)
	}
	runWorkers(b, func(i int) bool {
		_, err := c.Send(ctx, &messaging.Message{
			Token:        token(i),
			Notification: &messaging.Notification{Title: "Hello", Body: "World"},
			Android:      &messaging.AndroidConfig{CollapseKey: "bench"},
		})
		return err == nil
	})
}

// BenchmarkSenderFCM is the same loop through our Sender, to show its
// overhead (rendering, one-shot transport, classification).
func BenchmarkSenderFCM(b *testing.B) {
	fake := fakeprovider.Start(b, fakeprovider.Options{})
	s := newSender(b, fake)
	ctx := context.Background()
	runWorkers(b, func(i int) bool {
		r := s.Send(ctx, push.Notification{Token: token(i), Title: "Hello", Body: "World", CollapseID: "bench"})
		return r.Outcome == push.Sent
	})
}
