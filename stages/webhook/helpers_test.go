package webhook_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/rueidis"
	"github.com/rs/zerolog"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
	"github.com/pushpipe/pushpipe/stages/webhook"
)

var env *pipelinetest.Env

func TestMain(m *testing.M) {
	pipelinetest.Main(removeReceiver{m}, pipelinetest.EnvOptions{Redis: true, Postgres: true}, &env)
}

// removeReceiver runs the tests, then removes the receiver they built.
type removeReceiver struct{ m *testing.M }

func (r removeReceiver) Run() int {
	defer func() {
		if binDir != "" {
			os.RemoveAll(binDir)
		}
	}()
	return r.m.Run()
}

var (
	buildOnce sync.Once
	binDir    string // the receiver's, removed by TestMain
	receiver  string
	buildErr  error
)

// binaries returns pushpipe (pipelinetest.Binary) and the test receiver
// (testdata/receiver), built once.
func binaries(t testing.TB) (pushpipeBin, receiverBin string) {
	t.Helper()
	buildOnce.Do(func() {
		if binDir, buildErr = os.MkdirTemp("", "webhook-test-receiver-"); buildErr != nil {
			return
		}
		receiver = filepath.Join(binDir, "receiver")
		out, err := exec.Command("go", "build", "-o", receiver, "github.com/pushpipe/pushpipe/stages/webhook/testdata/receiver").CombinedOutput()
		if err != nil {
			buildErr = &buildError{err, string(out)}
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return pipelinetest.Binary(t), receiver
}

type buildError struct {
	err error
	out string
}

func (e *buildError) Error() string { return "go build receiver: " + e.err.Error() + "\n" + e.out }

// fixture is one test's key prefix on the shared Redis.
type fixture struct {
	t    testing.TB
	ctx  context.Context
	rdb  rueidis.Client
	keys pipeline.Keys
	dir  string
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	var b [6]byte
	rand.Read(b[:])
	rdb, err := pipeline.NewRedis(env.Redis.Addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rdb.Close)
	return &fixture{t: t, ctx: t.Context(), rdb: rdb, keys: pipeline.NewKeys("t"+hex.EncodeToString(b[:]), 8), dir: t.TempDir()}
}

// proc is a child process the test may SIGKILL.
type proc struct {
	cmd  *exec.Cmd
	done chan struct{}
	http string // its --http address (startStage)
}

func (f *fixture) start(name string, bin string, args []string, envv ...string) *proc {
	f.t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), envv...)
	cmd.Stderr = pipelinetest.LineLogger(f.t, name+": ")
	if err := cmd.Start(); err != nil {
		f.t.Fatal(err)
	}
	p := &proc{cmd: cmd, done: make(chan struct{})}
	go func() { cmd.Wait(); close(p.done) }()
	f.t.Cleanup(func() { p.kill() })
	return p
}

func (p *proc) kill() {
	select {
	case <-p.done:
		return
	default:
	}
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// stageArgs are the flags every pushpipe process of the fixture gets.
func (f *fixture) stageArgs(cmd ...string) []string {
	return append(cmd, "--redis-addr", env.Redis.Addr, "--prefix", f.keys.Prefix,
		"--partitions", strconv.Itoa(f.keys.Partitions), "--log-level", "warn")
}

// startStage starts a pushpipe stage process and waits until it is ready.
func (f *fixture) startStage(name string, args ...string) *proc {
	f.t.Helper()
	bin, _ := binaries(f.t)
	httpAddr := freeAddr(f.t)
	p := f.start(name, bin, append(args, "--http", httpAddr, "--consumer", name))
	pipelinetest.Eventually(f.t, 60*time.Second, name+" ready", func() bool {
		resp, err := http.Get("http://" + httpAddr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	p.http = httpAddr
	return p
}

// receiverProc is the test receiver on a fixed address, restartable.
type receiverProc struct {
	f    *fixture
	addr string
	out  string
	args []string
	p    *proc
	read int    // bytes of the log read so far
	seen []post // the posts they held
}

func (f *fixture) startReceiver(secret string, args ...string) *receiverProc {
	addr := freeAddr(f.t)
	// A log per receiver: a test may run several.
	r := &receiverProc{f: f, addr: addr, out: filepath.Join(f.dir, "received-"+strings.ReplaceAll(addr, ":", "_")+".ndjson"),
		args: append([]string{"-secret", secret}, args...)}
	r.restart()
	return r
}

func (r *receiverProc) url() string { return "http://" + r.addr + "/hook" }

// restart (re)starts the receiver on its address and waits until it listens.
func (r *receiverProc) restart(extra ...string) {
	r.f.t.Helper()
	_, bin := binaries(r.f.t)
	args := append([]string{"-listen", r.addr, "-out", r.out}, r.args...)
	r.p = r.f.start("receiver", bin, append(args, extra...))
	pipelinetest.Eventually(r.f.t, 20*time.Second, "receiver listening", func() bool {
		c, err := net.Dial("tcp", r.addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
}

// post is one line of the receiver's log.
type post struct {
	Ms     int64                  `json:"ms"`
	N      int                    `json:"n"`
	Status int                    `json:"status"`
	Valid  bool                   `json:"valid"`
	Events []pipeline.ResultEvent `json:"events"`
}

// posts reads the receiver's log: what it read before, plus the complete
// lines written since (a line cut by a SIGKILL is skipped).
func (r *receiverProc) posts() []post {
	r.f.t.Helper()
	b, err := os.ReadFile(r.out)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		r.f.t.Fatal(err)
	}
	for {
		i := bytes.IndexByte(b[r.read:], '\n')
		if i < 0 {
			return r.seen
		}
		var p post
		if json.Unmarshal(b[r.read:r.read+i], &p) == nil {
			r.seen = append(r.seen, p)
		}
		r.read += i + 1
	}
}

// accepted maps every event id answered 2xx with a valid signature to its
// event.
func accepted(posts []post) map[string]pipeline.ResultEvent {
	m := map[string]pipeline.ResultEvent{}
	for _, p := range posts {
		if p.Status/100 == 2 && p.Valid {
			for _, e := range p.Events {
				m[e.ID] = e
			}
		}
	}
	return m
}

// freeAddr: see pipelinetest.FreeAddr.
func freeAddr(t testing.TB) string { return pipelinetest.FreeAddr(t) }

// testSecret is the signing secret of the tests that need one: long enough
// for the stage to take it (webhook.MinSecret).
const testSecret = "s1-0123456789abcdef"

// writeSecrets writes a secret file and returns its path.
func (f *fixture) writeSecrets(secrets ...string) string {
	fh, err := os.CreateTemp(f.dir, "secrets-")
	if err != nil {
		f.t.Fatal(err)
	}
	defer fh.Close()
	if _, err := fh.WriteString(strings.Join(secrets, "\n") + "\n"); err != nil {
		f.t.Fatal(err)
	}
	return fh.Name()
}

// emitEvents writes n result events straight to the results stream, an
// entry each, their outcomes cycling through outcomes.
func (f *fixture) emitEvents(campaign string, n int, outcomes ...string) []pipeline.ResultEvent {
	f.t.Helper()
	var evs []pipeline.ResultEvent
	var msgs []pipeline.Message
	for i := range n {
		user := int64(i + 1)
		outcome := outcomes[i%len(outcomes)]
		ev := pipeline.ResultEvent{ID: pipeline.ResultID(campaign, "", int64(i), outcome), Campaign: campaign, App: "app1",
			UserID: user, Platform: "ios", Token: "tok" + strconv.Itoa(i), Outcome: outcome, AtMs: time.Now().UnixMilli()}
		if ev.Outcome != pipeline.OutcomeSent {
			ev.Reason = "BadDeviceToken"
		}
		evs = append(evs, ev)
		msgs = append(msgs, pipeline.Message{Stream: f.keys.Stream(pipeline.StreamResults, f.keys.UserPartition(user)), Fields: pipeline.ResultFields(ev)})
	}
	if _, err := pipeline.Emit(f.ctx, f.rdb, msgs...); err != nil {
		f.t.Fatal(err)
	}
	return evs
}

// failureLogged runs a webhook process on cfg (its Redis, keys and logger
// the fixture's) until one event's delivery failed, and returns what it
// logged at warn and above: what an operator reads of a failed delivery.
func (f *fixture) failureLogged(t *testing.T, cfg webhook.Config) string {
	t.Helper()
	var logs pipelinetest.Logs
	log := zerolog.New(&logs).Level(zerolog.WarnLevel)
	cfg.Redis, cfg.Keys, cfg.Log = f.rdb, f.keys, log
	h, err := webhook.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r := pipeline.NewRunner(f.rdb, f.keys, pipeline.Options{Stage: "webhook", Stream: pipeline.StreamResults, Consumer: "w1",
		ClaimIdle: time.Minute, MaxDeliveries: 1000, Block: 100 * time.Millisecond}, h, log, nil)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	defer func() { cancel(); <-done }()
	pipelinetest.Eventually(t, 10*time.Second, "runner ready", r.Ready)
	f.emitEvents("c1", 1, pipeline.OutcomeSent)
	pipelinetest.Eventually(t, 10*time.Second, "the failure logged", func() bool {
		return strings.Contains(logs.String(), "webhook delivery failed")
	})
	return logs.String()
}
