package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/pushpipe/pushpipe/pipeline/campaign"
	"github.com/pushpipe/pushpipe/stages/deliver"
	"github.com/pushpipe/pushpipe/stages/deliver/push"
)

// FloorConfig is the messages bench's floor: Rate messages a second of
// Recipients seeded users each, for Duration, sent by this process straight
// to the fake provider with at most InFlight sends at a time.
type FloorConfig struct {
	Rate       int
	Recipients int
	Duration   time.Duration
	InFlight   int        // deliver's --in-flight: the open loop's cap, so it cannot run away
	Seed       SeedConfig // the seeded population the devices are drawn from
}

// FloorResult is what the floor measured: the provider clients alone, on
// the same fake, at the messages' rate. Latencies are per send, from its
// message's scheduled start to the fake's receipt, in ms.
type FloorResult struct {
	Messages  int     `json:"messages"`
	Sends     int     `json:"sends"` // requests made, iOS and Android
	IOS       int     `json:"ios_sends"`
	Android   int     `json:"android_sends"`
	Failed    int     `json:"failed"` // sends the fake did not accept
	Receipts  int     `json:"receipts"`
	P50       int64   `json:"p50_ms"`
	P90       int64   `json:"p90_ms"`
	P99       int64   `json:"p99_ms"`
	Max       int64   `json:"max_ms"`
	Seconds   float64 `json:"seconds"`     // from the first send due to the last one answered
	PerS      float64 `json:"sends_per_s"` // accepted sends over Seconds
	AskedPerS float64 `json:"sends_per_s_asked"`
	// CPUPerSend is the CPU-µs a send of the bench process (the provider
	// clients and the schedule, "bench") and of "fakeprovider", over the
	// same window, from /proc as the messages' process table.
	CPUPerSend map[string]float64 `json:"cpu_us_per_send"`
}

// floorPrefix starts the floor's message ids (their collapse ids), so
// that its receipts are told from the messages'.
const floorPrefix = "floor-"

// RunFloor sends the messages' shape to fp through the provider clients
// deliver uses (FakeProvider.Senders), with no pipeline, Redis or
// PostgreSQL: a message's devices are those of Recipients random seeded
// users (both platforms, as seeded), its notification the messages' own
// (chatMessage, rendered as deliver renders it), and its sends start
// together when it is due, as a message's devices are all due at its 202.
// The schedule is open: a message starts when due whatever the earlier
// ones are doing, so the floor's latency is the clients' and the fake's
// under that load, not a closed loop's that slows down to match them.
func RunFloor(ctx context.Context, fp *FakeProvider, cfg FloorConfig) (*FloorResult, error) {
	cfg.Seed.defaults()
	senders, closeSenders, err := fp.Senders(ctx, cfg.Seed.App)
	if err != nil {
		return nil, err
	}
	defer closeSenders()
	res := &FloorResult{CPUPerSend: map[string]float64{}}
	var (
		mu     sync.Mutex
		due    = map[string]int64{} // message id → unix ms it was due
		wg     sync.WaitGroup
		slots  = make(chan struct{}, max(1, cfg.InFlight))
		sendMu sync.Mutex
	)
	send := func(id string, at time.Time) error {
		notes, devs, err := floorMessage(cfg, id)
		if err != nil {
			return err
		}
		mu.Lock()
		due[id] = at.UnixMilli()
		res.Messages++
		mu.Unlock()
		for _, d := range devs {
			select {
			case slots <- struct{}{}:
			case <-ctx.Done():
				return ctx.Err()
			}
			wg.Go(func() {
				defer func() { <-slots }()
				n := notes
				n.Token, n.Platform, n.App = d.token, d.platform, cfg.Seed.App
				r := senders[d.platform].Send(ctx, n)
				sendMu.Lock()
				defer sendMu.Unlock()
				res.Sends++
				if d.platform == push.IOS {
					res.IOS++
				} else {
					res.Android++
				}
				if r.Outcome != push.Sent {
					res.Failed++
				}
			})
		}
		return nil
	}
	// Not counted: the clients' first sends dial and handshake their
	// connections (and go alone, push.Warmup); deliver's were warm.
	if err := send(floorPrefix+"warm", time.Now()); err != nil {
		return nil, err
	}
	wg.Wait()
	clear(due)
	res.Sends, res.IOS, res.Android, res.Failed, res.Messages = 0, 0, 0, 0, 0

	self0, ok1 := readUsage(os.Getpid())
	fake0, ok2 := readUsage(fp.Proc.PID())
	start := time.Now()
	var sendErr error
	var mwg sync.WaitGroup
	n := int(cfg.Duration.Seconds() * float64(cfg.Rate))
	for i := range n {
		at := start.Add(time.Duration(i) * time.Second / time.Duration(cfg.Rate))
		if wait := time.Until(at); wait > 0 {
			select {
			case <-ctx.Done():
			case <-time.After(wait):
			}
		}
		if ctx.Err() != nil {
			break
		}
		// A goroutine per message: one waiting for a slot must not hold
		// back the next one's start.
		mwg.Go(func() {
			if err := send(floorPrefix+strconv.Itoa(i), at); err != nil {
				mu.Lock()
				if sendErr == nil {
					sendErr = err
				}
				mu.Unlock()
			}
		})
	}
	mwg.Wait()
	wg.Wait()
	// The window is the schedule's length, or longer if the last sends
	// were answered after it: a floor that keeps up sends at the asked
	// rate, one that falls behind below it.
	res.Seconds = max(time.Since(start), cfg.Duration).Seconds()
	var selfCPU, fakeCPU float64
	if self1, ok := readUsage(os.Getpid()); ok && ok1 {
		selfCPU = self1.CPUSeconds - self0.CPUSeconds
	}
	if fake1, ok := readUsage(fp.Proc.PID()); ok && ok2 {
		fakeCPU = fake1.CPUSeconds - fake0.CPUSeconds
	}
	if sendErr != nil {
		return nil, sendErr
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	sent := res.Sends - res.Failed
	res.AskedPerS = float64(res.Sends) / cfg.Duration.Seconds()
	if sent > 0 {
		res.PerS = float64(sent) / res.Seconds
		res.CPUPerSend["bench"] = selfCPU / float64(sent) * 1e6
		res.CPUPerSend["fakeprovider"] = fakeCPU / float64(sent) * 1e6
	}
	receipts, err := messageReceipts(ctx, fp.client, fp.URL, due)
	if err != nil {
		return nil, err
	}
	lat := make([]int64, 0, len(receipts))
	for _, r := range receipts {
		lat = append(lat, r.atMs-due[r.id])
	}
	res.Receipts = len(lat)
	if len(lat) > 0 {
		slices.Sort(lat)
		res.P50, res.P90, res.P99, res.Max = quantile(lat, 0.5), quantile(lat, 0.9), quantile(lat, 0.99), lat[len(lat)-1]
	}
	return res, nil
}

// floorDevice is a seeded device the floor sends to.
type floorDevice struct {
	token    string
	platform push.Platform
}

// floorMessage is message id as deliver would send it (its rendered
// notification) and the devices of cfg.Recipients random seeded users
// (a user drawn twice counts once, as CreateMessage makes it), computed
// from the seed's own hashes rather than read from PostgreSQL.
func floorMessage(cfg FloorConfig, id string) (push.Notification, []floorDevice, error) {
	m := campaign.Message{Campaign: chatMessage(cfg.Seed.App, id)}
	for range cfg.Recipients {
		m.Users = append(m.Users, 1+rand.Int64N(cfg.Seed.Users))
	}
	if err := m.Normalize(); err != nil {
		return push.Notification{}, nil, fmt.Errorf("floor message: %w", err)
	}
	m.CreatedAt = time.Now() // its TTL counts from here, as from the API's row
	_, notes, err := deliver.Render(m.Campaign)
	if err != nil {
		return push.Notification{}, nil, fmt.Errorf("floor message: %w", err)
	}
	var devs []floorDevice
	for _, u := range m.Users {
		for j := range userDevices(cfg.Seed, u) {
			p, token := deviceToken(cfg.Seed, u, j, nil)
			platform := push.Android
			if p == platformIOS {
				platform = push.IOS
			}
			devs = append(devs, floorDevice{token: string(token), platform: platform})
		}
	}
	return notes[""], devs, nil
}
