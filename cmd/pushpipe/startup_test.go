package main

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
	"github.com/pushpipe/pushpipe/pipeline/schema"
)

// run runs the real binary with env added to ours and returns its stderr,
// how long it took and its exit error.
func run(t *testing.T, bin string, env []string, args ...string) (string, time.Duration, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	start := time.Now()
	err := cmd.Run()
	return stderr.String(), time.Since(start), err
}

// Every process checks at start what it needs and says what to fix: a
// stage with a wrong database URL exits naming host, port and user; a
// process or command with another partition count than the deployment's,
// or an unknown key prefix, is refused; an operator tool with no Redis
// fails at once; a Redis with a password or TLS is reached with the
// PUSHPIPE_REDIS_* settings, and refused clearly without them. The bounds
// (12-15 s) tell an exit from a wait (a server waits for Redis for as long
// as it takes) with room for a loaded machine to start the binary: CI runs
// every package at once, and 3 s was seen exceeded (3.3-3.9 s).
func TestStartupChecksWithTheBinary(t *testing.T) {
	bin := pipelinetest.Binary(t)
	plain := pipelinetest.RedisT(t, pipelinetest.RedisOptions{})
	auth := pipelinetest.RedisT(t, pipelinetest.RedisOptions{Security: "auth"})
	tlsr := pipelinetest.RedisT(t, pipelinetest.RedisOptions{Security: "tls"})
	base := []string{"PUSHPIPE_REDIS_ADDR=" + plain.Addr, "PUSHPIPE_PARTITIONS=16", "PUSHPIPE_PREFIX=pp", "PUSHPIPE_LOG_LEVEL=warn",
		"PUSHPIPE_DATABASE_URL=postgres://bob:s3cret@127.0.0.1:1/x"}
	// The deployment's first process records 16 partitions.
	if out, _, err := run(t, bin, base, "status"); err != nil {
		t.Fatalf("status: %v\n%s", err, out)
	}
	tests := []struct {
		name   string
		env    []string
		args   []string
		within time.Duration
		want   []string // "" in want: must succeed
	}{
		{"stage, wrong database URL", nil, []string{"resolve"}, 15 * time.Second,
			[]string{"127.0.0.1:1", `"bob"`, "PUSHPIPE_DATABASE_URL"}},
		{"send, other partition count", nil, []string{"send", "--partitions", "32", "--app", "a", "--channel", "x", "--title", "t"}, 12 * time.Second,
			[]string{"16 partitions", "started with 32", "PUSHPIPE_PARTITIONS=16"}},
		{"stage, other partition count", []string{"PUSHPIPE_PARTITIONS=32"}, []string{"dedupe"}, 15 * time.Second,
			[]string{"16 partitions", "PUSHPIPE_PARTITIONS=16"}},
		{"dlq, other partition count", []string{"PUSHPIPE_PARTITIONS=8"}, []string{"dlq", "list"}, 12 * time.Second,
			[]string{"16 partitions"}},
		{"status, unknown prefix", []string{"PUSHPIPE_PREFIX=qq"}, []string{"status"}, 12 * time.Second,
			[]string{`no pushpipe deployment with key prefix "qq"`, `"pp" (partitions=16`, "PUSHPIPE_PREFIX"}},
		{"replay, unknown prefix", []string{"PUSHPIPE_PREFIX=qq"}, []string{"replay", "--stream", "deliver", "--from", "1m"}, 12 * time.Second,
			[]string{`key prefix "qq"`}},
		{"password Redis, ACL user", append(auth.Env(), "PUSHPIPE_PREFIX=auth"), []string{"status"}, 12 * time.Second, []string{""}},
		{"password Redis, no password", []string{"PUSHPIPE_REDIS_ADDR=" + auth.Addr}, []string{"status"}, 12 * time.Second,
			[]string{auth.Addr, "NOAUTH"}},
		{"password Redis, wrong password", []string{"PUSHPIPE_REDIS_ADDR=" + auth.Addr, "PUSHPIPE_REDIS_USERNAME=pushpipe", "PUSHPIPE_REDIS_PASSWORD=s3cret"},
			[]string{"status"}, 12 * time.Second, []string{auth.Addr, `as user "pushpipe"`, "WRONGPASS"}},
		{"password Redis by URL", []string{"PUSHPIPE_REDIS_ADDR=redis://pushpipe:" + auth.Client.Password + "@" + auth.Addr, "PUSHPIPE_PREFIX=auth"},
			[]string{"status"}, 12 * time.Second, []string{""}},
		{"TLS Redis with client certificate", append(tlsr.Env(), "PUSHPIPE_PREFIX=tls"), []string{"status"}, 12 * time.Second, []string{""}},
		{"TLS Redis, no certificates", []string{"PUSHPIPE_REDIS_ADDR=rediss://" + tlsr.Addr}, []string{"status"}, 12 * time.Second,
			[]string{tlsr.Addr + " (TLS)", "certificate"}},
		// An operator tool, though it runs until interrupted: it neither
		// waits for Redis as a server does nor tails a mistyped prefix.
		{"results tail, no Redis", []string{"PUSHPIPE_REDIS_ADDR=127.0.0.1:1"}, []string{"results", "tail"}, 12 * time.Second,
			[]string{"127.0.0.1:1", "PUSHPIPE_REDIS_ADDR"}},
		{"results tail, unknown prefix", []string{"PUSHPIPE_PREFIX=qq"}, []string{"results", "tail"}, 12 * time.Second,
			[]string{`no pushpipe deployment with key prefix "qq"`, "PUSHPIPE_PREFIX"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, took, err := run(t, bin, append(append([]string{}, base...), tt.env...), tt.args...)
			if took > tt.within {
				t.Errorf("took %v, want at most %v", took, tt.within)
			}
			if tt.want[0] == "" {
				if err != nil {
					t.Fatalf("%v\n%s", err, out)
				}
				return
			}
			if err == nil {
				t.Fatalf("exited 0, want a refusal; stderr:\n%s", out)
			}
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("stderr does not say %q:\n%s", w, out)
				}
			}
			for _, secret := range []string{"s3cret", auth.Client.Password} {
				if strings.Contains(out, secret) {
					t.Errorf("stderr shows a password:\n%s", out)
				}
			}
		})
	}
}

// A command's flags and arguments are checked before anything is dialled,
// every problem at once: with Redis and PostgreSQL down, `send --badge -1`
// said only that Redis was down, and the badge was refused once it was up.
// Each exits 2 (a usage error) naming what to fix, and no server.
func TestFlagsCheckedBeforeDialling(t *testing.T) {
	bin := pipelinetest.Binary(t)
	down := []string{"PUSHPIPE_REDIS_ADDR=127.0.0.1:1", "PUSHPIPE_DATABASE_URL=postgres://bob@127.0.0.1:1/x", "PUSHPIPE_LOG_LEVEL=warn"}
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"send, negative badge", []string{"send", "--app", "a", "--channel", "x", "--title", "t", "--badge", "-1"},
			[]string{"--badge: must be between 0"}},
		{"send, every problem", []string{"send", "--app", "a", "--channel", "x", "--title", "t", "--badge=-1", "--ttl", "0s", "--priority", "urgent"},
			[]string{"--ttl: must be between 1s", `--priority: must be normal or high, got "urgent"`, "--badge: must be between 0"}},
		{"send, no text", []string{"send", "--app", "a", "--channel", "x"}, []string{"--title or --body: give at least one"}},
		{"send, bad channel", []string{"send", "--app", "a", "--channel", "a/b", "--title", "t"}, []string{"--channel: "}},
		{"send, bad id", []string{"send", "--app", "a", "--channel", "x", "--title", "t", "--id", "a b"}, []string{"--id: only letters"}},
		{"message, image over http", []string{"send", "--app", "a", "--user", "1", "--title", "t", "--image", "http://x"},
			[]string{"--image: must be an https:// URL"}},
		{"campaigns cancel, bad id", []string{"campaigns", "cancel", "a/b"}, []string{"ID: only letters"}},
		{"campaigns cancel, empty id", []string{"campaigns", "cancel", ""}, []string{"ID: is empty: give the campaign's id"}},
		{"status, bad id", []string{"status", "a/b"}, []string{"ID: only letters"}},
		{"messages list, bad --before", []string{"messages", "list", "--before", "a/b"}, []string{"--before: only letters"}},
		{"replay, not a stage's stream", []string{"replay", "--stream", "nope", "--from", "0"}, []string{`cannot replay stream "nope"`}},
		{"replay, --force on ingest", []string{"replay", "--stream", "ingest", "--from", "0", "--force"}, []string{"--force applies to dedupe and deliver only"}},
		{"dlq retry, nothing selected", []string{"dlq", "retry"}, []string{"say which: dead letter ids, or --all"}},
		// Each of these dialled first: with the servers down, the typo was
		// said only once they were back.
		{"dlq list, bad --campaign", []string{"dlq", "list", "--campaign", "a/b"}, []string{"--campaign: only letters"}},
		{"dlq list, bad --group", []string{"dlq", "list", "--group", "a b"}, []string{`--group "a b": a group is a word`}},
		{"dlq show, bad id", []string{"dlq", "show", "abc"}, []string{`ID "abc": not an id such as 1700000000000-0`}},
		{"dlq retry, bad ids", []string{"dlq", "retry", "1-0", "abc", "x-1"}, []string{`ID "abc": not an id`, `ID "x-1": not an id`}},
		{"dlq drop, every problem", []string{"dlq", "drop", "--all", "--campaign", "a/b", "--group", "a/b", "--stream", "nope"},
			[]string{"--campaign: only letters", `--group "a/b"`, `--stream "nope"`}},
		{"results tail, bad --campaign and --user", []string{"results", "tail", "--campaign", "a/b", "--user=7,-5"},
			[]string{"--campaign: only letters", "--user: user ids are positive, got -5"}},
		{"results tail, user 0", []string{"results", "tail", "--user", "0"}, []string{"--user: user ids are positive, got 0"}},
		{"results retire, bad group", []string{"results", "retire", "a/b"}, []string{`GROUP "a/b": a receiver's group is a word`}},
		{"results unretire, bad group", []string{"results", "unretire", ".x"}, []string{`GROUP ".x": a receiver's group is a word`}},
		{"campaigns list, every problem", []string{"campaigns", "list", "--limit", "0", "--state", "x", "--before", "a/b"},
			[]string{"--limit: must be a whole number", `--state: must be one of`, "--before: only letters"}},
		{"replay, every problem", []string{"replay", "--stream", "deliver", "--from", "1h", "--campaign", "a/b", "--partition=-1", "--high-water=-1"},
			[]string{"--campaign: only letters", "--partition: partitions count from 0, got -1", "--high-water: must be 0 (never pause) or more"}},
		{"import, bad channel and no file", []string{"import", "subscribers", "--channel", "a/b"}, []string{"--channel: ", "no FILE: "}},
		// Said "fakeprovider: error rate must be within [0,1]" once it ran,
		// naming no flag, and exited 1.
		{"fakeprovider, every problem", []string{"fakeprovider", "--error-rate", "2", "--tps=-1", "--apns-keys", "TEAM1", "--listen", "8443"},
			[]string{"--error-rate must be a share from 0 to 1", "--tps must be 0 (no cap) or more", `--apns-keys: each must be TEAM/KEY`, `--listen must be host:port`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, _, err := run(t, bin, down, tt.args...)
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 2 {
				t.Fatalf("exit %v, want 2 (a usage error); stderr:\n%s", err, out)
			}
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("stderr does not say %q:\n%s", w, out)
				}
			}
			if strings.Contains(out, "127.0.0.1:1") {
				t.Errorf("stderr speaks of a server, dialled before the flags were checked:\n%s", out)
			}
		})
	}
}

// A stage that queries PostgreSQL is ready only while PostgreSQL answers.
func TestDBStageReadyzFollowsPostgres(t *testing.T) {
	bin := pipelinetest.Binary(t)
	r := pipelinetest.RedisT(t, pipelinetest.RedisOptions{})
	pg := pipelinetest.PostgresT(t)
	url := pipelinetest.DatabaseT(t, pg)
	if err := schema.Migrate(t.Context(), url); err != nil {
		t.Fatal(err)
	}
	ops, err := pipelinetest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	addr := "127.0.0.1:" + strconv.Itoa(ops)
	cmd := exec.Command(bin, "split", "--http", addr)
	cmd.Env = append(os.Environ(), "PUSHPIPE_REDIS_ADDR="+r.Addr, "PUSHPIPE_DATABASE_URL="+url, "PUSHPIPE_LOG_LEVEL=warn")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	readyz := func() (int, string) {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		var b bytes.Buffer
		b.ReadFrom(resp.Body)
		return resp.StatusCode, b.String()
	}
	until := func(want int, within time.Duration) string {
		t.Helper()
		deadline := time.Now().Add(within)
		for {
			code, body := readyz()
			if code == want {
				return body
			}
			if time.Now().After(deadline) {
				t.Fatalf("/readyz never answered %d within %v; last %d %s", want, within, code, body)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	until(http.StatusOK, 20*time.Second)
	if err := pg.Stop(); err != nil {
		t.Fatal(err)
	}
	if body := until(http.StatusServiceUnavailable, 10*time.Second); !strings.Contains(body, "postgresql") {
		t.Fatalf("not ready, but the reason %q does not name PostgreSQL", body)
	}
	if err := pg.Start(); err != nil {
		t.Fatal(err)
	}
	until(http.StatusOK, 20*time.Second)
}
