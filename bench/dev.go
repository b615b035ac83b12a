package bench

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pushpipe/pushpipe/pipeline/campaign"
)

// The demo's app and channels: the README's commands use them.
const DemoApp = "demo"

var DemoChannels = []string{"news", "sports", "weather"}

// devPrefix is dev's Redis key prefix: the CLI's default, so `pushpipe
// status` in another shell sees it.
const devPrefix = "pp"

// DevConfig is `pushpipe dev`: the bench's launcher at demo size, kept
// running as a local pushpipe.
type DevConfig struct {
	Servers    ServerConfig // RedisAddr/DatabaseURL empty: started here, data under DataDir
	Bin        string       // default os.Executable()
	Users      int64        // demo users seeded into an empty database
	Listen     string       // the API's address
	Partitions int
	Once       bool      // exit after the demo campaign's summary
	Out        io.Writer // what the user reads
	Progress   bool      // redraw the progress line in place (a terminal)
}

// Dev starts everything, sends the demo campaign, prints its summary and
// serves the API until ctx ends (or returns after the summary with Once).
func Dev(ctx context.Context, cfg DevConfig) error {
	if cfg.Bin == "" {
		bin, err := os.Executable()
		if err != nil {
			return err
		}
		cfg.Bin = bin
	}
	out := cfg.Out
	say := func(format string, args ...any) { fmt.Fprintf(out, format+"\n", args...) }
	logDir := filepath.Join(cfg.Servers.DataDir, "logs")
	if cfg.Servers.DataDir == "" {
		logDir = filepath.Join(os.TempDir(), "pushpipe-dev-logs")
	}

	st, err := loadDevState(cfg.Servers.DataDir)
	if err != nil {
		return err
	}
	// A shell that sourced DATA/env hands dev its own earlier servers back:
	// start them again (on the same ports) rather than wait for them.
	if cfg.Servers.RedisAddr != "" && cfg.Servers.RedisAddr == st.redisAddr() {
		cfg.Servers.RedisAddr = ""
	}
	if st.ownsDatabase(cfg.Servers.DatabaseURL) {
		cfg.Servers.DatabaseURL = ""
	}
	cfg.Servers.RedisPort, cfg.Servers.PostgresPort = st.RedisPort, st.PostgresPort
	startRedis, startPostgres := cfg.Servers.RedisAddr == "", cfg.Servers.DatabaseURL == ""
	if dir := cfg.Servers.DataDir; dir != "" {
		// The data dir holds the Redis AOF (device tokens), the logs and,
		// for a normal user, PostgreSQL's files: its owner's only.
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return err
		}
		if err := os.Chmod(dir, 0o700); err != nil {
			return err
		}
		release, err := lockDevDir(dir)
		if err != nil {
			return err
		}
		defer release()
		if err := listenFree(cfg.Listen); err != nil {
			return err
		}
		if startPostgres && cfg.Servers.PostgresDir == "" {
			pg, note, err := DevPostgresDir(dir)
			if err != nil {
				return fmt.Errorf("start postgres: %w", err)
			}
			cfg.Servers.PostgresDir = pg
			if note != "" {
				say("%s", note)
			}
		}
		if startRedis {
			say("starting Redis, data in %s", filepath.Join(dir, "redis"))
		}
		if startPostgres {
			say("starting PostgreSQL, data in %s", cfg.Servers.PostgresDir)
		}
	}
	srv, err := StartServers(ctx, cfg.Servers)
	if err != nil {
		return err
	}
	defer srv.Close()

	seed := SeedConfig{App: DemoApp, Users: cfg.Users, Names: DemoChannels, Overlap: 0.2, TwoDevices: 0.2}
	if err := seedIfEmpty(ctx, srv.DatabaseURL, seed, say); err != nil {
		return err
	}

	adminToken, appKey := st.AdminToken, st.AppKey
	run, err := Launch(ctx, LaunchConfig{
		Servers: srv, Bin: cfg.Bin, LogDir: logDir, Prefix: devPrefix, Partitions: cfg.Partitions,
		Replicas: DefaultReplicas, ClaimIdle: 10 * time.Second, Sink: SinkFake, TPS: 10000, App: seed.App,
	})
	if err != nil {
		return err
	}
	defer run.Stop()
	api, err := run.Fleet.Add("api", "api", true,
		// PUSHPIPE_DEV: the API's 422 of an unknown app names the app
		// seeded, not PUSHPIPE_APP_KEYS, which dev sets here itself.
		[]string{"PUSHPIPE_ADMIN_TOKEN=" + adminToken, "PUSHPIPE_APP_KEYS=" + seed.App + "=" + appKey, "PUSHPIPE_DEV=1"},
		"--listen", cfg.Listen)
	if err != nil {
		return err
	}
	if err := run.Fleet.WaitReady(ctx, time.Minute); err != nil {
		return err
	}
	if err := waitHTTP(ctx, "http://"+cfg.Listen+"/v1/campaigns/none", 30*time.Second); err != nil {
		return fmt.Errorf("api: %w\n%s", err, api.LogTail(2000))
	}
	envFile := ""
	if dir := cfg.Servers.DataDir; dir != "" {
		if startRedis {
			st.RedisPort = portOf(srv.RedisAddr)
		}
		if startPostgres {
			st.PostgresPort = urlPort(srv.DatabaseURL)
		}
		if err := st.save(dir); err != nil {
			return err
		}
		env := devEnv{Redis: srv.RedisEnv(), DatabaseURL: srv.DatabaseURL, API: "http://" + cfg.Listen,
			Prefix: devPrefix, App: seed.App, Partitions: run.Keys.Partitions, State: st}
		if envFile, err = env.write(dir); err != nil {
			return err
		}
	}
	say("")
	say("pushpipe is running: %d processes (logs in %s)", len(run.Fleet.Procs()), logDir)
	say("  API            http://%s", cfg.Listen)
	say("  admin token    %s", adminToken)
	say("  console        http://%s/ui/  (sign in with the admin token)", cfg.Listen)
	say("  app key        %s=%s  (for /v1/devices of app %q)", seed.App, appKey, seed.App)
	say("  Redis          %s", srv.RedisAddr)
	say("  PostgreSQL     %s", srv.DatabaseURL)
	say("  fake provider  %s/_receipts/summary", run.Fake.URL)
	if envFile != "" {
		say("")
		say("In another shell, to use the CLI and curl against it (the same ports and tokens every run):")
		wd, err := os.Getwd()
		if err != nil {
			return err
		}
		for _, l := range secondShell(wd, envFile, cfg.Bin, seed.App) {
			say("  %s", l)
		}
	}
	if startRedis || startPostgres {
		// Both are for this machine only: see localserver.Redis and
		// localserver.Postgres.
		say("")
		say("Redis and PostgreSQL started here listen on 127.0.0.1 only, without passwords (Redis has no auth,")
		say("PostgreSQL trusts user postgres): any user of this machine can connect to them. Their files,")
		say("device tokens included, are readable by their owner only (directories 0700, files 0600).")
	}
	say("")

	conn, err := pgx.Connect(ctx, srv.DatabaseURL)
	if err != nil {
		return err
	}
	truth, err := countTruth(ctx, conn, seed.App, seed.ChannelNames())
	conn.Close(context.WithoutCancel(ctx))
	if err != nil {
		return err
	}
	id := "demo-" + time.Now().Format("20060102-150405")
	say("sending demo campaign %s to channels %v: %d people, %d devices", id, seed.ChannelNames(), truth.Recipients, truth.Devices)
	w := &Watch{Run: run, Campaign: id, Expected: truth, Timeout: 5 * time.Minute, Stall: time.Minute}
	if cfg.Progress {
		w.Progress = out
	} else {
		w.Lines, w.LinesEvery = out, 2*time.Second
	}
	t0, err := run.Trigger(ctx, campaign.Campaign{ID: id, App: seed.App, Channels: seed.ChannelNames(),
		Title: "Hello from pushpipe", Body: "The demo campaign"})
	if err != nil {
		return err
	}
	if err := w.Wait(ctx, t0); err != nil {
		return err
	}
	rep, err := campaign.Progress(ctx, run.rdb, run.db, run.Keys, id)
	if err != nil {
		return err
	}
	got, _, err := delivered(ctx, run, id)
	if err != nil {
		return err
	}
	say("")
	say("campaign %s: %s", id, rep.State)
	say("  targets %d people, %d duplicates suppressed, %d muted", rep.Targets, rep.DuplicatesSuppressed, rep.Muted)
	say("  sent %d devices, failed %d, invalid tokens %d", rep.Sent, rep.Failed, rep.InvalidTokens)
	if rep.FirstSendMs > 0 {
		say("  first send after %d ms, last after %d ms", rep.FirstSendMs-t0.UnixMilli(), rep.LastSendMs-t0.UnixMilli())
	}
	say("  the fake provider accepted %d requests for %d distinct devices (expected %d)", len(got), countUnique(got), truth.Devices)
	say("  GET http://%s/v1/campaigns/%s with the admin token shows it too", cfg.Listen, id)
	switch {
	case rep.State != campaign.StateDone:
		return fmt.Errorf("the demo campaign did not finish: it is %s (logs in %s)", rep.State, logDir)
	case !w.Complete:
		// Said apart: the campaign is done, and what is left is work its
		// stages still hold (pushpipe status shows which).
		return fmt.Errorf("the demo campaign is done, but its stages still hold entries (pushpipe status shows them; logs in %s)", logDir)
	}
	if cfg.Once {
		return nil
	}
	say("")
	say("serving the API until Ctrl-C (a process that ends is started again)")
	supervise(ctx, run.Fleet, superviseEvery, say)
	say("stopping")
	return nil
}

// listenFree refuses, before anything starts, an API address that another
// program holds: dev found out after starting the servers, seeding and
// starting every stage, and said only "bind: address already in use". A
// check, not a hold: what takes the port meanwhile still fails the API.
func listenFree(addr string) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("the API's address %s: %w: stop what listens there, or give dev another "+
			"(make dev DEV_FLAGS='--listen 127.0.0.1:8081', or pushpipe dev --listen)", addr, err)
	}
	return l.Close()
}

// secondShell is what dev tells a user to type in another shell, run in
// wd: a cd there, then the env file and the binary as wd sees them. `make
// -C clone dev` (or make -f) from another directory printed "source
// .pushpipe/env" and "./pushpipe", relative to the clone, where the
// user's shell was not.
func secondShell(wd, envFile, bin, app string) []string {
	rel := func(p string) string {
		if r, err := filepath.Rel(wd, p); err == nil && r != ".." && !strings.HasPrefix(r, "../") {
			return r
		}
		return p
	}
	b := rel(bin)
	if !strings.Contains(b, "/") {
		b = "./" + b // a name alone would be looked up in PATH
	}
	b = shellQuote(b)
	return []string{
		"cd " + shellQuote(wd) + " && source " + shellQuote(rel(envFile)),
		fmt.Sprintf(`%s send --app %s --channel sports --title "Goal!" --wait; %s status`, b, app, b),
		`curl -H "Authorization: Bearer $PUSHPIPE_ADMIN_TOKEN" $PUSHPIPE_API/v1/campaigns/ID   (docs/API.md: every call)`,
	}
}

// relPath is path relative to the working directory when it is under it.
func relPath(path string) string {
	wd, err := os.Getwd()
	if err != nil {
		return path
	}
	if rel, err := filepath.Rel(wd, path); err == nil && !strings.HasPrefix(rel, "..") {
		return rel
	}
	return path
}

// seedIfEmpty seeds the demo population into an empty database only: dev's
// database persists, and devices registered through the API stay.
func seedIfEmpty(ctx context.Context, url string, seed SeedConfig, say func(string, ...any)) error {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var any bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM devices) OR EXISTS (SELECT 1 FROM subscriptions)`).Scan(&any); err != nil {
		return fmt.Errorf("look at the demo data: %w", err)
	}
	if any {
		say("reusing the data already in PostgreSQL")
		return nil
	}
	res, err := Seed(ctx, url, seed)
	if err != nil {
		return err
	}
	say("seeded %d demo users (%d devices) in %v", res.Users, res.Devices, res.Took.Round(time.Millisecond))
	return nil
}

func countUnique(ms []mark) int {
	n := 0
	for i := range ms {
		if i == 0 || ms[i] != ms[i-1] {
			n++
		}
	}
	return n
}

// waitHTTP waits until url answers at all (any status).
func waitHTTP(ctx context.Context, url string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	client := &http.Client{Timeout: time.Second}
	for {
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}
