package deliver

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/stages/deliver/fakeprovider"
	"github.com/pushpipe/pushpipe/stages/deliver/push"
)

// A campaign in the bulk lane and one in the express lane, to iOS and
// Android devices through the real apns2 and firebase clients, some of
// whose tokens the provider calls unregistered: the registry tells the
// lanes' sends apart, times every provider request per provider and app,
// and counts the result events written per outcome, each matching what
// the provider and the results streams saw.
func TestMetricsOfARun(t *testing.T) {
	t.Parallel() // counts on a registry, fixture and fake of its own
	f := newFixture(t)
	fake := fakeprovider.Start(t, fakeprovider.Options{UnregisteredRate: 0.2})
	const users = 300
	devs := f.seedDevices(users, true)
	f.createCampaign("bulk-1", "{}")
	f.createCampaign("urgent-1", "{}")
	reg := prometheus.NewRegistry()
	f.startStageWith(Config{Metrics: reg,
		Senders: map[push.Platform]push.Sender{push.IOS: apnsSender(t, fake), push.Android: fcmSender(t, fake)}},
		pipeline.Options{Stage: "deliver", Stream: pipeline.StreamDeliver, Consumer: "d1", Express: true,
			Concurrency: 2, BatchSize: 4, Block: 100 * time.Millisecond, ClaimIdle: 30 * time.Second, ShutdownTimeout: 5 * time.Second})

	f.emitUsers("bulk-1", userRange(users))
	var msgs []pipeline.Message
	for p, us := range byPartition(f.keys, userRange(users)) {
		msgs = append(msgs, pipeline.Message{Stream: f.keys.Stream(pipeline.StreamDeliverExpress, p),
			Fields: pipeline.DeliverEntry{Campaign: "urgent-1", Users: us}.Fields()})
	}
	if _, err := pipeline.Emit(f.ctx, f.rdb, msgs...); err != nil {
		t.Fatal(err)
	}
	stats := map[string]map[string]int64{
		"bulk": f.waitDone("bulk-1", users, 30*time.Second), "express": f.waitDone("urgent-1", users, 30*time.Second)}
	f.waitDrained()

	perPlatform := map[push.Platform]int{}
	for _, d := range devs {
		perPlatform[d.platform]++
	}
	events := map[string]int{}
	for _, e := range f.results() {
		events[e.Outcome]++
	}
	sends := func(lane, outcome string) int64 {
		var n float64
		for _, p := range []string{"apns", "fcm"} {
			n += counterValue(t, reg, "pushpipe_deliver_sends_total", map[string]string{"provider": p, "outcome": outcome, "lane": lane})
		}
		return int64(n)
	}
	tests := []struct {
		name      string
		got, want int64
	}{
		{"bulk sent", sends("bulk", "sent"), stats["bulk"][pipeline.StatSent]},
		{"bulk invalid", sends("bulk", "invalid"), stats["bulk"][pipeline.StatInvalid]},
		{"express sent", sends("express", "sent"), stats["express"][pipeline.StatSent]},
		{"express invalid", sends("express", "invalid"), stats["express"][pipeline.StatInvalid]},
		// Each device once per campaign, no retries: two requests a device.
		{"apns requests timed", histogramCount(t, reg, map[string]string{"provider": "apns", "app": testApp}), 2 * int64(perPlatform[push.IOS])},
		{"fcm requests timed", histogramCount(t, reg, map[string]string{"provider": "fcm", "app": testApp}), 2 * int64(perPlatform[push.Android])},
		{"sent events", int64(counterValue(t, reg, "pushpipe_deliver_result_events_total", map[string]string{"outcome": "sent"})), int64(events[pipeline.OutcomeSent])},
		{"invalid events", int64(counterValue(t, reg, "pushpipe_deliver_result_events_total", map[string]string{"outcome": "invalid"})), int64(events[pipeline.OutcomeInvalid])},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s: %d, want %d", tt.name, tt.got, tt.want)
		}
	}
	// Both outcomes happened in both lanes, or the comparisons above say
	// little.
	for lane, s := range stats {
		if s[pipeline.StatSent] == 0 || s[pipeline.StatInvalid] == 0 {
			t.Errorf("%s lane counters %v: want sent and invalid devices", lane, s)
		}
	}
	if got := sumOf(t, reg, map[string]string{"provider": "apns", "app": testApp}); got <= 0 || got > 30*float64(perPlatform[push.IOS]) {
		t.Errorf("apns requests took %.3f s in all, want more than 0 and under 30 s a request", got)
	}
}

// Devices whose users run out of retries are failed by the settle script,
// whose failed events are counted as written: one a device, as the results
// stream holds.
func TestFailedEventsOfSpentRetriesAreCounted(t *testing.T) {
	f := newFixture(t)
	fake := fakeprovider.Start(t, fakeprovider.Options{ForceStatus: func(string) (int, string) { return 503, "ServiceUnavailable" }})
	const users = 40
	devs := f.seedDevices(users, false)
	f.createCampaign("c-fail", "{}")
	f.emitUsers("c-fail", userRange(users))
	reg := prometheus.NewRegistry()
	f.startStage(Config{Metrics: reg, Senders: map[push.Platform]push.Sender{push.IOS: apnsSender(t, fake)},
		MaxAttempts: 2, RetryBase: 10 * time.Millisecond}, "d1", 30*time.Second)
	f.waitDone("c-fail", users, 30*time.Second)

	var failed int
	for _, e := range f.results() {
		if e.Outcome == pipeline.OutcomeFailed {
			failed++
		}
	}
	got := counterValue(t, reg, "pushpipe_deliver_result_events_total", map[string]string{"outcome": "failed"})
	if failed != len(devs) || int(got) != failed {
		t.Errorf("result_events_total{outcome=failed} %v, %d failed events in the stream, want both %d", got, failed, len(devs))
	}
	// The provider answered every request, 503: each is timed.
	if n := histogramCount(t, reg, map[string]string{"provider": "apns", "app": testApp}); n != int64(2*len(devs)) {
		t.Errorf("%d apns requests timed, want %d (2 attempts a device)", n, 2*len(devs))
	}
}

// counterValue is the counter of name with labels in reg (0, and an
// error, when reg has none).
func counterValue(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	return find(t, reg, name, labels).GetCounter().GetValue()
}

// histogramCount and sumOf read pushpipe_deliver_provider_request_seconds
// of labels.
func histogramCount(t *testing.T, reg *prometheus.Registry, labels map[string]string) int64 {
	t.Helper()
	m := find(t, reg, "pushpipe_deliver_provider_request_seconds", labels)
	return int64(m.GetHistogram().GetSampleCount())
}

func sumOf(t *testing.T, reg *prometheus.Registry, labels map[string]string) float64 {
	t.Helper()
	return find(t, reg, "pushpipe_deliver_provider_request_seconds", labels).GetHistogram().GetSampleSum()
}

// find is the sample of family name whose labels are exactly labels, or
// nil (reported as an error).
func find(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) *dto.Metric {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, fam := range families {
		if fam.GetName() != name {
			continue
		}
	next:
		for _, m := range fam.GetMetric() {
			if len(m.GetLabel()) != len(labels) {
				continue
			}
			for _, l := range m.GetLabel() {
				if labels[l.GetName()] != l.GetValue() {
					continue next
				}
			}
			return m
		}
	}
	t.Errorf("no %s%v in the registry", name, labels)
	return nil
}
