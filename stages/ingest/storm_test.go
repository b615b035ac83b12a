package ingest_test

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/rueidis"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/devices"
	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
	"github.com/pushpipe/pushpipe/pipeline/schema"
)

// stormConfig sizes the app-open storm; every knob has an environment
// variable so the 1M run is the same command:
//
//	go test ./stages/ingest -run XXX -bench Storm -benchtime 1x                      # 200k, ~1-2 min
//	PUSHPIPE_STORM_N=1000000 go test ./stages/ingest -run XXX -bench Storm -benchtime 1x -timeout 30m
type stormConfig struct {
	N       int  // registrations (PUSHPIPE_STORM_N, default 200,000)
	Clients int  // concurrent HTTP clients (PUSHPIPE_STORM_CLIENTS, default 200)
	Batch   int  // devices per batch request (PUSHPIPE_STORM_BATCH, default 100)
	DBConns int  // ingest pool size and floor workers (PUSHPIPE_STORM_DB_CONNS, default 4)
	Durable bool // PostgreSQL fsync + synchronous_commit (PUSHPIPE_STORM_DURABLE, default 1)
	AOF     bool // Redis appendonly everysec (PUSHPIPE_STORM_AOF, default 0)

	IngestBatch int // the ingest stage's --batch (PUSHPIPE_STORM_INGEST_BATCH, default 5000 as pushpipe ingest)
	IngestConc  int // the ingest stage's --concurrency (PUSHPIPE_STORM_INGEST_CONCURRENCY, default 4 as pushpipe ingest)
}

func stormFromEnv() stormConfig {
	num := func(k string, def int) int {
		if n, err := strconv.Atoi(os.Getenv(k)); err == nil && n > 0 {
			return n
		}
		return def
	}
	return stormConfig{
		N: num("PUSHPIPE_STORM_N", 200_000), Clients: num("PUSHPIPE_STORM_CLIENTS", 200),
		Batch: num("PUSHPIPE_STORM_BATCH", 100), DBConns: num("PUSHPIPE_STORM_DB_CONNS", 4),
		Durable: os.Getenv("PUSHPIPE_STORM_DURABLE") != "0", AOF: os.Getenv("PUSHPIPE_STORM_AOF") == "1",
		IngestBatch: num("PUSHPIPE_STORM_INGEST_BATCH", 5000), IngestConc: num("PUSHPIPE_STORM_INGEST_CONCURRENCY", 4),
	}
}

const stormApp = "storm"

// stormEvent is one registration of the workload.
type stormEvent struct {
	token  int // index into the token universe
	client int
	req    deviceReq
}

type deviceReq struct {
	App      string `json:"app"`
	Platform string `json:"platform"`
	Token    string `json:"token"`
	UserID   int64  `json:"user_id"`
	Locale   string `json:"locale"`
}

// stormWorkload is N registrations: 60% new tokens, 30% updates of a known
// token (a new owner or locale), 10% exact repeats of a token's current
// registration. Each token belongs to one client, which sends its events in
// order and waits for each answer, so the last event sent per token is the
// expected final row. The first half goes through POST /v1/devices, the second
// half through POST /v1/devices/batch.
type stormWorkload struct {
	singles [][][]byte // per client, one body per request
	batches [][][]byte // per client, one body per batch request
	nSingle int
	final   map[string]deviceReq // token → expected row
}

func newStormWorkload(cfg stormConfig) *stormWorkload {
	rng := rand.New(rand.NewPCG(3, 14))
	locales := []string{"en", "en-US", "de", "fr", "pt-BR", "ja"}
	var current []deviceReq // by token index
	evs := make([]stormEvent, cfg.N)
	for i := range evs {
		r := rng.Float64()
		switch {
		case r < 0.6 || len(current) == 0:
			t := len(current)
			d := deviceReq{App: stormApp, Platform: "ios", Token: fmt.Sprintf("%064x", uint64(t)*0x9e3779b97f4a7c15), UserID: 1 + rng.Int64N(int64(cfg.N)), Locale: locales[rng.IntN(len(locales))]}
			if t%2 == 1 {
				d.Platform, d.Token = "android", fmt.Sprintf("f%06x:APA91b%0140d", t, t)
			}
			current = append(current, d)
			evs[i] = stormEvent{token: t, req: d}
		case r < 0.9:
			t := rng.IntN(len(current))
			d := current[t]
			if rng.IntN(2) == 0 {
				d.UserID = 1 + rng.Int64N(int64(cfg.N)) // the phone changed hands
			} else {
				d.Locale = locales[(slicesIndex(locales, d.Locale)+1)%len(locales)]
			}
			current[t] = d
			evs[i] = stormEvent{token: t, req: d}
		default:
			t := rng.IntN(len(current))
			evs[i] = stormEvent{token: t, req: current[t]}
		}
		evs[i].client = evs[i].token % cfg.Clients
	}
	w := &stormWorkload{singles: make([][][]byte, cfg.Clients), batches: make([][][]byte, cfg.Clients), nSingle: cfg.N / 2, final: map[string]deviceReq{}}
	pending := make([][]deviceReq, cfg.Clients)
	flush := func(c int) {
		if len(pending[c]) > 0 {
			b, _ := json.Marshal(pending[c])
			w.batches[c] = append(w.batches[c], b)
			pending[c] = pending[c][:0]
		}
	}
	for i, e := range evs {
		if i < w.nSingle {
			b, _ := json.Marshal(e.req)
			w.singles[e.client] = append(w.singles[e.client], b)
		} else {
			pending[e.client] = append(pending[e.client], e.req)
			if len(pending[e.client]) == cfg.Batch {
				flush(e.client)
			}
		}
	}
	for c := range pending {
		flush(c)
	}
	for _, d := range current {
		w.final[d.Token] = d
	}
	return w
}

func slicesIndex(xs []string, x string) int {
	for i, y := range xs {
		if y == x {
			return i
		}
	}
	return 0
}

// newStormClient keeps one connection per client to a server, reused
// across rounds, as apps keep theirs.
func newStormClient(clients int) *http.Client {
	return &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients, DisableCompression: true}, Timeout: time.Minute}
}

// hammer sends every client's bodies in order, one request at a time per
// client, all clients at once, and counts answers by status.
func hammer(client *http.Client, url, bearer string, bodies [][][]byte) (time.Duration, map[int]int) {
	var mu sync.Mutex
	statuses := map[int]int{}
	var wg sync.WaitGroup
	start := time.Now()
	for _, mine := range bodies {
		wg.Go(func() {
			local := map[int]int{}
			for _, body := range mine {
				req, _ := http.NewRequest("POST", url, bytes.NewReader(body))
				req.Header.Set("Authorization", "Bearer "+bearer)
				req.Header.Set("Content-Type", "application/json")
				resp, err := client.Do(req)
				if err != nil {
					local[-1]++
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				local[resp.StatusCode]++
			}
			mu.Lock()
			for k, v := range local {
				statuses[k] += v
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	return time.Since(start), statuses
}

// chunk is round k of rounds of every client's bodies.
func chunk(bodies [][][]byte, k, rounds int) [][][]byte {
	out := make([][][]byte, len(bodies))
	for c, mine := range bodies {
		out[c] = mine[k*len(mine)/rounds : (k+1)*len(mine)/rounds]
	}
	return out
}

// bare202 is the floor of the API: read the body, answer 202.
var bare202 = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	io.Copy(io.Discard, r.Body)
	w.WriteHeader(http.StatusAccepted)
})

func BenchmarkStorm(b *testing.B) {
	cfg := stormFromEnv()
	for range b.N {
		runStorm(b, cfg)
	}
}

func runStorm(b *testing.B, cfg stormConfig) {
	ctx := context.Background()
	b.Logf("storm: %d registrations (30%% updates, 10%% exact repeats), %d clients, batches of %d, ingest pool %d, batch %d, concurrency %d, durable PostgreSQL %v, Redis AOF %v",
		cfg.N, cfg.Clients, cfg.Batch, cfg.DBConns, cfg.IngestBatch, cfg.IngestConc, cfg.Durable, cfg.AOF)
	w := newStormWorkload(cfg)

	rs, err := pipelinetest.StartRedis(pipelinetest.RedisOptions{AOF: cfg.AOF})
	if err != nil {
		b.Fatal(err)
	}
	defer rs.Close()
	pg, err := pipelinetest.StartPostgres(pipelinetest.PostgresOptions{Durable: cfg.Durable, Settings: map[string]string{
		"shared_buffers": "1GB", "max_wal_size": "8GB", "checkpoint_timeout": "30min",
	}})
	if err != nil {
		b.Fatal(err)
	}
	defer pg.Close()
	rdb, err := pipeline.NewRedis(rs.Addr)
	if err != nil {
		b.Fatal(err)
	}
	defer rdb.Close()
	keys := pipeline.NewKeys("storm", pipeline.DefaultPartitions)
	url := stormDB(b, pg)

	// The API and the bare 202 handler run as processes of their own, as in
	// production (and so neither pays for the GC of this process's workload).
	const appKey = "storm-app-key"
	apiProc := startChild(b, childConfig{Mode: "api", AppKey: appKey, Redis: rs.Addr, Prefix: keys.Prefix})
	bareProc := startChild(b, childConfig{Mode: "bare"})
	clock := cpuClock{rdb: rdb, pg: pg, kids: []*child{apiProc, bareProc}}

	// Bare and real handlers take turns on the same chunks of the workload,
	// so a burst of load from elsewhere on the box hits both alike. Each
	// client's chunks stay in order, so every token's events arrive in order.
	nBatches := 0
	for _, c := range w.batches {
		nBatches += len(c)
	}
	nBatchDevices := cfg.N - w.nSingle
	type phase struct {
		name     string
		client   *http.Client
		url      string
		bodies   [][][]byte
		requests int
		took     time.Duration
		cpu      cpuTimes
		statuses map[int]int
	}
	toBare, toAPI := newStormClient(cfg.Clients), newStormClient(cfg.Clients)
	defer toBare.CloseIdleConnections()
	defer toAPI.CloseIdleConnections()
	bareSingle := &phase{name: "bare single", client: toBare, url: "http://" + bareProc.Addr + "/v1/devices", bodies: w.singles, requests: w.nSingle, statuses: map[int]int{}}
	apiSingle := &phase{name: "API single", client: toAPI, url: "http://" + apiProc.Addr + "/v1/devices", bodies: w.singles, requests: w.nSingle, statuses: map[int]int{}}
	bareBatch := &phase{name: "bare batch", client: toBare, url: "http://" + bareProc.Addr + "/v1/devices/batch", bodies: w.batches, requests: nBatches, statuses: map[int]int{}}
	apiBatch := &phase{name: "API batch", client: toAPI, url: "http://" + apiProc.Addr + "/v1/devices/batch", bodies: w.batches, requests: nBatches, statuses: map[int]int{}}
	const rounds = 4
	for _, pair := range [][2]*phase{{bareSingle, apiSingle}, {bareBatch, apiBatch}} {
		for k := range rounds {
			for _, ph := range pair {
				c0 := clock.now()
				took, st := hammer(ph.client, ph.url, appKey, chunk(ph.bodies, k, rounds))
				ph.cpu = ph.cpu.plus(clock.now().since(c0))
				ph.took += took
				for code, n := range st {
					ph.statuses[code] += n
				}
			}
		}
	}
	apiProc.signal(syscall.SIGTERM)
	bareProc.signal(syscall.SIGTERM)
	fivexx := 0
	for _, ph := range []*phase{bareSingle, apiSingle, bareBatch, apiBatch} {
		for code, n := range ph.statuses {
			if code >= 500 {
				fivexx += n
			}
		}
		if ph.statuses[http.StatusAccepted] != ph.requests || len(ph.statuses) != 1 {
			b.Errorf("%s: want %d × 202, got %v (status -1: transport error)", ph.name, ph.requests, ph.statuses)
		}
	}

	// Ingest: a stage process drains the stream into PostgreSQL with a pool
	// of DBConns, reading batches of IngestBatch with IngestConc handlers.
	for _, s := range keys.Streams(pipeline.StreamIngest) {
		if err := pipeline.CreateGroup(ctx, rdb, s, "ingest"); err != nil {
			b.Fatal(err)
		}
	}
	monitor := stormPool(b, url, 1, "storm-monitor")
	ingestProc := startChild(b, childConfig{Redis: rs.Addr, DB: url, Prefix: keys.Prefix, Consumer: "storm", AppName: "storm-ingest",
		DBConns: cfg.DBConns, Batch: cfg.IngestBatch, Concurrency: cfg.IngestConc, ClaimIdle: 30 * time.Second, WaitGo: true})
	clock.kids = []*child{ingestProc}
	diag := os.Getenv("PUSHPIPE_STORM_DIAG") != "" // print Redis command stats of the ingest phase
	if diag {
		rdb.Do(ctx, rdb.B().ConfigResetstat().Build())
	}
	// The stage opened its pool's connections before the timed run (WaitGo),
	// so every connection it holds during the run is either open at its start
	// or a session established since, which pg_stat_database.sessions counts:
	// their sum bounds the most it held at once, exactly and at no cost during
	// the run. (Sampling pg_stat_activity every few ms instead cost ~0.2 s of
	// CPU per 1.5 s on a 2-core machine, charged to the ingest but not the
	// floor.)
	openAtStart := appConns(b, monitor, "storm-ingest")
	sessionsAtStart := dbSessions(b, monitor)
	c0 := clock.now()
	start := time.Now()
	ingestProc.start()
	pipelinetest.Eventually(b, 30*time.Minute, "ingest to drain the stream", func() bool { return outstanding(b, rdb, keys) == 0 })
	ingestTime := time.Since(start)
	ingestCPU := clock.now().since(c0)
	if diag {
		st, _ := rdb.Do(ctx, rdb.B().Info().Section("commandstats").Build()).ToString()
		fmt.Fprintln(os.Stderr, st)
	}
	ingestProc.signal(syscall.SIGTERM)
	clock.kids = nil
	// Once the stage's backends are gone, their session counts are flushed.
	pipelinetest.Eventually(b, time.Minute, "the ingest stage's backends to exit", func() bool { return appConns(b, monitor, "storm-ingest") == 0 })
	opened := dbSessions(b, monitor) - sessionsAtStart
	maxConns := openAtStart + opened
	if diag {
		fmt.Fprintf(os.Stderr, "ingest connections open at start %d, sessions opened during the run %d\n", openAtStart, opened)
	}
	counts := ingestProc.counts()

	// The table must be exactly what the last event of each token says.
	exact := verifyStorm(b, monitor, w.final)
	tokensQuery := measureValidTokens(b, monitor)

	// The floor: raw COPY into a temp table + INSERT ... ON CONFLICT of the
	// same rows, 50,000 per batch, on a fresh database (floorUpsert).
	c0 = clock.now()
	floorTime, floorRows := floorUpsert(b, pg, rdb, keys, w, cfg)
	floorCPU := clock.now().since(c0)

	secs := func(d time.Duration) float64 { return d.Seconds() }
	rate := func(n int, d time.Duration) float64 { return float64(n) / secs(d) }
	b.ReportMetric(rate(w.nSingle, apiSingle.took), "api_single_req/s")
	b.ReportMetric(rate(w.nSingle, bareSingle.took), "bare_single_req/s")
	b.ReportMetric(rate(nBatchDevices, apiBatch.took), "api_batch_dev/s")
	b.ReportMetric(rate(nBatchDevices, bareBatch.took), "bare_batch_dev/s")
	b.ReportMetric(rate(cfg.N, ingestTime), "ingest_ev/s")
	b.ReportMetric(rate(cfg.N, floorTime), "floor_ev/s")
	b.ReportMetric(float64(maxConns), "max_pg_conns")
	fmt.Fprintf(os.Stderr, `
storm of %d registrations, %d clients (%d tokens in the final table)
  API single  %8.0f req/s      bare 202 handler %8.0f req/s      ratio %.2f  (%d requests; API %v; bare %v)
  API batch   %8.0f devices/s  bare 202 handler %8.0f devices/s  ratio %.2f  (%d requests of ≤%d; API %v)
  ingest      %8.0f events/s   raw COPY+upsert  %8.0f events/s   ratio %.2f  (written %.0f, collapsed %.0f, stale %.0f; floor wrote %d)
              ingest %v; floor %v
  PostgreSQL connections of the ingest pool: at most %d (pool %d); 5xx: %d; final table exact: %v
  ValidTokens(1000 users): %s
`, cfg.N, cfg.Clients, len(w.final),
		rate(w.nSingle, apiSingle.took), rate(w.nSingle, bareSingle.took), secs(bareSingle.took)/secs(apiSingle.took), w.nSingle, apiSingle.cpu, bareSingle.cpu,
		rate(nBatchDevices, apiBatch.took), rate(nBatchDevices, bareBatch.took), secs(bareBatch.took)/secs(apiBatch.took), nBatches, cfg.Batch, apiBatch.cpu,
		rate(cfg.N, ingestTime), rate(cfg.N, floorTime), secs(floorTime)/secs(ingestTime),
		counts["written"], counts["collapsed"], counts["stale"], floorRows,
		ingestCPU, floorCPU,
		maxConns, cfg.DBConns, fivexx, exact, tokensQuery)
	if maxConns > cfg.DBConns {
		b.Fatalf("the ingest stage held %d PostgreSQL connections; its pool allows %d", maxConns, cfg.DBConns)
	}
}

func stormDB(b *testing.B, pg *pipelinetest.Postgres) string {
	url, err := pg.NewDatabase(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	if err := schema.Migrate(context.Background(), url); err != nil {
		b.Fatal(err)
	}
	return url
}

// appConns is how many backends of the application are connected now.
func appConns(b *testing.B, db *pgxpool.Pool, app string) int {
	var n int
	if err := db.QueryRow(context.Background(), `SELECT count(*) FROM pg_stat_activity WHERE application_name = $1`, app).Scan(&n); err != nil {
		b.Fatal(err)
	}
	return n
}

// dbSessions is how many sessions were ever established to the current
// database (PostgreSQL ≥ 14).
func dbSessions(b *testing.B, db *pgxpool.Pool) int {
	var n int
	if err := db.QueryRow(context.Background(), `SELECT sessions FROM pg_stat_database WHERE datname = current_database()`).Scan(&n); err != nil {
		b.Fatal(err)
	}
	return n
}

func stormPool(b *testing.B, url string, conns int32, name string) *pgxpool.Pool {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		b.Fatal(err)
	}
	cfg.MaxConns = conns
	cfg.ConnConfig.RuntimeParams["application_name"] = name
	db, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(db.Close)
	return db
}

// verifyStorm reports whether the devices table is exactly the expected one.
func verifyStorm(b *testing.B, db *pgxpool.Pool, final map[string]deviceReq) bool {
	rows, err := db.Query(context.Background(), `SELECT app, token, user_id, platform, locale, state FROM devices`)
	if err != nil {
		b.Fatal(err)
	}
	var (
		app, token, locale string
		user               int64
		platform           devices.Platform
		state              devices.State
		n, bad             int
	)
	_, err = pgx.ForEachRow(rows, []any{&app, &token, &user, &platform, &locale, &state}, func() error {
		n++
		want, ok := final[token]
		if !ok || app != stormApp || user != want.UserID || platform.String() != want.Platform || locale != want.Locale || state != devices.Active {
			if bad++; bad <= 5 {
				b.Errorf("row %s: user %d platform %d locale %q state %d; want %+v", token, user, platform, locale, state, want)
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	if bad > 0 || n != len(final) {
		b.Errorf("devices table: %d rows, %d wrong; want exactly %d", n, bad, len(final))
		return false
	}
	return true
}

// measureValidTokens times deliver's query for 1000 random users and checks
// it is an index-only scan.
func measureValidTokens(b *testing.B, db *pgxpool.Pool) string {
	ctx := context.Background()
	if _, err := db.Exec(ctx, `VACUUM ANALYZE devices`); err != nil {
		b.Fatal(err)
	}
	var maxUser int64
	db.QueryRow(ctx, `SELECT max(user_id) FROM devices`).Scan(&maxUser)
	users := make([]int64, 1000)
	for i := range users {
		users[i] = 1 + rand.Int64N(maxUser)
	}
	var plan string
	if err := db.QueryRow(ctx, `EXPLAIN (ANALYZE, COSTS OFF, FORMAT JSON) SELECT user_id, platform, token FROM devices
		WHERE app = $1 AND state = 0 AND user_id IN (SELECT unnest($2::bigint[]))`, stormApp, users).Scan(&plan); err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	const rounds = 20
	found := 0
	for range rounds {
		ds, err := devices.ValidTokens(ctx, db, stormApp, users)
		if err != nil {
			b.Fatal(err)
		}
		found = len(ds)
	}
	per := time.Since(start) / rounds
	indexOnly := bytes.Contains([]byte(plan), []byte(`"Index Only Scan"`))
	// The same question asked with "user_id = ANY($2)", for comparison.
	start = time.Now()
	for range rounds {
		rows, err := db.Query(ctx, `SELECT user_id, platform, token FROM devices WHERE app = $1 AND user_id = ANY($2) AND state = 0`, stormApp, users)
		if err != nil {
			b.Fatal(err)
		}
		rows.Close()
	}
	perAny := time.Since(start) / rounds
	return fmt.Sprintf("%d devices in %v per call (%.0f users/s on one connection); index-only scan: %v; with = ANY($2): %v per call",
		found, per.Round(10*time.Microsecond), 1000/per.Seconds(), indexOnly, perAny.Round(10*time.Microsecond))
}

// floorUpsert is the floor for ingest: the same rows as the ingest
// stage got, COPYed into a temp table and merged with one INSERT ... ON
// CONFLICT per batch (repeats inside a batch removed, as ON CONFLICT needs),
// in batches of 50,000 consecutive rows in the order the API accepted them
// (event time; the stream holds them), each batch split over DBConns
// workers by token so that they never deadlock. (The floor used to read the
// rows grouped by client, so every batch held a token's whole history and
// collapsed repeats no order of arrival allows: 121k rows written of 200k
// where the arrival order leaves ~150k.)
func floorUpsert(b *testing.B, pg *pipelinetest.Postgres, rdb rueidis.Client, keys pipeline.Keys, w *stormWorkload, cfg stormConfig) (took time.Duration, written int64) {
	ctx := context.Background()
	url := stormDB(b, pg)
	db := stormPool(b, url, int32(cfg.DBConns), "storm-floor")
	events := arrivalOrder(b, rdb, keys)
	if len(events) != cfg.N {
		b.Fatalf("the ingest stream holds %d events, want %d", len(events), cfg.N)
	}
	workers := cfg.DBConns
	var batches [][][][]any // per window of 50,000: per worker, rows
	for lo := 0; lo < len(events); lo += 50_000 {
		shares := make([][][]any, workers)
		for _, e := range events[lo:min(lo+50_000, len(events))] {
			p := int(keysHash(e.Token) % uint32(workers))
			shares[p] = append(shares[p], []any{e.App, e.Token, e.User, int16(e.Platform), e.Locale, int16(e.State()), time.UnixMicro(e.At)})
		}
		batches = append(batches, shares)
	}
	var (
		failed atomic.Value
		rows   atomic.Int64
	)
	start := time.Now()
	for _, shares := range batches {
		var wg sync.WaitGroup
		for _, share := range shares {
			wg.Go(func() {
				merged := dedupeLast(share)
				rows.Add(int64(len(merged)))
				if err := copyMerge(ctx, db, merged); err != nil {
					failed.Store(err)
				}
			})
		}
		wg.Wait()
	}
	elapsed := time.Since(start)
	if err, _ := failed.Load().(error); err != nil {
		b.Fatal(err)
	}
	var n int
	db.QueryRow(ctx, `SELECT count(*) FROM devices`).Scan(&n)
	if n != len(w.final) {
		b.Fatalf("floor wrote %d rows, want %d", n, len(w.final))
	}
	return elapsed, rows.Load()
}

// arrivalOrder reads every event of the ingest stream, in the order the API
// stamped them (paged: a storm's partition holds tens of thousands).
func arrivalOrder(b *testing.B, rdb rueidis.Client, keys pipeline.Keys) []devices.Event {
	ctx := context.Background()
	var out []devices.Event
	for _, stream := range keys.Streams(pipeline.StreamIngest) {
		from := "-"
		for {
			entries, err := rdb.Do(ctx, rdb.B().Xrange().Key(stream).Start(from).End("+").Count(10_000).Build()).AsXRange()
			if err != nil {
				b.Fatal(err)
			}
			for _, e := range entries {
				ev, err := devices.ParseEvent(e.FieldValues, time.Now())
				if err != nil {
					b.Fatal(err)
				}
				out = append(out, ev)
			}
			if len(entries) < 10_000 {
				break
			}
			from = "(" + entries[len(entries)-1].ID
		}
	}
	slices.SortFunc(out, func(a, b devices.Event) int { return cmp.Compare(a.At, b.At) })
	return out
}

func keysHash(s string) uint32 {
	var h uint32 = 2166136261
	for i := 0; i < len(s); i++ {
		h = (h ^ uint32(s[i])) * 16777619
	}
	return h
}

// dedupeLast keeps the last row of each token, in order.
func dedupeLast(rows [][]any) [][]any {
	last := make(map[string]int, len(rows))
	for i, r := range rows {
		last[r[1].(string)] = i
	}
	out := make([][]any, 0, len(last))
	for i, r := range rows {
		if last[r[1].(string)] == i {
			out = append(out, r)
		}
	}
	return out
}

func copyMerge(ctx context.Context, db *pgxpool.Pool, rows [][]any) error {
	return pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `CREATE TEMP TABLE IF NOT EXISTS dev_in (app text, token text, user_id bigint, platform smallint,
			locale text, state smallint, event_at timestamptz) ON COMMIT DELETE ROWS`); err != nil {
			return err
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"dev_in"},
			[]string{"app", "token", "user_id", "platform", "locale", "state", "event_at"}, pgx.CopyFromRows(rows)); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO devices AS d (app, token, user_id, platform, locale, state, event_at)
			SELECT * FROM dev_in
			ON CONFLICT (app, token) DO UPDATE SET user_id = excluded.user_id, platform = excluded.platform,
			    locale = excluded.locale, state = excluded.state, event_at = excluded.event_at, updated_at = now()
			WHERE d.event_at < excluded.event_at`)
		return err
	})
}
