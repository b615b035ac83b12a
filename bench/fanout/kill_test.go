package fanout

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/campaign"
	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
)

// stageProc is one `pushpipe <stage>` child process.
type stageProc struct {
	stage, consumer string
	cmd             *exec.Cmd
	done            chan struct{}
}

// procs runs stage processes against a fixture's Redis, database and
// prefix, with a short claim idle so the work of a killed process is taken
// over quickly.
type procs struct {
	t    *testing.T
	f    *fixture
	dir  string
	all  []*stageProc
	runs int
}

func (ps *procs) start(stage string, slot int) *stageProc {
	ps.t.Helper()
	ps.runs++
	consumer := fmt.Sprintf("%s-%d-run%d", stage, slot, ps.runs)
	args := []string{stage, "--consumer", consumer, "--claim-idle", "1s", "--shutdown-timeout", "2s"}
	switch stage {
	case "split":
		args = append(args, "--range-size", "500")
	case "dedupe":
		args = append(args, "--batch", "1", "--concurrency", "1")
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(),
		"PUSHPIPE_REDIS_ADDR="+ps.f.addrs, "PUSHPIPE_DATABASE_URL="+ps.f.dbURL,
		"PUSHPIPE_PREFIX="+ps.f.keys.Prefix, "PUSHPIPE_PARTITIONS="+strconv.Itoa(ps.f.keys.Partitions),
		"PUSHPIPE_LOG_LEVEL=warn")
	logf, err := os.Create(filepath.Join(ps.dir, consumer+".log"))
	if err != nil {
		ps.t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		ps.t.Fatal(err)
	}
	p := &stageProc{stage: stage, consumer: consumer, cmd: cmd, done: make(chan struct{})}
	go func() {
		cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	ps.all = append(ps.all, p)
	return p
}

// stopAll ends every process still running: SIGTERM, then SIGKILL.
func (ps *procs) stopAll() {
	for _, p := range ps.all {
		p.cmd.Process.Signal(syscall.SIGTERM)
	}
	for _, p := range ps.all {
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			p.cmd.Process.Kill()
			<-p.done
		}
	}
}

// TestKilledStagesStillDeliverExactlyOnce runs the stages as processes, two
// of each, and SIGKILLs them at random moments while they have work,
// starting a replacement each time. The stages start one after the other so
// that each has a backlog to be killed in: split while it cuts the campaign,
// then resolve while it drains the ranges, then dedupe (one entry per read)
// while it drains what resolve emitted. Whatever a kill interrupts (ranges
// half emitted, a checkpoint not written, a range emitted but not recorded,
// a batch read but not acked), the result is the same exact set, each user
// once, and the counters count people exactly.
func TestKilledStagesStillDeliverExactlyOnce(t *testing.T) {
	servers(t, func(t *testing.T, f *fixture) {
		au := threeChannels()
		f.seed(au)
		ps := &procs{t: t, f: f, dir: t.TempDir()}
		defer ps.stopAll()
		ctx := context.Background()
		killed := map[string]int{}
		var id string
		phase := func(stage, stream string, busy func() bool, before func()) {
			var slots []*stageProc
			for slot := range 2 {
				slots = append(slots, ps.start(stage, slot))
			}
			pipelinetest.Eventually(t, 20*time.Second, stage+" processes consuming", func() bool { return groupOnEveryPartition(ctx, f, stream, stage) })
			if before != nil {
				before()
			}
			for kill := range 6 {
				if kill == 0 {
					time.Sleep(time.Duration(rand.IntN(20)) * time.Millisecond)
				} else {
					time.Sleep(time.Duration(10+rand.IntN(150)) * time.Millisecond)
				}
				if !busy() {
					break
				}
				slot := rand.IntN(2)
				slots[slot].cmd.Process.Kill()
				<-slots[slot].done
				killed[stage]++
				slots[slot] = ps.start(stage, slot)
			}
		}
		phase("split", pipeline.StreamCampaigns, func() bool { return !splitDone(ctx, f, id) },
			func() { c, _ := f.create(au.campaign("chaos")); id = c.ID })
		pipelinetest.Eventually(t, 30*time.Second, "split done", func() bool { return splitDone(ctx, f, id) })
		phase("resolve", pipeline.StreamRanges, func() bool { return outstanding(ctx, f, pipeline.StreamRanges, "resolve") > 0 }, nil)
		pipelinetest.Eventually(t, 30*time.Second, "ranges resolved", func() bool { return outstanding(ctx, f, pipeline.StreamRanges, "resolve") == 0 })
		phase("dedupe", pipeline.StreamDedupe, func() bool { return outstanding(ctx, f, pipeline.StreamDedupe, "dedupe") > 0 }, nil)
		t.Logf("SIGKILLs while the stage had work: %v", killed)
		for _, stage := range []string{"split", "resolve", "dedupe"} {
			if killed[stage] == 0 {
				t.Errorf("no %s process was killed while it had work", stage)
			}
		}
		f.settledOrLogs(id, 90*time.Second, ps.dir)
		expectExactly(t, f.delivered(id), au.want)
		rep := f.progress(id)
		if rep.Targets != int64(len(au.want)) || rep.Muted != au.muted || rep.DuplicatesSuppressed < au.dups {
			t.Fatalf("progress %+v, want targets %d, muted %d, duplicates ≥ %d", rep, len(au.want), au.muted, au.dups)
		}
	})
}

func splitDone(ctx context.Context, f *fixture, id string) bool {
	if id == "" {
		return false
	}
	v, _ := f.rdb.Do(ctx, f.rdb.B().Hget().Key(f.keys.Campaign(id)).Field(pipeline.CampaignSplitDone).Build()).ToString()
	return v == "1"
}

func outstanding(ctx context.Context, f *fixture, stream, group string) int64 {
	n, err := pipeline.Outstanding(ctx, f.rdb, f.keys.Streams(stream), group)
	if err != nil {
		return -1
	}
	return n
}

// groupOnEveryPartition: a stage's processes created its group everywhere.
func groupOnEveryPartition(ctx context.Context, f *fixture, stream, group string) bool {
	all, err := pipeline.StreamGroups(ctx, f.rdb, f.keys.Streams(stream))
	if err != nil {
		return false
	}
	for _, gs := range all {
		if !slices.ContainsFunc(gs, func(g pipeline.GroupInfo) bool { return g.Name == group }) {
			return false
		}
	}
	return true
}

// settledOrLogs is settled, printing the stage processes' logs on timeout.
func (f *fixture) settledOrLogs(id string, timeout time.Duration, logDir string) {
	f.t.Helper()
	defer func() {
		if f.t.Failed() {
			files, _ := filepath.Glob(filepath.Join(logDir, "*.log"))
			for _, fn := range files {
				if b, _ := os.ReadFile(fn); len(b) > 0 {
					f.t.Logf("%s:\n%s", filepath.Base(fn), tail(b, 2000))
				}
			}
		}
	}()
	f.settled(id, timeout)
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// TestSendCommand: `pushpipe send` creates the campaign through the same
// Create as the API and prints its id; the same --id again prints it again
// and queues nothing new.
func TestSendCommand(t *testing.T) {
	f := newFixture(t, env.Redis.Addr)
	send := func(args ...string) string {
		t.Helper()
		// --allow-empty: the fixture has no devices or subscribers; this
		// test is about what send stores.
		// The stages here run in this process, which records no layout as
		// a `pushpipe <stage>` does: record it, or send refuses the prefix
		// once another test's layout is on this Redis.
		if err := pipeline.CheckLayout(context.Background(), f.rdb, f.keys, true, "test"); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bin, append([]string{"send", "--app", "com.example", "--channel", "a",
			"--channel", "b:c", "--category", "news", "--title", "T", "--body", "B", "--ttl", "1h", "--allow-empty"}, args...)...)
		cmd.Env = append(os.Environ(), "PUSHPIPE_REDIS_ADDR="+f.addrs, "PUSHPIPE_DATABASE_URL="+f.dbURL,
			"PUSHPIPE_PREFIX="+f.keys.Prefix, "PUSHPIPE_LOG_LEVEL=warn")
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("pushpipe send: %v\n%s", err, stderr.String())
		}
		return strings.TrimSpace(string(out))
	}
	id := send()
	c, err := campaign.Load(context.Background(), f.db, id)
	if err != nil {
		t.Fatal(err)
	}
	if c.App != "com.example" || !slices.Equal(c.Channels, []string{"a", "b:c"}) || c.Category != "news" ||
		c.Title != "T" || c.Body != "B" || c.TTL != time.Hour {
		t.Fatalf("stored %+v", c)
	}
	if got := send("--id", "fixed-1"); got != "fixed-1" {
		t.Fatalf("send --id fixed-1 printed %q", got)
	}
	if got := send("--id", "fixed-1"); got != "fixed-1" {
		t.Fatalf("send --id fixed-1 again printed %q", got)
	}
	var entries int64
	for _, s := range f.keys.Streams(pipeline.StreamCampaigns) {
		n, err := f.rdb.Do(context.Background(), f.rdb.B().Xlen().Key(s).Build()).AsInt64()
		if err != nil {
			t.Fatal(err)
		}
		entries += n
	}
	if entries != 2 {
		t.Fatalf("%d campaign entries, want 2 (the fresh id and fixed-1 once)", entries)
	}
	cmd := exec.Command(bin, "send", "--app", "a", "--channel", "bad channel", "--title", "t")
	cmd.Env = append(os.Environ(), "PUSHPIPE_REDIS_ADDR="+f.addrs, "PUSHPIPE_DATABASE_URL="+f.dbURL, "PUSHPIPE_PREFIX="+f.keys.Prefix)
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "--channel: ") {
		t.Fatalf("a bad channel: err %v, output %s", err, out)
	}
}

// TestSendMessageCommand: `pushpipe send --user` to an app without a single
// device is refused (the API's 422 for an app it does not know; the CLI has
// no apps file), and once the app has a device it is sent as a direct
// message to each listed user once.
func TestSendMessageCommand(t *testing.T) {
	f := newFixture(t, env.Redis.Addr)
	if err := pipeline.CheckLayout(context.Background(), f.rdb, f.keys, true, "test"); err != nil {
		t.Fatal(err)
	}
	f.stages(5000)
	send := func(args ...string) (string, error) {
		t.Helper()
		cmd := exec.Command(bin, append([]string{"send", "--app", "com.example", "--title", "T"}, args...)...)
		cmd.Env = append(os.Environ(), "PUSHPIPE_REDIS_ADDR="+f.addrs, "PUSHPIPE_DATABASE_URL="+f.dbURL,
			"PUSHPIPE_PREFIX="+f.keys.Prefix, "PUSHPIPE_LOG_LEVEL=warn")
		out, err := cmd.CombinedOutput()
		return strings.TrimSpace(string(out)), err
	}
	out, err := send("--user", "1,2", "--id", "m-typo")
	if err == nil || !strings.Contains(out, `app "com.example" has no registered devices, so nobody would receive this message; check --app`) {
		t.Fatalf("a message to an app without devices: err %v, output %s", err, out)
	}
	if _, err := f.db.Exec(t.Context(), `INSERT INTO devices (app, user_id, platform, token, event_at)
		VALUES ('com.example', 1, 1, $1, now())`, strings.Repeat("ab", 32)); err != nil {
		t.Fatal(err)
	}
	if out, err := send("--user", "1,2", "--user", "1", "--id", "m-1"); err != nil || out != "m-1" {
		t.Fatalf("send --user: err %v, output %s", err, out)
	}
	// Dedupe counts the targets: users 1 and 2, 1 listed twice.
	pipelinetest.Eventually(t, 10*time.Second, "message m-1 counted 2 targets", func() bool {
		rep, err := campaign.MessageProgress(t.Context(), f.rdb, f.db, f.keys, "m-1")
		return err == nil && rep.Targets == 2
	})
}
