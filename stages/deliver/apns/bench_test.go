package apns

import (
	"context"
	"crypto/tls"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sideshow/apns2"
	"github.com/sideshow/apns2/payload"
	"github.com/sideshow/apns2/token"
	"golang.org/x/net/http2"

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

// BenchmarkBareAPNs is the floor: one apns2 token client, as its README
// recommends, pushing to the fakeprovider from 500 goroutines.
func BenchmarkBareAPNs(b *testing.B) {
	fake := fakeprovider.Start(b, fakeprovider.Options{})
	key, err := token.AuthKeyFromFile(fakeprovider.WriteP8(b))
	if err != nil {
		b.Fatal(err)
	}
	c := apns2.NewTokenClient(&token.Token{AuthKey: key, KeyID: "KEYID12345", TeamID: "TEAMID1234"})
	c.Host = fake.URL()
	//lint:ignore SA1019 the floor is apns2 as shipped, and apns2 builds on x/net/http2's Transport
	c.HTTPClient.Transport.(*http2.Transport).TLSClientConfig = &tls.Config{RootCAs: fake.CertPool()}
	ctx := context.Background()
	runWorkers(b, func(i int) bool {
		resp, err := c.PushWithContext(ctx, &apns2.Notification{
			DeviceToken: hexToken(i), Topic: "com.example.app", CollapseID: "bench",
			Payload: payload.NewPayload().AlertTitle("Hello").AlertBody("World"),
		})
		return err == nil && resp.Sent()
	})
}

// BenchmarkSenderAPNs is the same loop through our Sender, to show its
// overhead (rendering, classification, Retry-After capture) and what
// spreading over connections buys.
func BenchmarkSenderAPNs(b *testing.B) {
	for _, conns := range []int{1, 2, 4} {
		b.Run(map[int]string{1: "conns=1", 2: "conns=2", 4: "conns=4"}[conns], func(b *testing.B) {
			fake := fakeprovider.Start(b, fakeprovider.Options{})
			s := newSender(b, fake, func(c *Config) { c.Conns = conns })
			ctx := context.Background()
			runWorkers(b, func(i int) bool {
				r := s.Send(ctx, push.Notification{Token: hexToken(i), Title: "Hello", Body: "World", CollapseID: "bench"})
				return r.Outcome == push.Sent
			})
		})
	}
}
