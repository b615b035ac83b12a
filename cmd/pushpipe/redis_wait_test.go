package main

import (
	"bufio"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
)

// A server started before Redis waits for it (30 s, so a deployment's
// processes may start in any order) and says so at once, naming the
// address and what to set: `pushpipe api` with no Redis printed nothing
// for those 30 s and looked hung. The 20 s bound is a hang guard, not a
// target: the line comes with the first refused dial.
func TestServerSaysItWaitsForRedis(t *testing.T) {
	t.Parallel()
	bin := pipelinetest.Binary(t)
	tests := []struct {
		name string
		give []string
	}{
		{"api", []string{"api", "--listen", "127.0.0.1:0"}},
		{"stage", []string{"split"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			nowhere := pipelinetest.FreeAddr(t) // nothing listens there
			cmd := exec.Command(bin, tt.give...)
			cmd.Env = append(os.Environ(), "PUSHPIPE_REDIS_ADDR="+nowhere, "PUSHPIPE_LOG_LEVEL=info",
				"PUSHPIPE_ADMIN_TOKEN=0123456789abcdef0123", "PUSHPIPE_DATABASE_URL=postgres://x@127.0.0.1:1/x")
			stderr, err := cmd.StderrPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			lines := make(chan string)
			t.Cleanup(func() {
				cmd.Process.Signal(syscall.SIGTERM)
				for range lines { // to the pipe's end, then Wait
				}
				cmd.Wait()
			})
			go func() {
				defer close(lines)
				sc := bufio.NewScanner(stderr)
				for sc.Scan() {
					lines <- sc.Text()
				}
			}()
			var seen []string
			guard := time.After(20 * time.Second)
			for {
				select {
				case line, ok := <-lines:
					if !ok {
						t.Fatalf("pushpipe %s exited before saying it waits for Redis at %s:\n%s", tt.name, nowhere, strings.Join(seen, "\n"))
					}
					seen = append(seen, line)
					if strings.Contains(line, "waiting up to 30s") {
						for _, w := range []string{nowhere, "PUSHPIPE_REDIS_ADDR", `"level":"warn"`} {
							if !strings.Contains(line, w) {
								t.Errorf("the waiting line does not say %q: %s", w, line)
							}
						}
						return
					}
				case <-guard:
					t.Fatalf("pushpipe %s said nothing of waiting for Redis at %s within 20 s:\n%s", tt.name, nowhere, strings.Join(seen, "\n"))
				}
			}
		})
	}
}
