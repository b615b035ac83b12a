package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/mattn/go-isatty"

	"github.com/pushpipe/pushpipe/bench"
	"github.com/pushpipe/pushpipe/pipeline"
)

// BenchCmd runs the whole pipeline as separate processes on a synthetic
// population, sends one campaign, and measures and verifies it.
type BenchCmd struct {
	Users      int64    `default:"1000000" help:"People to seed (user ids 1..N)."`
	Channels   int      `default:"3" help:"Channels; the campaign targets all of them."`
	Overlap    float64  `default:"0.2" help:"Share of users subscribed to a second channel (dedupe must drop the repeat)."`
	TwoDevices float64  `name:"two-devices" default:"0.2" help:"Share of users with a second device."`
	IOS        float64  `name:"ios" default:"0.45" help:"Share of devices that are iOS (the rest Android)."`
	Locales    []string `name:"locales" help:"Spread these locales over the devices and send the campaign a text per locale, e.g. ko-KR,pt-BR,en-US (the localized-campaign benchmark)."`

	Sink         string        `enum:"null,fake" default:"null" help:"null: deliver's in-process null sender (the pipeline alone); fake: the fake provider process over HTTP/2 TLS."`
	RedisCluster int           `name:"redis-cluster" help:"Start a Redis Cluster of this many masters instead of one server."`
	Replicas     string        `help:"Processes per stage, e.g. deliver=3,resolve=2 (default: each row's Replicas in pipeline.Stages)."`
	StageArgs    []string      `name:"stage-args" placeholder:"STAGE=FLAGS" help:"Extra flags for a stage's processes, e.g. --stage-args 'deliver=--in-flight 512'. Repeatable."`
	ClaimIdle    time.Duration `name:"claim-idle" help:"Every stage's --claim-idle (default 10s, 3s with --chaos)."`
	TPS          int           `name:"tps" help:"deliver's cluster-wide --tps (0: no cap)."`
	AllInOne     bool          `name:"all-in-one" help:"Run one 'pushpipe all' process (API and every stage) instead of a process per stage replica."`
	Chaos        bool          `help:"SIGKILL a random stage process every --chaos-every and restart it."`
	ChaosEvery   time.Duration `name:"chaos-every" default:"3s" help:"Time between chaos kills."`
	Timeout      time.Duration `default:"10m" help:"Give up waiting for the campaign after this."`
	SeedOnly     bool          `name:"seed-only" hidden:"" help:"Stop after seeding (to time it)."`
	Pprof        time.Duration `name:"pprof" hidden:"" help:"CPU-profile every stage process this long after the trigger (files in --out)."`

	Messages     bool          `help:"Benchmark direct messages instead: --rate messages/s of --recipients users each for --messages-for, latency from acceptance to the fake provider's receipt (implies --sink fake)."`
	Rate         int           `default:"200" help:"With --messages: messages a second."`
	Recipients   int           `default:"50" help:"With --messages: users per message."`
	MessagesFor  time.Duration `name:"messages-for" default:"60s" help:"With --messages: how long to send them."`
	Warmup       time.Duration `default:"5s" help:"With --messages: first send messages at --rate this long, not counted (fresh processes' connections and first sends)."`
	FloorFor     time.Duration `name:"floor-for" default:"20s" help:"With --messages: afterwards, with the stages stopped, send the same messages at the same rate straight to the same fake through deliver's provider clients this long, and report that floor and the messages' ratios to it (0 skips it)."`
	WithCampaign int64         `name:"with-campaign" placeholder:"USERS" help:"With --messages: seed USERS users and send them a campaign beside the messages; its sends/s are measured alone for 10 s first."`

	Out      string `placeholder:"DIR" help:"Directory for process logs, profiles and the chart (default: a new temp dir)."`
	JSON     string `name:"json" placeholder:"FILE" help:"Write the results as JSON."`
	Chart    string `placeholder:"FILE.png" help:"Write the chart here (default: DIR/bench.png)."`
	Markdown string `placeholder:"FILE" help:"Also write the Markdown table to this file."`
}

// Validate refuses the sizes no benchmark can have: --users -3 seeded
// "-3 users", nothing, and went on to time a campaign to nobody.
func (c *BenchCmd) Validate() error {
	var errs []error
	atLeast := func(flag string, v, min int64) {
		if v < min {
			errs = append(errs, fmt.Errorf("%s: must be at least %d, got %d", flag, min, v))
		}
	}
	atLeast("--users", c.Users, 1)
	atLeast("--channels", int64(c.Channels), 1)
	atLeast("--rate", int64(c.Rate), 1)
	atLeast("--recipients", int64(c.Recipients), 1)
	atLeast("--with-campaign", c.WithCampaign, 0)
	atLeast("--tps", int64(c.TPS), 0)
	atLeast("--redis-cluster", int64(c.RedisCluster), 0)
	for _, s := range []struct {
		flag string
		v    float64
	}{{"--overlap", c.Overlap}, {"--two-devices", c.TwoDevices}, {"--ios", c.IOS}} {
		if s.v < 0 || s.v > 1 {
			errs = append(errs, fmt.Errorf("%s: must be a share from 0 to 1, got %g", s.flag, s.v))
		}
	}
	// Before Redis and PostgreSQL are started: a --timeout of -1s gave up
	// at once, after seeding, and --replicas was read only after both
	// servers started (exit 1).
	for _, d := range []struct {
		flag     string
		v        time.Duration
		zeroOK   bool
		zeroMean string
	}{{"--timeout", c.Timeout, false, ""}, {"--chaos-every", c.ChaosEvery, false, ""}, {"--messages-for", c.MessagesFor, false, ""},
		{"--claim-idle", c.ClaimIdle, true, "the default"}, {"--warmup", c.Warmup, true, "none"}, {"--floor-for", c.FloorFor, true, "no floor"}} {
		if d.v < 0 || d.v == 0 && !d.zeroOK {
			zero := ""
			if d.zeroOK {
				zero = " (or 0 for " + d.zeroMean + ")"
			}
			errs = append(errs, fmt.Errorf("%s: must be a positive duration such as 30s%s, got %v", d.flag, zero, d.v))
		}
	}
	// A kill every nanosecond, or a claim-idle the stages refuse
	// (StageFlags.Validate) once the servers are up and seeded.
	if c.ChaosEvery > 0 && c.ChaosEvery < minInterval {
		errs = append(errs, fmt.Errorf("--chaos-every: must be %v or more, such as 3s (a stage process is killed and restarted each time), got %v", minInterval, c.ChaosEvery))
	}
	if c.ClaimIdle > 0 && c.ClaimIdle < pipeline.MinClaimIdle {
		errs = append(errs, fmt.Errorf("--claim-idle: must be %v or more, such as 10s (or 0 for the default), got %v", pipeline.MinClaimIdle, c.ClaimIdle))
	}
	if _, err := parseReplicas(c.Replicas); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Run benchmarks and exits non-zero when verification fails.
func (c *BenchCmd) Run(g *Globals) error {
	reps, err := parseReplicas(c.Replicas)
	if err != nil {
		return err
	}
	redisAuth, err := g.RedisConfig()
	if err != nil {
		return err
	}
	stageArgs := map[string][]string{}
	for _, sa := range c.StageArgs {
		stage, args, ok := strings.Cut(sa, "=")
		if !ok {
			return fmt.Errorf("--stage-args %q: want STAGE=FLAGS", sa)
		}
		stageArgs[stage] = append(stageArgs[stage], strings.Fields(args)...)
	}
	if c.Out != "" {
		if err := os.MkdirAll(c.Out, 0o755); err != nil {
			return err
		}
	}
	tty := isatty.IsTerminal(os.Stderr.Fd())
	cfg := bench.Config{
		Servers: bench.ServerConfig{RedisAddr: givenRedis(g), RedisAuth: redisAuth, DatabaseURL: g.DatabaseURL, RedisCluster: c.RedisCluster},
		Seed: bench.SeedConfig{Users: c.Users, Channels: c.Channels, Overlap: c.Overlap, TwoDevices: c.TwoDevices,
			IOSShare: c.IOS, Locales: c.Locales},
		Sink: c.Sink, Replicas: reps, StageArgs: stageArgs, Partitions: g.Partitions, ClaimIdle: c.ClaimIdle,
		TPS: c.TPS, SeedOnly: c.SeedOnly, AllInOne: c.AllInOne, Chaos: c.Chaos, ChaosEvery: c.ChaosEvery, Timeout: c.Timeout, Pprof: c.Pprof,
		OutDir: c.Out, Chart: c.Chart, Log: os.Stderr,
	}
	if tty {
		cfg.Progress = os.Stderr
	}
	if c.Messages {
		if c.WithCampaign > 0 {
			cfg.Seed.Users = c.WithCampaign
		}
		mres, err := bench.RunMessages(g.Context(), cfg, bench.MessagesConfig{Rate: c.Rate, Recipients: c.Recipients,
			Duration: c.MessagesFor, WithCampaign: c.WithCampaign > 0, Baseline: 10 * time.Second, Warmup: c.Warmup,
			FloorFor: c.FloorFor})
		if err != nil {
			return err
		}
		mres.WriteMarkdown(os.Stdout)
		return c.writeFiles(mres)
	}
	res, err := bench.Run(g.Context(), cfg)
	if err != nil || c.SeedOnly {
		return err
	}
	res.WriteMarkdown(os.Stdout)
	fmt.Fprintf(os.Stdout, "\nchart: %s\nlogs: %s\n", res.Chart, res.OutDir)
	if err := c.writeFiles(res); err != nil {
		return err
	}
	if !res.OK() {
		return errors.New("bench: verification failed (see missing / duplicates / complete above)")
	}
	return nil
}

// report is a benchmark's result as the files --json and --markdown ask
// for: a campaign's (bench.Result) or the messages' (bench.MessagesResult).
type report interface {
	WriteMarkdown(io.Writer)
	WriteJSON(path string) error
}

// writeFiles writes r to --markdown and --json, when given. Both kinds of
// run write them: --messages printed its table and ignored both flags, and
// a script that read FILE found nothing, or the last campaign run's.
func (c *BenchCmd) writeFiles(r report) error {
	if c.Markdown != "" {
		f, err := os.Create(c.Markdown)
		if err != nil {
			return fmt.Errorf("--markdown: %w", err)
		}
		r.WriteMarkdown(f)
		if err := f.Close(); err != nil {
			return fmt.Errorf("--markdown: %w", err)
		}
	}
	if c.JSON != "" {
		if err := os.MkdirAll(filepath.Dir(c.JSON), 0o755); err != nil {
			return fmt.Errorf("--json: %w", err)
		}
		if err := r.WriteJSON(c.JSON); err != nil {
			return fmt.Errorf("--json: %w", err)
		}
	}
	return nil
}

// parseReplicas reads "stage=n,stage=n".
func parseReplicas(s string) (map[string]int, error) {
	out := map[string]int{}
	for _, kv := range strings.Split(s, ",") {
		if kv = strings.TrimSpace(kv); kv == "" {
			continue
		}
		k, v, ok := strings.Cut(kv, "=")
		n, err := strconv.Atoi(v)
		if !ok || err != nil || n < 0 {
			return nil, fmt.Errorf("--replicas %q: want stage=count", kv)
		}
		out[k] = n
	}
	return out, nil
}

// givenRedis is the Redis address the user configured, or "" to start one:
// Globals' default address is for the stages, not a reason for the bench
// and dev to use whatever listens on 6379.
func givenRedis(g *Globals) string {
	if os.Getenv("PUSHPIPE_REDIS_ADDR") != "" {
		return g.RedisAddr
	}
	for _, a := range os.Args[1:] {
		if a == "--redis-addr" || strings.HasPrefix(a, "--redis-addr=") {
			return g.RedisAddr
		}
	}
	return ""
}
