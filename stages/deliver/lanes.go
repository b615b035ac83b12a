package deliver

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/stages/deliver/push"
)

// A feeder hands a worker a chunk of sends that run one after the other
// when the provider answers within a fraction of chunkTarget (an in-process
// sink): then a goroutine hand-off per send would cost more than the send.
// Over the network the chunk is one send, and each send has its worker.
const (
	chunkTarget = 50 * time.Microsecond
	maxChunk    = 64
	slowSend    = time.Millisecond // a chunk whose send took this long hands out its rest
	// firstSend is what a provider is assumed to take before it answered:
	// slow, so that chunks only form once sends are seen to be quick.
	firstSend = 10 * time.Millisecond
)

// lane is what the sends of one platform share, looked up once per queue
// of jobs instead of in maps per send: its sender (nil when none is
// configured: its devices are marked failed), provider name, sends
// counters, and the moving average of how long its sends take.
type lane struct {
	pl       pipeline.Lane
	platform push.Platform
	sender   push.Sender
	provider string
	sent     [push.Failed + 1]prometheus.Counter // by outcome
	expired  prometheus.Counter                  // sends counted expired: past the campaign's TTL, not sent
	avg      atomic.Int64                        // ns, 1/8 weight per send
}

func newLane(pl pipeline.Lane, p push.Platform, sender push.Sender, m *metrics) *lane {
	l := &lane{pl: pl, platform: p, sender: sender, provider: providerOf(p)}
	if sender == nil {
		l.provider = "none"
	}
	for o := push.Sent; o <= push.Failed; o++ {
		l.sent[o] = m.sent(l.provider, o, pl)
	}
	l.expired = m.sends.WithLabelValues("none", ReasonExpired, pl.String())
	l.avg.Store(int64(firstSend))
	return l
}

// appLane is a lane's sends of one app, as one feeder makes them: the
// lane, with the app's provider request histogram looked up once per
// feeder rather than per send.
type appLane struct {
	*lane
	// requests times the app's provider requests; nil when the lane does
	// not serve the app (no sender, or no credentials for it: its devices
	// fail without a request, in no time, which is not the provider's).
	requests prometheus.Observer
}

// forApp is l's sends of app's devices.
func (l *lane) forApp(app string, m *metrics) *appLane {
	a := &appLane{lane: l}
	if l.serves(app) {
		a.requests = m.providerSeconds.WithLabelValues(l.provider, app)
	}
	return a
}

// lanes are the Handler's lanes by pipeline lane and platform, each made
// on first use: the express lane's send with Config.ExpressSenders when it
// has one for the platform.
type lanes struct {
	mu sync.Mutex
	m  map[laneKey]*lane
}

type laneKey struct {
	lane     pipeline.Lane
	platform push.Platform
}

func (h *Handler) lane(pl pipeline.Lane, p push.Platform) *lane {
	h.lanes.mu.Lock()
	defer h.lanes.mu.Unlock()
	if h.lanes.m == nil {
		h.lanes.m = map[laneKey]*lane{}
	}
	k := laneKey{pl, p}
	l := h.lanes.m[k]
	if l == nil {
		sender := h.senders[p]
		if s := h.cfg.ExpressSenders[p]; pl == pipeline.Express && s != nil {
			sender = s
		}
		l = newLane(pl, p, sender, h.metrics)
		h.lanes.m[k] = l
	}
	return l
}

// observe adds a send's duration to the lane's average (concurrent updates
// may drop one, which an average can afford).
func (l *lane) observe(d time.Duration) {
	old := l.avg.Load()
	l.avg.Store(old + (int64(d)-old)/8)
}

// serves reports whether the lane's sender may send app's notifications:
// false without a sender, or one with no credentials for app
// (push.AppServer).
func (l *lane) serves(app string) bool {
	if l.sender == nil {
		return false
	}
	if a, ok := l.sender.(push.AppServer); ok {
		return a.Serves(app)
	}
	return true
}

// chunkSize is how many of the lane's sends a worker gets at once.
func (l *lane) chunkSize() int {
	if l.sender == nil {
		return maxChunk // marked failed at once
	}
	return int(min(max(int64(chunkTarget)/max(l.avg.Load(), 1), 1), maxChunk))
}
