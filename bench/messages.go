package bench

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"math/rand/v2"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/campaign"
)

// MessagesConfig shapes `pushpipe bench --messages`: Rate messages a second
// of Recipients users each for Duration, optionally while a campaign to
// WithCampaign users is being sent.
type MessagesConfig struct {
	Rate         int
	Recipients   int
	Duration     time.Duration
	WithCampaign bool          // send a campaign to every seeded user first
	Baseline     time.Duration // measure the campaign alone this long before the messages
	Warmup       time.Duration // first send messages at Rate this long, not counted
	// FloorFor is how long the floor (RunFloor) sends the same shape
	// after the messages, with the pipeline stopped; 0 skips it.
	FloorFor time.Duration
}

// MessagesResult is what the messages benchmark reports. Latencies are per
// device, from CreateMessage's return (the API's 202) to the fake
// provider's receipt, in ms.
type MessagesResult struct {
	Messages int `json:"messages"`
	Failed   int `json:"failed_to_create"`
	// Unfinished counts the messages not done when the bench stopped
	// waiting (waitMessages): their late receipts are missing, so the
	// percentiles are then lower bounds. A loaded box's tail took up to
	// 100 s, and a minute's wait reported a p99 below the truth.
	Unfinished  int     `json:"unfinished,omitempty"`
	Receipts    int     `json:"receipts"`
	P50         int64   `json:"p50_ms"`
	P90         int64   `json:"p90_ms"`
	P99         int64   `json:"p99_ms"`
	Max         int64   `json:"max_ms"`
	CampaignOff float64 `json:"campaign_sends_per_s_without"`
	CampaignOn  float64 `json:"campaign_sends_per_s_with"`
	// Hops is where the milliseconds go, per receipt: acceptance → its
	// express dedupe entry, → its express deliver entry (dedupe's hop),
	// → the provider's receipt (deliver's: tokens, permit, send). Entry
	// times are their stream ids' milliseconds.
	Hops []Hop `json:"hops"`
	// Latencies are every receipt's, sorted (the chart's histogram).
	Latencies []int64 `json:"-"`
	// CPU is each role's share of a core while the messages were sent
	// (the load generator is "bench"), and ServerTime what Redis and
	// PostgreSQL spent it on: on one machine, where the milliseconds go
	// is mostly whose turn it is on the cores.
	CPU        map[string]float64 `json:"cpu_percent"`
	ServerTime ServerTime         `json:"server_time"`
	// Sends is the requests per second the fake provider accepted in the
	// same window (messages and campaign alike): CPU over Sends is each
	// process's CPU per send, the budget two cores have to share.
	Sends float64 `json:"provider_sends_per_s"`
	// Floor is the same messages sent by the provider clients alone to
	// the same fake at the same rate (RunFloor); nil when skipped. The
	// ratios are the messages' p99 and CPU-µs a send (every process's)
	// over the floor's (the bench process's and the fake's).
	Floor             *FloorResult `json:"floor,omitempty"`
	P99ToFloor        float64      `json:"p99_ratio_to_floor,omitempty"`
	CPUPerSendToFloor float64      `json:"cpu_per_send_ratio_to_floor,omitempty"`
}

// bucketMs is a histogram bucket bound in ms; -1 for past the last one.
func bucketMs(le float64) int64 {
	if math.IsInf(le, 1) {
		return -1
	}
	return int64(math.Ceil(le * 1000))
}

// Hop is one hop's share of the latency, over the receipts.
type Hop struct {
	Name     string `json:"name"`
	P50, P99 int64
}

// RunMessages seeds cfg.Seed, starts the pipeline with the fake provider,
// optionally starts a campaign to every subscriber, and sends messages.
func RunMessages(ctx context.Context, cfg Config, m MessagesConfig) (*MessagesResult, error) {
	cfg.Sink = SinkFake
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	logf := func(format string, args ...any) { fmt.Fprintf(cfg.Log, format+"\n", args...) }
	cfg.Servers.PostgresTuned = true // as the campaign bench's, with per-statement times
	srv, err := StartServers(ctx, cfg.Servers)
	if err != nil {
		return nil, err
	}
	defer srv.Close()
	if _, err := Seed(ctx, srv.DatabaseURL, cfg.Seed); err != nil {
		return nil, err
	}
	run, err := Launch(ctx, LaunchConfig{
		Servers: srv, Bin: cfg.Bin, LogDir: cfg.OutDir, Prefix: "pp", Partitions: cfg.Partitions,
		Replicas: cfg.Replicas, StageArgs: cfg.StageArgs, ClaimIdle: cfg.ClaimIdle, Sink: cfg.Sink,
		TPS: cfg.TPS, App: cfg.Seed.App, Pprof: cfg.Pprof > 0,
	})
	if err != nil {
		return nil, err
	}
	defer run.Stop()
	if m.Warmup > 0 {
		// Not counted: the first second of a fresh process pays for its
		// provider connections' handshakes, its first sends alone
		// (push.Warmup) and its goroutines' first stacks; what a running
		// deployment sees is the rest.
		logf("warming up: %d messages/s for %v (not counted)", m.Rate, m.Warmup)
		warm, _ := sendMessages(ctx, run, cfg, m, "warm-", m.Warmup)
		waitMessages(ctx, run, warm, time.Minute)
	}
	res := &MessagesResult{}
	bulk := "bench-bulk"
	if m.WithCampaign {
		if _, err := run.Trigger(ctx, campaign.Campaign{ID: bulk, App: cfg.Seed.App, Channels: cfg.Seed.ChannelNames(),
			Title: "Benchmark", Body: "bulk"}); err != nil {
			return nil, err
		}
		time.Sleep(5 * time.Second) // past split's start
		n0 := run.campaignSent(ctx, bulk)
		time.Sleep(m.Baseline)
		res.CampaignOff = float64(run.campaignSent(ctx, bulk)-n0) / m.Baseline.Seconds()
	}
	conn, err := pgx.Connect(ctx, srv.DatabaseURL)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	logf("sending %d messages/s of %d recipients for %v", m.Rate, m.Recipients, m.Duration)
	resetServerStats(ctx, run.rdb, conn)
	n0 := run.campaignSent(ctx, bulk)
	fake0, ferr0 := run.Fake.Summary(ctx)
	wait0 := run.ExpressWait(ctx)
	cpu0 := run.usage()
	start := time.Now()
	if cfg.Pprof > 0 {
		go run.Profile(ctx, cfg.Pprof, cfg.OutDir)
	}
	accepted, failed := sendMessages(ctx, run, cfg, m, "bm-", m.Duration)
	res.CPU = run.cpuShares(cpu0, run.usage(), time.Since(start))
	if fake1, err := run.Fake.Summary(ctx); err == nil && ferr0 == nil {
		res.Sends = float64(fake1.Accepted-fake0.Accepted) / time.Since(start).Seconds()
	}
	if m.WithCampaign {
		res.CampaignOn = float64(run.campaignSent(ctx, bulk)-n0) / time.Since(start).Seconds()
	}
	res.Messages, res.Failed = len(accepted), failed
	if res.Unfinished = waitMessages(ctx, run, accepted, messagesTail); res.Unfinished > 0 {
		logf("%d messages not done after %s: the latencies leave their late sends out", res.Unfinished, messagesTail)
	}
	wait := run.ExpressWait(ctx)
	res.ServerTime = readServerTime(ctx, run.rdb, conn, 6)
	receipts, err := messageReceipts(ctx, run.Fake.client, run.Fake.URL, accepted)
	if err != nil {
		return nil, err
	}
	dedupe, err := firstEntries(ctx, run, pipeline.StreamDedupeExpress)
	if err != nil {
		return nil, err
	}
	deliver, err := firstEntries(ctx, run, pipeline.StreamDeliverExpress)
	if err != nil {
		return nil, err
	}
	var lat, toDedupe, inDedupe, inDeliver []int64
	for _, r := range receipts {
		at := accepted[r.id]
		lat = append(lat, r.atMs-at)
		d, ok1 := dedupe[r.id]
		v, ok2 := deliver[r.id]
		if ok1 && ok2 {
			toDedupe = append(toDedupe, max(0, d-at))
			inDedupe = append(inDedupe, v-d)
			inDeliver = append(inDeliver, r.atMs-v)
		}
	}
	res.Receipts = len(lat)
	if len(lat) > 0 {
		slices.Sort(lat)
		res.P50, res.P90, res.P99, res.Max = quantile(lat, 0.5), quantile(lat, 0.9), quantile(lat, 0.99), lat[len(lat)-1]
		res.Latencies = lat
	}
	for _, h := range []struct {
		name string
		ms   []int64
	}{{"accepted → express dedupe entry", toDedupe}, {"dedupe → express deliver entry", inDedupe}, {"deliver entry → provider receipt", inDeliver}} {
		if len(h.ms) > 0 {
			slices.Sort(h.ms)
			res.Hops = append(res.Hops, Hop{Name: h.name, P50: quantile(h.ms, 0.5), P99: quantile(h.ms, 0.99)})
		}
	}
	// Of deliver's hop, the time before a round's first send (its read,
	// the wait for a handler, the row, tokens and marks lookups), per
	// round, from deliver's own histogram: the rest is the sends. Bucket
	// bounds (1, 2, 4... ms), not exact times.
	if wait != nil && wait0 != nil {
		w := wait.since(wait0)
		if p50, p99 := w.quantile(0.5), w.quantile(0.99); !math.IsNaN(p50) {
			res.Hops = append(res.Hops, Hop{Name: "of which: before its deliver round (read, handler, row, tokens, marks; per round, ≤ bucket bound)",
				P50: bucketMs(p50), P99: bucketMs(p99)})
		}
	}
	if len(lat) > 0 && cfg.OutDir != "" {
		path := cmp.Or(cfg.Chart, filepath.Join(cfg.OutDir, "messages.png"))
		if err := WriteLatencyChart(path, lat, m); err != nil {
			return nil, err
		}
		logf("chart: %s", path)
	}
	if m.FloorFor > 0 {
		// Every stage process stops first, the fake stays: the floor is
		// the provider clients and the fake alone on the box, with no
		// campaign (--with-campaign) still going out beside it.
		run.StopStages()
		logf("floor: the provider clients alone, %d messages/s of %d recipients for %v to the same fake", m.Rate, m.Recipients, m.FloorFor)
		fl, err := RunFloor(ctx, run.Fake, FloorConfig{Rate: m.Rate, Recipients: m.Recipients, Duration: m.FloorFor,
			InFlight: run.InFlight, Seed: cfg.Seed})
		if err != nil {
			return nil, fmt.Errorf("floor: %w", err)
		}
		res.setFloor(fl)
	}
	return res, nil
}

// setFloor sets the floor and the ratios to it. The floor's p99 counts as
// at least 1 ms, the receipts' resolution, so that a floor quicker than
// the clock still gives a ratio.
func (r *MessagesResult) setFloor(fl *FloorResult) {
	r.Floor = fl
	if fl.Receipts > 0 {
		r.P99ToFloor = float64(r.P99) / float64(max(fl.P99, 1))
	}
	floorCPU := fl.CPUPerSend["bench"] + fl.CPUPerSend["fakeprovider"]
	if total := r.cpuPerSend(); total > 0 && floorCPU > 0 {
		r.CPUPerSendToFloor = total / floorCPU
	}
}

// cpuPerSend is every process's CPU-µs a provider send while sending (0
// when unknown).
func (r *MessagesResult) cpuPerSend() float64 {
	if r.Sends <= 0 {
		return 0
	}
	total := 0.0
	for _, p := range r.CPU {
		total += p
	}
	return total / 100 / r.Sends * 1e6
}

// sendMessages creates m.Rate messages a second (ids prefix + a counter)
// for d, each to m.Recipients random seeded users, and returns when each
// was answered: the unix ms of each accepted one's return, and how many
// failed.
func sendMessages(ctx context.Context, run *Running, cfg Config, m MessagesConfig, prefix string, d time.Duration) (map[string]int64, int) {
	var (
		mu       sync.Mutex
		accepted = map[string]int64{} // message id → unix ms of its 202
		failed   int
		wg       sync.WaitGroup
	)
	// Message i is due at i/Rate from the start, sent late rather than
	// never: a ticker drops the ticks of a loop that fell behind, and on a
	// loaded machine (CI under -race) the benchmark sent 43 of the 60
	// messages it was asked for, and reported the rate asked.
	start := time.Now()
	n := int(d.Seconds() * float64(m.Rate))
	for i := range n {
		if wait := time.Until(start.Add(time.Duration(i) * time.Second / time.Duration(m.Rate))); wait > 0 {
			select {
			case <-ctx.Done():
				wg.Wait()
				return accepted, failed
			case <-time.After(wait):
			}
		}
		wg.Go(func() {
			msg := campaign.Message{Campaign: chatMessage(cfg.Seed.App, prefix+strconv.Itoa(i))}
			for range m.Recipients {
				msg.Users = append(msg.Users, 1+rand.Int64N(cfg.Seed.Users))
			}
			_, _, err := campaign.CreateMessage(ctx, run.rdb, run.db, run.Keys, msg)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				failed++
				return
			}
			accepted[msg.ID] = time.Now().UnixMilli()
		})
	}
	wg.Wait()
	return accepted, failed
}

// chatMessage is the benchmark's message id of app, as it is created: the
// messages and their floor (RunFloor) send the same notification.
func chatMessage(app, id string) campaign.Campaign {
	return campaign.Campaign{ID: id, App: app, Title: "Chat", Body: "hi"}
}

// waitMessages waits up to timeout for the messages to be done and
// returns how many are not.
// messagesTail is how long the bench waits for the messages still out
// after the last was accepted.
const messagesTail = 5 * time.Minute

func waitMessages(ctx context.Context, run *Running, ids map[string]int64, timeout time.Duration) int {
	pending := map[string]bool{}
	for id := range ids {
		pending[id] = true
	}
	for deadline := time.Now().Add(timeout); len(pending) > 0 && time.Now().Before(deadline); time.Sleep(time.Second) {
		for id := range pending {
			if p, err := campaign.MessageProgress(ctx, run.rdb, run.db, run.Keys, id); err == nil && p.State == campaign.MessageDone {
				delete(pending, id)
			}
		}
	}
	return len(pending)
}

// quantile is q of sorted.
func quantile(sorted []int64, q float64) int64 {
	return sorted[min(len(sorted)-1, int(q*float64(len(sorted))))]
}

// firstEntries maps each message to the unix ms of its first entry in the
// express lane stream (every partition), from the entries' ids.
func firstEntries(ctx context.Context, run *Running, stream string) (map[string]int64, error) {
	out := map[string]int64{}
	for _, key := range run.Keys.Streams(stream) {
		for start := "-"; ; {
			entries, err := run.rdb.Do(ctx, run.rdb.B().Xrange().Key(key).Start(start).End("+").Count(10000).Build()).AsXRange()
			if err != nil {
				return nil, fmt.Errorf("read %s: %w", key, err)
			}
			for _, e := range entries {
				at := pipeline.Entry{ID: e.ID}.Written().UnixMilli()
				id := e.FieldValues[pipeline.FieldCampaign]
				if first, ok := out[id]; !ok || at < first {
					out[id] = at
				}
			}
			if len(entries) < 10000 {
				break
			}
			start = "(" + entries[len(entries)-1].ID
		}
	}
	return out, nil
}

// campaignSent is the campaign's sent counter (0 when there is none).
func (r *Running) campaignSent(ctx context.Context, id string) int64 {
	p, err := campaign.Progress(ctx, r.rdb, r.db, r.Keys, id)
	if err != nil {
		return 0
	}
	return p.Sent
}

// receipt is a provider receipt of a message: its id (the collapse id)
// and when the provider got it.
type receipt struct {
	id   string
	atMs int64
}

// messageReceipts are the fake provider's receipts of the messages in
// accepted.
func messageReceipts(ctx context.Context, client *http.Client, base string, accepted map[string]int64) ([]receipt, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/_receipts", nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("receipts: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		io.Copy(io.Discard, resp.Body)
		return nil, fmt.Errorf("receipts: %s", resp.Status)
	}
	var out []receipt
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var r struct {
			CollapseID string `json:"collapse_id"`
			AtMs       int64  `json:"at_ms"`
		}
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			return nil, fmt.Errorf("receipt %q: %w", sc.Text(), err)
		}
		if _, ok := accepted[r.CollapseID]; ok {
			out = append(out, receipt{r.CollapseID, r.AtMs})
		}
	}
	return out, sc.Err()
}

// perSend is a CPU share (percent of a core) as CPU-µs per provider send.
func (r *MessagesResult) perSend(percent float64) string {
	if r.Sends <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f", percent/100/r.Sends*1e6)
}

// hopMs is a hop's figure for the table: bucketMs's -1 printed as "-1"
// read as a number.
func hopMs(ms int64) string {
	if ms < 0 {
		return "past the last bucket"
	}
	return strconv.FormatInt(ms, 10)
}

// WriteMarkdown writes the result as a table.
func (r *MessagesResult) WriteMarkdown(w io.Writer) {
	fmt.Fprintf(w, "| messages | receipts | p50 ms | p90 ms | p99 ms | max ms | campaign sends/s without | with |\n")
	fmt.Fprintf(w, "|---|---|---|---|---|---|---|---|\n")
	fmt.Fprintf(w, "| %d (%d failed) | %d | %d | %d | %d | %d | %.0f | %.0f |\n", r.Messages, r.Failed, r.Receipts,
		r.P50, r.P90, r.P99, r.Max, r.CampaignOff, r.CampaignOn)
	if r.Unfinished > 0 {
		fmt.Fprintf(w, "\n%d messages were not done after %s: their late sends are not counted, so the percentiles are lower bounds.\n",
			r.Unfinished, messagesTail)
	}
	if f := r.Floor; f != nil {
		fmt.Fprintf(w, "| floor: the provider clients alone, same fake, same rate: %d (%d of %d sends failed) | %d | %d | %d | %d | %d | - | - |\n",
			f.Messages, f.Failed, f.Sends, f.Receipts, f.P50, f.P90, f.P99, f.Max)
		fmt.Fprintf(w, "\n| floor (%.0f s) | sends/s asked / done | iOS / Android sends | CPU µs a send: bench / fake / both | messages ÷ floor: p99 / CPU µs a send |\n|---|---:|---:|---:|---:|\n", f.Seconds)
		fmt.Fprintf(w, "| the same messages through deliver's apns and fcm clients, no pipeline | %.0f / %.0f | %d / %d | %.1f / %.1f / %.1f | %.2f / %.2f |\n",
			f.AskedPerS, f.PerS, f.IOS, f.Android, f.CPUPerSend["bench"], f.CPUPerSend["fakeprovider"],
			f.CPUPerSend["bench"]+f.CPUPerSend["fakeprovider"], r.P99ToFloor, r.CPUPerSendToFloor)
	}
	if len(r.Hops) > 0 {
		fmt.Fprintf(w, "\n| hop | p50 ms | p99 ms |\n|---|---|---|\n")
		for _, h := range r.Hops {
			fmt.Fprintf(w, "| %s | %s | %s |\n", h.Name, hopMs(h.P50), hopMs(h.P99))
		}
	}
	if len(r.CPU) > 0 {
		roles := slices.SortedFunc(maps.Keys(r.CPU), func(a, b string) int { return cmp.Compare(r.CPU[b], r.CPU[a]) })
		fmt.Fprintf(w, "\n| process (while sending, %.0f sends/s) | CPU %% of a core | CPU µs a send |\n|---|---:|---:|\n", r.Sends)
		total := 0.0
		for _, role := range roles {
			fmt.Fprintf(w, "| %s | %.0f | %s |\n", role, r.CPU[role], r.perSend(r.CPU[role]))
			total += r.CPU[role]
		}
		fmt.Fprintf(w, "| all | %.0f | %s |\n", total, r.perSend(total))
	}
	r.ServerTime.writeMarkdown(w, "while sending")
}
