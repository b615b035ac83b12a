package webhook_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
	"github.com/pushpipe/pushpipe/stages/webhook"
)

// `pushpipe results retire --force` while a process of the group runs: the
// process finds its group gone and says so, but does not recreate it, which
// read every event results keeps again and POSTed the whole retention
// window to the receiver being retired. A process started later creates
// the group anew, as a first start does.
func TestForcedRetireIsNotUndoneByTheRunningProcess(t *testing.T) {
	f := newFixture(t)
	recv := newIDReceiver(t)
	var logs pipelinetest.Logs
	start := func() (stop func()) {
		log := zerolog.New(&logs).Level(zerolog.WarnLevel)
		h, err := webhook.New(webhook.Config{Redis: f.rdb, Keys: f.keys, Group: "old", URL: recv.srv.URL + "/hook",
			Secrets: [][]byte{[]byte("secret-0123456789abcdef")}, Log: log})
		if err != nil {
			t.Fatal(err)
		}
		r := pipeline.NewRunner(f.rdb, f.keys, pipeline.Options{Stage: "webhook", Group: "old", Stream: pipeline.StreamResults, Consumer: "old1",
			// ClaimIdle 1 s: its claim loop runs every 250 ms, four times in
			// each second the test watches; at 200 ms a loaded machine's slow
			// POST and ack let the claim POST a batch again (40 events).
			ClaimIdle: time.Second, MaxDeliveries: 10, Block: 50 * time.Millisecond, NewGroupAt: "0"}, h, log, nil)
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- r.Run(ctx) }()
		var once sync.Once // stopped by the test, then by its defer
		stop = func() { once.Do(func() { cancel(); <-done }) }
		t.Cleanup(stop)
		pipelinetest.Eventually(t, 10*time.Second, "runner ready", r.Ready)
		return stop
	}
	stop := start()
	defer func() { stop() }()
	f.emitEvents("c1", 20, pipeline.OutcomeSent)
	pipelinetest.Eventually(t, 10*time.Second, "every event posted", func() bool { return recv.total() == 20 })

	if _, err := pipeline.RetireGroup(f.ctx, f.rdb, f.keys, pipeline.StreamResults, "old", true); err != nil {
		t.Fatal(err)
	}
	pipelinetest.Eventually(t, 10*time.Second, "the process says its group was retired", func() bool {
		return strings.Contains(logs.String(), "consumer group was retired (pushpipe results retire): it reads nothing more; stop it")
	})
	f.emitEvents("c2", 4, pipeline.OutcomeSent)
	time.Sleep(time.Second) // its read and claim loops, many times over
	if n := recv.total(); n != 20 {
		t.Errorf("the retired receiver got %d events, want its 20 only: the running process recreated its group", n)
	}
	groups, err := pipeline.StreamGroups(f.ctx, f.rdb, f.keys.Streams(pipeline.StreamResults))
	if err != nil {
		t.Fatal(err)
	}
	for p, gs := range groups {
		for _, g := range gs {
			if g.Name == "old" {
				t.Errorf("partition %d: group old is back", p)
			}
		}
	}
	if strings.Contains(logs.String(), "recreated") {
		t.Errorf("logged a recreation: %s", logs.String())
	}

	// Started again, it stays idle: a start is not the operator bringing
	// the receiver back. Before, it created the group anew from the
	// oldest event kept.
	stop()
	stop = start()
	pipelinetest.Eventually(t, 10*time.Second, "the new process says its group is retired", func() bool {
		return strings.Contains(logs.String(), "consumer group is retired (pushpipe results retire): it reads nothing")
	})
	time.Sleep(time.Second) // its read and claim loops, many times over
	if n := recv.total(); n != 20 {
		t.Errorf("restarted, the retired receiver got %d events, want its 20 only: the start recreated its group", n)
	}
	// Unretired from the start, it reads every event kept: the 20 again
	// and the 4 written while it was retired.
	if _, err := pipeline.UnretireGroup(f.ctx, f.rdb, f.keys, pipeline.StreamResults, "old", "0"); err != nil {
		t.Fatal(err)
	}
	pipelinetest.Eventually(t, 10*time.Second, "every event kept, once unretired", func() bool { return recv.total() == 20+24 })
	if _, err := pipeline.UnretireGroup(f.ctx, f.rdb, f.keys, pipeline.StreamResults, "old", "0"); !errors.Is(err, pipeline.ErrNotRetired) {
		t.Errorf("unretire a group that is back: %v, want ErrNotRetired", err)
	}
}

// A webhook process whose group `pushpipe results retire --force` removed
// stays up, idle, and answers 503 "group retired" on /readyz while /healthz
// still answers 200: under a Deployment an exit is a restart, and the
// restarted process would create the group anew and POST every event kept
// again; not ready, its pod shows 0/1 and nothing restarts it. Before, its
// /readyz kept answering 200, as if it still served the receiver.
func TestRetiredProcessReportsNotReady(t *testing.T) {
	t.Parallel() // mostly waiting (the process seeing its group retired, then back), on keys and processes of its own
	f := newFixture(t)
	bin, _ := binaries(t)
	secrets := f.writeSecrets(testSecret)
	rcv := f.startReceiver(testSecret)
	hook := f.startStage("old", f.stageArgs("webhook", "--url", rcv.url(), "--secret-file", secrets, "--group", "old", "--claim-idle", "1s")...)
	want := f.emitEvents("c1", 10, pipeline.OutcomeSent)
	pipelinetest.Eventually(t, time.Minute, "every event at the receiver", func() bool { return len(accepted(rcv.posts())) == len(want) })

	out, err := exec.Command(bin, f.stageArgs("results", "retire", "old", "--force")...).CombinedOutput()
	if err != nil {
		t.Fatalf("results retire old --force: %v\n%s", err, out)
	}
	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + hook.http + path)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	pipelinetest.Eventually(t, time.Minute, "/readyz says the group is retired", func() bool {
		code, body := get("/readyz")
		return code == http.StatusServiceUnavailable && strings.Contains(body, "webhook: group retired")
	})
	tests := []struct {
		path string
		code int
		body string
	}{
		{"/readyz", http.StatusServiceUnavailable, "webhook: group retired"},
		{"/healthz", http.StatusOK, ""}, // alive: no liveness restart
	}
	for _, tt := range tests {
		if code, body := get(tt.path); code != tt.code || !strings.Contains(body, tt.body) {
			t.Errorf("GET %s: %d %q, want %d with %q", tt.path, code, body, tt.code, tt.body)
		}
	}
	select {
	case <-hook.done:
		t.Fatalf("the process exited (%v): a Deployment would restart it, and the start create the group anew", hook.cmd.ProcessState)
	default:
	}
	groups, err := pipeline.StreamGroups(f.ctx, f.rdb, f.keys.Streams(pipeline.StreamResults))
	if err != nil {
		t.Fatal(err)
	}
	for p, gs := range groups {
		for _, g := range gs {
			if g.Name == "old" {
				t.Errorf("partition %d: group old is back", p)
			}
		}
	}

	// SIGKILLed and started again, as a drain or an OOM kill restarts its
	// pod: it stays idle and not ready. Before, the start created the group
	// anew and POSTed every event kept to the receiver being retired.
	hook.kill()
	while := f.emitEvents("c2", 4, pipeline.OutcomeSent)
	addr := freeAddr(t)
	hook = f.start("old2", bin, append(f.stageArgs("webhook", "--url", rcv.url(), "--secret-file", secrets, "--group", "old", "--claim-idle", "1s"),
		"--http", addr, "--consumer", "old2"))
	hook.http = addr
	pipelinetest.Eventually(t, time.Minute, "the restarted process says its group is retired", func() bool {
		code, body := get("/readyz")
		return code == http.StatusServiceUnavailable && strings.Contains(body, "webhook: group retired")
	})
	time.Sleep(2 * time.Second) // its reads and claims, many times over
	if n := len(accepted(rcv.posts())); n != len(want) {
		t.Errorf("restarted, the retired receiver got %d events, want its %d only", n, len(want))
	}

	// Unretired, the idle process reads again, from then on (the default).
	out, err = exec.Command(bin, f.stageArgs("results", "unretire", "old")...).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "unretired old") {
		t.Fatalf("results unretire old: %v\n%s", err, out)
	}
	pipelinetest.Eventually(t, time.Minute, "ready again", func() bool { code, _ := get("/readyz"); return code == http.StatusOK })
	after := f.emitEvents("c3", 3, pipeline.OutcomeSent)
	pipelinetest.Eventually(t, time.Minute, "the new events at the receiver", func() bool { return len(accepted(rcv.posts())) == len(want)+len(after) })
	got := accepted(rcv.posts())
	for _, e := range while {
		if _, ok := got[e.ID]; ok {
			t.Errorf("event %s, written while the group was retired, was posted: unretire reads from now on", e.ID)
		}
	}
}
