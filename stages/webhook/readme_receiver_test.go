package webhook_test

import (
	"bytes"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
	"github.com/pushpipe/pushpipe/stages/webhook"
)

// The README's receiver is what a newcomer copies into main.go, builds and
// runs beside pushpipe webhook; it was only verify, and `go build` of the
// block said "expected 'package', found 'var'". This builds the block as
// the README shows it, outside any module, runs pushpipe webhook against
// it, and checks its answers to a POST repeated, signed with another
// secret, stale and too large.
func TestReadmeReceiverRuns(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(readme), "A receiver in Go:\n\n```go\n")
	src, _, ok2 := strings.Cut(rest, "\n```\n")
	if !ok || !ok2 {
		t.Fatal("README.md: no ```go block after \"A receiver in Go:\"")
	}
	f := newFixture(t)
	if err := os.WriteFile(filepath.Join(f.dir, "main.go"), []byte(src+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	build := exec.Command("go", "build", "-o", "receiver", "main.go")
	build.Dir = f.dir
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build -o receiver main.go of the README's receiver: %v\n%s", err, out)
	}
	secret := "0123456789abcdef0123456789abcdef"
	secrets := f.writeSecrets(secret)
	addr := freeAddr(t)
	stored := &pipelinetest.Logs{} // the receiver's output, read while it runs
	rcv := exec.Command(filepath.Join(f.dir, "receiver"), "-listen", addr, "-secret-file", secrets)
	rcv.Stdout, rcv.Stderr = stored, pipelinetest.LineLogger(t, "receiver: ")
	if err := rcv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rcv.Process.Kill(); rcv.Wait() })
	pipelinetest.Eventually(t, 20*time.Second, "the README's receiver listening", func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	})

	// pushpipe webhook POSTs every event, signed, and each is stored once.
	evs := f.emitEvents("readme", 12, pipeline.OutcomeSent, pipeline.OutcomeInvalid)
	f.startStage("webhook", f.stageArgs("webhook", "--url", "http://"+addr+"/", "--secret-file", secrets, "--linger", "0")...)
	pipelinetest.Eventually(t, time.Minute, "every event stored", func() bool { return len(storedIDs(stored)) >= len(evs) })
	var want []string
	for _, e := range evs {
		want = append(want, e.ID)
	}
	slices.Sort(want)
	if got := storedIDs(stored); !slices.Equal(got, want) {
		t.Errorf("the receiver stored %q, want each event once: %q", got, want)
	}

	// The same POST again (a retry after a lost answer) is a 2xx that
	// stores nothing new; the refusals are what pushpipe's log explains.
	body := []byte(`{"events":[{"id":"` + evs[0].ID + `","user_id":1,"outcome":"sent"}]}`)
	large := bytes.Repeat([]byte(" "), 10<<20+1)
	tests := []struct {
		name   string
		secret string
		at     time.Time
		body   []byte
		want   int
	}{
		{"repeated", secret, time.Now(), body, http.StatusNoContent},
		{"another secret", "another-secret-0123456789", time.Now(), body, http.StatusUnauthorized},
		{"stale", secret, time.Now().Add(-10 * time.Minute), body, http.StatusUnauthorized},
		{"too large", secret, time.Now(), large, http.StatusRequestEntityTooLarge},
	}
	for _, tt := range tests {
		req, err := http.NewRequest(http.MethodPost, "http://"+addr+"/", bytes.NewReader(tt.body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set(webhook.SignatureHeader, webhook.Sign([][]byte{[]byte(tt.secret)}, tt.at, tt.body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		resp.Body.Close()
		if resp.StatusCode != tt.want {
			t.Errorf("%s: the README's receiver answered %d, want %d", tt.name, resp.StatusCode, tt.want)
		}
	}
	if got := storedIDs(stored); len(got) != len(want) {
		t.Errorf("after a repeated POST the receiver stored %d events, want %d: %q", len(got), len(want), got)
	}
}

// storedIDs are the event ids the receiver printed, sorted: the first
// word of each line.
func storedIDs(b *pipelinetest.Logs) []string {
	var ids []string
	for _, l := range strings.Split(strings.TrimSpace(b.String()), "\n") {
		if id, _, _ := strings.Cut(l, " "); id != "" {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}
