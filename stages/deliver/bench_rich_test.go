package deliver

import (
	"context"
	"crypto/tls"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/sideshow/apns2"
	"github.com/sideshow/apns2/payload"
	"github.com/sideshow/apns2/token"
	"golang.org/x/net/http2"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/devices"
	"github.com/pushpipe/pushpipe/stages/deliver/fakeprovider"
	"github.com/pushpipe/pushpipe/stages/deliver/push"
)

// richNotification is the full notification object with three locales.
const richNotification = `{"title":"Breaking","subtitle":"World","body":"Something happened, read more",
	"data":{"deep_link":"app://story/123","n":7},"badge":3,"sound":"default","image":"https://img.example/story.jpg",
	"category":"story","thread_id":"world","collapse_id":"story-123","priority":"high",
	"localized":{"ko":{"title":"속보","subtitle":"세계","body":"무슨 일이 일어났습니다"},
	"pt-BR":{"title":"Urgente","subtitle":"Mundo","body":"Algo aconteceu, leia mais"},
	"en":{"title":"Breaking","subtitle":"World","body":"Something happened, read more"}}}`

// benchLocales are the devices' locales, in turn: every text and the default.
var benchLocales = []string{"ko-KR", "pt-BR", "en", "", "ko"}

// BenchmarkDeliverVsBareRich is BenchmarkDeliverVsBare with the full rich
// payload (every field of the notification object, three locales, devices
// spread over them): the bare loop sends the same payload per locale.
func BenchmarkDeliverVsBareRich(b *testing.B) {
	n := max(b.N, minBenchSends)
	b.Run("bare", func(b *testing.B) {
		fake := fakeprovider.Start(b, fakeprovider.Options{})
		key, err := token.AuthKeyFromFile(fakeprovider.WriteP8(b))
		if err != nil {
			b.Fatal(err)
		}
		c := apns2.NewTokenClient(&token.Token{AuthKey: key, KeyID: "KEYID12345", TeamID: "TEAMID1234"})
		c.Host = fake.URL()
		//lint:ignore SA1019 the floor is apns2 as shipped, and apns2 builds on x/net/http2's Transport
		c.HTTPClient.Transport.(*http2.Transport).TLSClientConfig = &tls.Config{RootCAs: fake.CertPool()}
		texts := [][3]string{{"속보", "세계", "무슨 일이 일어났습니다"}, {"Urgente", "Mundo", "Algo aconteceu, leia mais"},
			{"Breaking", "World", "Something happened, read more"}}
		ctx := context.Background()
		var next, failed atomic.Int64
		var wg sync.WaitGroup
		b.ResetTimer()
		start, cpu := time.Now(), processCPU()
		for range benchInFlight {
			wg.Go(func() {
				for {
					i := next.Add(1)
					if i > int64(n) {
						return
					}
					t := texts[i%3]
					p := payload.NewPayload().AlertTitle(t[0]).AlertSubtitle(t[1]).AlertBody(t[2]).Badge(3).Sound("default").
						Category("story").ThreadID("world").MutableContent().Custom("image", "https://img.example/story.jpg").
						Custom("deep_link", "app://story/123").Custom("n", "7")
					resp, err := c.PushWithContext(ctx, &apns2.Notification{
						DeviceToken: iosToken(i, 0), Topic: testTopic, CollapseID: "story-123", Priority: 10,
						Expiration: time.Now().Add(time.Hour), Payload: p,
					})
					if err != nil || !resp.Sent() {
						failed.Add(1)
					}
				}
			})
		}
		wg.Wait()
		elapsed, cpu := time.Since(start), processCPU()-cpu
		b.StopTimer()
		if bad := failed.Load(); bad > 0 {
			b.Fatalf("%d sends failed", bad)
		}
		b.ReportMetric(float64(n)/elapsed.Seconds(), "sends/s")
		b.ReportMetric(float64(cpu.Microseconds())/float64(n), "cpu-µs/send")
	})
	b.Run("deliver", func(b *testing.B) {
		f := newFixture(b)
		fake := fakeprovider.Start(b, fakeprovider.Options{})
		rows := make([][]any, n)
		at := time.Now().Add(-time.Hour)
		for i := range rows {
			u := int64(i + 1)
			rows[i] = []any{testApp, iosToken(u, 0), u, int16(devices.IOS), benchLocales[i%len(benchLocales)], int16(0), at}
		}
		if _, err := f.db.CopyFrom(f.ctx, pgx.Identifier{"devices"},
			[]string{"app", "token", "user_id", "platform", "locale", "state", "event_at"}, pgx.CopyFromRows(rows)); err != nil {
			b.Fatal(err)
		}
		f.createAppCampaign("bench", testApp, richNotification)
		if _, err := f.db.Exec(f.ctx, `VACUUM ANALYZE devices`); err != nil {
			b.Fatal(err)
		}
		sender := apnsSenderConns(b, fake, 1)
		b.ResetTimer()
		start, cpu := time.Now(), processCPU()
		f.emitUsers("bench", userRange(n))
		f.startStage(Config{Senders: map[push.Platform]push.Sender{push.IOS: sender}, InFlight: benchInFlight},
			"bench", 30*time.Second)
		stats := f.waitDone("bench", n, 10*time.Minute)
		cpu = processCPU() - cpu
		elapsed := time.UnixMilli(stats[pipeline.StatLastMs]).Sub(start)
		b.StopTimer()
		if s := fake.Summary(); s.Accepted != uint64(n) {
			b.Fatalf("provider accepted %d of %d", s.Accepted, n)
		}
		b.ReportMetric(float64(n)/elapsed.Seconds(), "sends/s")
		b.ReportMetric(float64(cpu.Microseconds())/float64(n), "cpu-µs/send")
	})
}

// BenchmarkNotificationPerDevice is what picking a device's notification
// costs per send: a campaign of title and body, and one of three locales
// to devices spread over them (the rendering itself is once per locale).
func BenchmarkNotificationPerDevice(b *testing.B) {
	f := newFixture(b)
	f.createCampaign("plain", `{}`)
	f.createAppCampaign("rich", testApp, richNotification)
	cs := newCampaigns(f.db)
	devs := make([]device, 1024)
	for i := range devs {
		devs[i] = device{user: int64(i), platform: push.IOS, token: iosToken(int64(i), 0), locale: benchLocales[i%len(benchLocales)]}
	}
	for _, id := range []string{"plain", "rich"} {
		c, err := cs.get(f.ctx, id)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(id, func(b *testing.B) {
			var n push.Notification
			for i := 0; b.Loop(); i++ {
				n = c.notification(devs[i%len(devs)])
			}
			_ = n
		})
	}
}
