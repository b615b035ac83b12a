package bench

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/stages/deliver"
)

// LaunchConfig is how to start the pipeline's processes.
type LaunchConfig struct {
	Servers    *Servers
	Bin        string
	LogDir     string
	Prefix     string // Redis key prefix
	Partitions int
	Replicas   map[string]int
	StageArgs  map[string][]string // by stage; "all" under AllInOne (its spelling: --split-range-size)
	ClaimIdle  time.Duration
	Sink       string
	TPS        int
	App        string
	FakeArgs   []string // extra fakeprovider flags
	Pprof      bool     // serve /debug/pprof on every ops port
	// AllInOne runs `pushpipe all` (API and every stage in one process)
	// instead of a process per stage replica.
	AllInOne bool
	Env      []string // more environment for every process
}

// stageOrder starts consumers downstream first (the stage table
// backwards), so no stage's output waits for its reader's group to exist.
var stageOrder = func() []string {
	out := make([]string, 0, len(pipeline.Stages))
	for i := len(pipeline.Stages) - 1; i >= 0; i-- {
		out = append(out, pipeline.Stages[i].Name)
	}
	return out
}()

// Launch starts the fake provider (for the fake sink) and every stage's
// replicas as separate `pushpipe <stage>` processes, and waits until each
// answers /readyz.
func Launch(ctx context.Context, cfg LaunchConfig) (*Running, error) {
	if err := os.MkdirAll(cfg.LogDir, 0o755); err != nil {
		return nil, err
	}
	keys := pipeline.NewKeys(cfg.Prefix, cfg.Partitions)
	env := append(cfg.Servers.RedisEnv(),
		"PUSHPIPE_DATABASE_URL="+cfg.Servers.DatabaseURL,
		"PUSHPIPE_PARTITIONS="+strconv.Itoa(cfg.Partitions),
		"PUSHPIPE_PREFIX="+keys.Prefix,
		"PUSHPIPE_LOG_LEVEL=warn",
	)
	env = append(env, cfg.Env...)
	if cfg.Pprof {
		env = append(env, "PUSHPIPE_PPROF=1")
	}
	r := &Running{Fleet: &Fleet{Bin: cfg.Bin, LogDir: cfg.LogDir, Env: env}, Keys: keys, servers: cfg.Servers, InFlight: deliver.DefaultInFlight}
	fail := func(err error) (*Running, error) {
		r.Stop()
		return nil, err
	}
	var err error
	if r.rdb, err = pipeline.NewRedisConfig(cfg.Servers.RedisConfig()); err != nil {
		return fail(err)
	}
	if r.db, err = pgxpool.New(ctx, cfg.Servers.DatabaseURL); err != nil {
		return fail(fmt.Errorf("connect to PostgreSQL: %w", err))
	}

	deliverArgs := []string{"--sink", "null"}
	if cfg.Sink == SinkFake {
		if r.Fake, err = StartFake(ctx, r.Fleet, cfg.LogDir, cfg.FakeArgs...); err != nil {
			return fail(err)
		}
		deliverArgs = append([]string{"--sink", "providers"}, r.Fake.DeliverArgs(cfg.App)...)
	}
	deliverArgs = append(deliverArgs, "--tps", strconv.Itoa(cfg.TPS))
	if i := slices.Index(cfg.StageArgs["deliver"], "--in-flight"); i >= 0 && i+1 < len(cfg.StageArgs["deliver"]) {
		r.InFlight, _ = strconv.Atoi(cfg.StageArgs["deliver"][i+1])
	}
	if cfg.AllInOne {
		args := append([]string{"--listen", "127.0.0.1:0", "--insecure-no-auth", "--claim-idle", cfg.ClaimIdle.String()}, deliverArgs...)
		args = append(args, cfg.StageArgs["all"]...)
		var env []string
		if r.Fake != nil {
			env = r.Fake.Env()
		}
		if _, err := r.Fleet.Add("all", "all", true, env, args...); err != nil {
			return fail(err)
		}
	}
	for _, stage := range stageOrder {
		if cfg.AllInOne {
			break
		}
		n := cfg.Replicas[stage]
		args := []string{"--claim-idle", cfg.ClaimIdle.String()}
		if stage == "deliver" {
			args = append(args, deliverArgs...)
		}
		args = append(args, cfg.StageArgs[stage]...)
		var env []string
		if stage == "deliver" && r.Fake != nil {
			env = r.Fake.Env()
		}
		for i := 1; i <= n; i++ {
			name := fmt.Sprintf("%s-%d", stage, i)
			if _, err := r.Fleet.Add(name, stage, true, env, append([]string{"--consumer", name}, args...)...); err != nil {
				return fail(err)
			}
		}
	}
	if err := r.Fleet.WaitReady(ctx, time.Minute); err != nil {
		return fail(err)
	}
	return r, nil
}

// PIDs are the current process ids of the stages and the servers.
func (r *Running) PIDs() map[string]int {
	out := map[string]int{}
	for _, p := range r.Fleet.Procs() {
		out[p.Name] = p.PID()
	}
	for name, pid := range r.servers.PIDs {
		out[name] = pid
	}
	return out
}

// hugePages is whether each server's memory is in huge pages (hugePages).
func (r *Running) hugePages() map[string]string {
	out := map[string]string{}
	for name, pid := range r.servers.PIDs {
		out[name] = hugePages(pid)
	}
	return out
}

// usage reads every process's usage now: the pipeline's, the servers'
// (PostgreSQL with its backends) and the bench's own (role "bench").
func (r *Running) usage() map[string]ProcUsage {
	pids := r.PIDs()
	pids["bench"] = os.Getpid()
	return usageOf(pids, map[string]bool{"postgres": true})
}

// cpuShares is each role's CPU between two usage readings d apart, in
// percent of a core; a process restarted in between counts from zero.
func (r *Running) cpuShares(before, after map[string]ProcUsage, d time.Duration) map[string]float64 {
	role := map[string]string{}
	for _, p := range r.Fleet.Procs() {
		role[p.Name] = p.Role
	}
	out := map[string]float64{}
	for name, u := range after {
		used := u.CPUSeconds
		if b, ok := before[name]; ok && b.CPUSeconds <= used {
			used -= b.CPUSeconds
		}
		out[cmp.Or(role[name], name)] += 100 * used / d.Seconds()
	}
	return out
}

// sendCount is what the deliverers' metrics say they sent.
type sendCount struct {
	sent       int64
	incomplete bool // a deliverer did not answer or had been restarted
}

// DeliverSends sums pushpipe_deliver_sends_total{outcome="sent"} over the
// deliver processes.
func (r *Running) DeliverSends(ctx context.Context) sendCount {
	var sc sendCount
	for _, p := range r.Fleet.Stages("deliver") {
		n, err := scrapeCounter(ctx, p.HTTP, "pushpipe_deliver_sends_total", `outcome="sent"`)
		if err != nil || p.Restarts() > 0 {
			sc.incomplete = true
		}
		sc.sent += int64(n)
	}
	return sc
}

// ExpressWait sums deliver's pushpipe_deliver_express_wait_seconds over the
// deliver processes; nil if one did not answer.
func (r *Running) ExpressWait(ctx context.Context) buckets {
	sum := buckets{}
	for _, p := range r.Fleet.Stages("deliver") {
		b, err := scrapeBuckets(ctx, p.HTTP, "pushpipe_deliver_express_wait_seconds")
		if err != nil || len(b) == 0 {
			return nil
		}
		sum.add(b)
	}
	return sum
}

// InFlightOf reads a deliverer's pushpipe_deliver_in_flight gauge.
func InFlightOf(ctx context.Context, p *Proc) (int64, error) {
	n, err := scrapeCounter(ctx, p.HTTP, "pushpipe_deliver_in_flight", "")
	return int64(n), err
}

// scrapeCounter sums the samples of a metric whose labels contain match.
func scrapeCounter(ctx context.Context, addr, name, match string) (float64, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var sum float64
	found := false
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name) || !strings.Contains(line, match) {
			continue
		}
		rest := line[len(name):]
		if rest == "" || (rest[0] != '{' && rest[0] != ' ') {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err == nil {
			sum += v
			found = true
		}
	}
	if !found {
		return 0, errors.New(name + " not found")
	}
	return sum, sc.Err()
}

// Profile takes a CPU profile of every stage process for d, written to
// dir/<process>.cpu.pprof (needs LaunchConfig.Pprof).
func (r *Running) Profile(ctx context.Context, d time.Duration, dir string) {
	var wg sync.WaitGroup
	for _, p := range r.Fleet.Procs() {
		if p.HTTP == "" {
			continue
		}
		wg.Go(func() {
			url := fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", p.HTTP, int(d.Seconds()))
			ctx, cancel := context.WithTimeout(ctx, d+30*time.Second)
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return
			}
			f, err := os.Create(filepath.Join(dir, p.Name+".cpu.pprof"))
			if err != nil {
				return
			}
			defer f.Close()
			f.ReadFrom(resp.Body)
		})
	}
	wg.Wait()
}
