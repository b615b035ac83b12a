// Package bench runs the whole pipeline as separate OS processes against real
// Redis and PostgreSQL, sends one campaign to a synthetic population, and
// measures and verifies it: the harness behind `pushpipe bench`, `pushpipe
// dev` and the CI smoke test.
package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/campaign"
)

// Sinks.
const (
	SinkNull = "null" // deliver's in-process null sender: the pipeline alone
	SinkFake = "fake" // the fake provider process over HTTP/2 TLS
)

// DefaultReplicas is how many processes each stage gets on a 2-core box
// (the stage table's Replicas).
var DefaultReplicas = func() map[string]int {
	m := map[string]int{}
	for _, s := range pipeline.Stages {
		m[s.Name] = s.Replicas
	}
	return m
}()

// Config is one bench run.
type Config struct {
	Servers ServerConfig
	Seed    SeedConfig
	// Bin is the pushpipe binary the stage processes run; default
	// os.Executable() (the bench is a pushpipe subcommand).
	Bin        string
	Sink       string
	Replicas   map[string]int      // processes per stage; missing stages get DefaultReplicas
	StageArgs  map[string][]string // extra flags per stage (e.g. deliver: --in-flight 512)
	Partitions int                 // PUSHPIPE_PARTITIONS; default 16
	ClaimIdle  time.Duration       // every stage's --claim-idle; default 10s (3s with Chaos)
	TPS        int                 // deliver's cluster-wide --tps; 0 = no limit
	Chaos      bool                // SIGKILL a random stage process every ChaosEvery and restart it
	ChaosEvery time.Duration       // default 3s
	Timeout    time.Duration       // give up waiting for the campaign after this; default 10m
	Stall      time.Duration       // give up when nothing moved this long; default 2m
	Pprof      time.Duration       // if > 0, CPU-profile every stage process this long after the trigger
	OutDir     string              // logs, profiles, chart; default a temp dir
	Chart      string              // PNG path; "" = OutDir/bench.png
	SeedOnly   bool                // stop after seeding (to time it)
	AllInOne   bool                // one `pushpipe all` process instead of a process per stage replica
	Progress   io.Writer           // live progress bar (a terminal); nil = quiet
	Log        io.Writer           // one line per phase; nil = quiet
}

func (c *Config) defaults() error {
	if c.Bin == "" {
		bin, err := os.Executable()
		if err != nil {
			return fmt.Errorf("find the pushpipe binary: %w", err)
		}
		c.Bin = bin
	}
	if c.Sink == "" {
		c.Sink = SinkNull
	}
	if c.Sink != SinkNull && c.Sink != SinkFake {
		return fmt.Errorf("sink must be %q or %q, got %q", SinkNull, SinkFake, c.Sink)
	}
	reps := map[string]int{}
	for k, v := range DefaultReplicas {
		reps[k] = v
	}
	for k, v := range c.Replicas {
		if _, ok := DefaultReplicas[k]; !ok {
			return fmt.Errorf("replicas: unknown stage %q", k)
		}
		reps[k] = v
	}
	c.Replicas = reps
	if c.Partitions <= 0 {
		c.Partitions = pipeline.DefaultPartitions
	}
	if c.ClaimIdle <= 0 {
		c.ClaimIdle = 10 * time.Second
		if c.Chaos {
			c.ClaimIdle = 3 * time.Second
		}
	}
	if c.ChaosEvery <= 0 {
		c.ChaosEvery = 3 * time.Second
	}
	if c.Timeout <= 0 {
		c.Timeout = 10 * time.Minute
	}
	if c.Stall <= 0 {
		c.Stall = 2 * time.Minute
	}
	if c.OutDir == "" {
		dir, err := os.MkdirTemp("", "pushpipe-bench-*")
		if err != nil {
			return err
		}
		c.OutDir = dir
	}
	if c.Chart == "" {
		c.Chart = filepath.Join(c.OutDir, "bench.png")
	}
	if c.Log == nil {
		c.Log = io.Discard
	}
	c.Seed.defaults()
	return nil
}

// Run seeds, launches, triggers, watches, verifies and reports one campaign.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	logf := func(format string, args ...any) { fmt.Fprintf(cfg.Log, format+"\n", args...) }
	res := &Result{Users: cfg.Seed.Users, Channels: cfg.Seed.Channels, Sink: cfg.Sink, Replicas: cfg.Replicas,
		OutDir: cfg.OutDir, Chart: cfg.Chart, Redis: "standalone"}
	if cfg.Servers.RedisCluster > 0 || strings.Contains(cfg.Servers.RedisAddr, ",") {
		res.Redis = fmt.Sprintf("cluster-%d", max(cfg.Servers.RedisCluster, strings.Count(cfg.Servers.RedisAddr, ",")+1))
	}

	logf("starting Redis (%s) and PostgreSQL", res.Redis)
	cfg.Servers.PostgresTuned = true
	srv, err := StartServers(ctx, cfg.Servers)
	if err != nil {
		return nil, err
	}
	defer srv.Close()

	logf("seeding %d users, %d channels (overlap %.0f%%), %.0f%% with two devices", cfg.Seed.Users, cfg.Seed.Channels,
		100*cfg.Seed.Overlap, 100*cfg.Seed.TwoDevices)
	seeded, err := Seed(ctx, srv.DatabaseURL, cfg.Seed)
	if err != nil {
		return nil, err
	}
	res.SeedMs = seeded.Took.Milliseconds()
	logf("seeded %d subscriptions and %d devices in %v (copy %v, indexes %v, vacuum %v)", seeded.Subscriptions, seeded.Devices,
		seeded.Took.Round(time.Millisecond), seeded.Copy.Round(time.Millisecond), seeded.Index.Round(time.Millisecond),
		seeded.Vacuum.Round(time.Millisecond))
	logf("index builds: %v", seeded.Indexes)
	if cfg.SeedOnly {
		return res, nil
	}

	conn, err := pgx.Connect(ctx, srv.DatabaseURL)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	channels := cfg.Seed.ChannelNames()
	truth, err := countTruth(ctx, conn, cfg.Seed.App, channels)
	if err != nil {
		return nil, err
	}
	res.Recipients, res.Devices = truth.Recipients, truth.Devices

	run, err := Launch(ctx, LaunchConfig{
		Servers: srv, Bin: cfg.Bin, LogDir: cfg.OutDir, Prefix: "pp", Partitions: cfg.Partitions,
		Replicas: cfg.Replicas, StageArgs: cfg.StageArgs, ClaimIdle: cfg.ClaimIdle, Sink: cfg.Sink,
		TPS: cfg.TPS, App: cfg.Seed.App, Pprof: cfg.Pprof > 0, AllInOne: cfg.AllInOne,
	})
	if err != nil {
		return nil, err
	}
	defer run.Stop()
	logf("%d processes ready (logs in %s)", len(run.Fleet.Procs()), cfg.OutDir)

	id := "bench-" + strconv.FormatInt(time.Now().Unix(), 36)
	w := &Watch{Run: run, Campaign: id, Expected: truth, Progress: cfg.Progress, Timeout: cfg.Timeout, Stall: cfg.Stall}
	if cfg.Chaos {
		w.Chaos = &Chaos{Every: cfg.ChaosEvery, Roles: []string{"split", "resolve", "dedupe", "deliver", "all"}}
	}
	if cfg.Pprof > 0 {
		go run.Profile(ctx, cfg.Pprof, cfg.OutDir)
	}
	resetServerStats(ctx, run.rdb, conn)
	res.LoadAvg[0] = loadAvg()
	before := sampleMachine()
	t0, err := run.Trigger(ctx, campaign.Campaign{ID: id, App: cfg.Seed.App, Channels: channels,
		Title: "Benchmark", Body: "One notification to every subscriber", Notification: localized(cfg.Seed.Locales)})
	if err != nil {
		return nil, err
	}
	if err := w.Wait(ctx, t0); err != nil {
		return nil, err
	}
	res.Complete = w.Complete
	res.Samples = w.Samples
	res.Kills = len(w.Kills())
	res.KillLog = w.Kills()
	if crashed := run.Fleet.Crashed(); len(crashed) > 0 {
		res.Notes = append(res.Notes, "processes that exited on their own:\n"+strings.Join(crashed, "\n"))
	}
	res.LoadAvg[1] = loadAvg()
	res.Machine[0] = sampleMachine().since(before)
	res.HugePages = run.hugePages()
	res.ServerTime = readServerTime(ctx, run.rdb, conn, 8)
	// What was delivered lives in the processes (the fake's receipts, the
	// deliverers' send counters): read it before they go.
	got, sends, err := delivered(ctx, run, id)
	if err != nil {
		return nil, err
	}
	if run.Fake != nil {
		s, err := run.Fake.Summary(ctx)
		if err == nil {
			res.Fake = &s
		}
	}
	run.StopProcs()

	logf("measuring the floor (one COPY of the recipients' tokens)")
	before = sampleMachine()
	floor, err := measureFloor(ctx, conn, cfg.Seed.App, channels)
	if err != nil {
		return nil, err
	}
	res.FloorMs = floor.Milliseconds()
	res.Machine[1] = sampleMachine().since(before)

	logf("verifying against PostgreSQL")
	if err := verify(ctx, res, run, conn, cfg, id, got, sends); err != nil {
		return nil, err
	}
	res.summarize(w, t0)
	if err := WriteChart(res.Chart, res.Samples, t0); err != nil {
		res.Notes = append(res.Notes, "chart: "+err.Error())
	}
	return res, nil
}

// delivered reads what reached the sink: the fake's receipts of the
// campaign, or for the null sink the sent marks and the send counters.
func delivered(ctx context.Context, run *Running, id string) ([]mark, sendCount, error) {
	if run.Fake != nil {
		got, err := receiptMarks(ctx, run.Fake.client, run.Fake.URL, id)
		if err == nil {
			// A token the provider got twice: keep its receipts for a look.
			err = writeRepeats(ctx, run.Fake.client, run.Fake.URL, id, got, filepath.Join(run.Fleet.LogDir, "repeats.ndjson"))
		}
		return got, sendCount{}, err
	}
	sends := run.DeliverSends(ctx)
	maxID, err := maxDeviceID(ctx, run.db)
	if err != nil {
		return nil, sends, err
	}
	got, err := sentMarks(ctx, run.rdb, run.Keys, id, maxID)
	return got, sends, err
}

// verify fills the missing/duplicate counts.
func verify(ctx context.Context, res *Result, run *Running, conn *pgx.Conn, cfg Config, id string, got []mark, sends sendCount) error {
	expected, err := expectedMarks(ctx, conn, cfg.Seed.App, cfg.Seed.ChannelNames(), res.Devices, run.Fake == nil)
	if err != nil {
		return err
	}
	v := compare(expected, got)
	if run.Fake == nil {
		// Marks are a set: repeats show only in the deliverers' send counters.
		v.Delivered = sends.sent
		v.ProviderDuplicates = max(0, sends.sent-v.Unique)
		note := "null sink: delivered = deliver's pushpipe_deliver_sends_total{outcome=\"sent\"} summed over the deliverers at the end, compared with the sent marks in Redis"
		if sends.incomplete {
			note += "; some deliverers were killed, so their counts are lost and repeats may be undercounted"
		}
		res.Notes = append(res.Notes, note)
	}
	v.DeliverEntries, v.DedupeDuplicates, err = deliverUsers(ctx, run.rdb, run.Keys, id)
	if err != nil {
		return err
	}
	res.Verification = v
	res.Missing = v.Missing
	res.ProviderDuplicates = v.ProviderDuplicates
	for _, k := range res.KillLog {
		if k.Role == "deliver" || k.Role == "all" {
			res.ProviderDuplicatesAllowed += int64(run.InFlight)
		}
	}
	res.Duplicates = v.DedupeDuplicates + max(0, v.ProviderDuplicates-res.ProviderDuplicatesAllowed)
	return nil
}

// loadAvg is the 1-minute load average (0 if unknown).
func loadAvg() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}

// localized is the bench campaign's notification object with a text per
// locale (nil without locales: a campaign of title and body alone).
func localized(locales []string) json.RawMessage {
	if len(locales) == 0 {
		return nil
	}
	type text struct {
		Title string `json:"title"`
		Body  string `json:"body"`
	}
	n := struct {
		text
		Localized map[string]text `json:"localized"`
	}{text: text{"Benchmark", "One notification to every subscriber"}, Localized: map[string]text{}}
	for _, l := range locales {
		n.Localized[l] = text{"Benchmark (" + l + ")", "One notification to every subscriber, in " + l}
	}
	b, _ := json.Marshal(n)
	return b
}
