package webhook_test

import (
	"context"
	"io"
	"net/http"
	"os/exec"
	"strings"
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
			ClaimIdle: 200 * time.Millisecond, MaxDeliveries: 10, Block: 50 * time.Millisecond, NewGroupAt: "0"}, h, log, nil)
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- r.Run(ctx) }()
		pipelinetest.Eventually(t, 10*time.Second, "runner ready", r.Ready)
		return func() { cancel(); <-done }
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

	// Started again, it is a first start: from the oldest event kept.
	stop()
	stop = start()
	pipelinetest.Eventually(t, 10*time.Second, "a new start gets every event kept", func() bool { return recv.total() == 20+24 })
}

// A webhook process whose group `pushpipe results retire --force` removed
// stays up, idle, and answers 503 "group retired" on /readyz while /healthz
// still answers 200: under a Deployment an exit is a restart, and the
// restarted process would create the group anew and POST every event kept
// again; not ready, its pod shows 0/1 and nothing restarts it. Before, its
// /readyz kept answering 200, as if it still served the receiver.
func TestRetiredProcessReportsNotReady(t *testing.T) {
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
}
