package deliver

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

// benchInFlight is the concurrency both sides of the comparison get: the
// bare loop's goroutines and deliver's --in-flight.
const benchInFlight = 256

// BenchmarkDeliverVsBare sends b.N notifications to one fake APNs over
// HTTP/2 twice in the same run: from a bare apns2 client loop (the floor),
// then through the whole deliver stage (Redis stream, PostgreSQL tokens,
// sent marks, settle and ack, no rate limit). Compare the sends/s; run with
// a fixed count, e.g. -benchtime 50000x.
func BenchmarkDeliverVsBare(b *testing.B) {
	b.Run("bare", func(b *testing.B) {
		fake := startFake(b, fakeprovider.Options{})
		key, err := token.AuthKeyFromFile(writeP8(b))
		if err != nil {
			b.Fatal(err)
		}
		c := apns2.NewTokenClient(&token.Token{AuthKey: key, KeyID: "KEYID12345", TeamID: "TEAMID1234"})
		c.Host = fake.URL()
		c.HTTPClient.Transport.(*http2.Transport).TLSClientConfig = &tls.Config{RootCAs: fake.CertPool()}
		ctx := context.Background()
		var next, failed atomic.Int64
		var wg sync.WaitGroup
		b.ResetTimer()
		start := time.Now()
		for range benchInFlight {
			wg.Go(func() {
				for {
					i := next.Add(1)
					if i > int64(b.N) {
						return
					}
					resp, err := c.PushWithContext(ctx, &apns2.Notification{
						DeviceToken: iosToken(i, 0), Topic: testTopic, CollapseID: "bench",
						Payload: payload.NewPayload().AlertTitle("Hello").AlertBody("World"),
					})
					if err != nil || !resp.Sent() {
						failed.Add(1)
					}
				}
			})
		}
		wg.Wait()
		elapsed := time.Since(start)
		b.StopTimer()
		if n := failed.Load(); n > 0 {
			b.Fatalf("%d sends failed", n)
		}
		b.ReportMetric(float64(b.N)/elapsed.Seconds(), "sends/s")
	})
	b.Run("deliver", func(b *testing.B) {
		f := newFixture(b)
		fake := startFake(b, fakeprovider.Options{})
		devs := make([]testDevice, b.N)
		for i := range devs {
			u := int64(i + 1)
			devs[i] = testDevice{u, push.IOS, iosToken(u, 0)}
		}
		f.insertDevices(devs)
		f.createCampaign("bench", `{}`)
		if _, err := f.db.Exec(f.ctx, `VACUUM ANALYZE devices`); err != nil {
			b.Fatal(err)
		}
		sender := apnsSender(b, fake)
		b.ResetTimer()
		start := time.Now()
		f.emitUsers("bench", userRange(b.N))
		f.startStage(Config{Senders: map[push.Platform]push.Sender{push.IOS: sender}, InFlight: benchInFlight},
			"bench", 30*time.Second)
		f.waitDone("bench", b.N, 10*time.Minute)
		elapsed := time.Since(start)
		b.StopTimer()
		if s := fake.Summary(); s.Accepted != uint64(b.N) {
			b.Fatalf("provider accepted %d of %d", s.Accepted, b.N)
		}
		b.ReportMetric(float64(b.N)/elapsed.Seconds(), "sends/s")
	})
}
