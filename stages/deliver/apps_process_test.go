package deliver

import (
	"bytes"
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

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
	"github.com/pushpipe/pushpipe/stages/deliver/fakeprovider"
)

// watchWriter is stderr of a process, kept so a test can wait for a line.
type watchWriter struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (w *watchWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(b)
}

func (w *watchWriter) count(s string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return strings.Count(w.buf.String(), s)
}

// The binary: `pushpipe deliver --apps FILE` serves two apps, each with its
// own provider and key; a third app is added to the file and the process
// gets SIGHUP while the first app's campaign is sending: the third app's
// campaign goes out with no restart, and the first campaign loses nothing.
func TestDeliverProcessAppsFileAndSIGHUP(t *testing.T) {
	t.Parallel() // mostly waiting (a process starting, a reload), on uncapped fakes of its own
	f := newFixture(t)
	const users = 300
	apps := []*appUnderTest{
		{id: "news", topic: "com.example.news", keyID: "KEYNEWS001", teamID: "TEAMNEWS01"},
		{id: "sport", topic: "com.example.sport", keyID: "KEYSPORT01", teamID: "TEAMSPORT1", noFCM: true},
		{id: "games", topic: "com.example.games", keyID: "KEYGAMES01", teamID: "TEAMGAMES1"},
	}
	var pems []byte
	for i, a := range apps {
		a.fake = fakeprovider.Start(t, fakeprovider.Options{KeepRequests: true, APNsKeys: []string{a.teamID + "/" + a.keyID}})
		pems = append(pems, a.fake.CertPEM()...)
		a.devices = f.insertAppDevices(a.id, i, users)
		f.createAppCampaign("c-"+a.id, a.id, `{"title":"for `+a.id+`"}`)
	}
	dir := t.TempDir()
	certFile, appsFile := filepath.Join(dir, "fakes.pem"), filepath.Join(dir, "apps.toml")
	write := func(apps ...*appUnderTest) {
		var b strings.Builder
		for _, a := range apps {
			b.WriteString(a.entry(t))
		}
		if err := os.WriteFile(appsFile, []byte(b.String()), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(certFile, pems, 0o600); err != nil {
		t.Fatal(err)
	}
	write(apps[:2]...)

	httpAddr := freeAddr(t)
	stderr := &watchWriter{}
	cmd := exec.Command(pipelinetest.Binary(t), "deliver",
		"--redis-addr", env.Redis.Addr, "--database-url", f.dbURL,
		"--prefix", f.keys.Prefix, "--partitions", strconv.Itoa(f.keys.Partitions),
		"--consumer", "d1", "--http", httpAddr, "--log-level", "info", "--in-flight", "16",
		"--apps", appsFile)
	cmd.Env = append(os.Environ(), "SSL_CERT_FILE="+certFile)
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{name: "d1", cmd: cmd, http: httpAddr, done: make(chan struct{})}
	go func() { cmd.Wait(); close(p.done) }()
	t.Cleanup(func() { p.signal(syscall.SIGKILL) })
	pipelinetest.Eventually(t, 30*time.Second, "deliver ready", func() bool {
		resp, err := http.Get("http://" + httpAddr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})

	// news's provider holds its requests unanswered: its campaign is in
	// flight at the reload.
	release := apps[0].fake.Hold()
	defer release()
	f.emitUsers("c-news", userRange(users))
	f.emitUsers("c-sport", userRange(users))
	pipelinetest.Eventually(t, 30*time.Second, "news's sends in flight", func() bool { return apps[0].fake.Held() > 0 })
	write(apps...)
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	pipelinetest.Eventually(t, 30*time.Second, "apps file reloaded", func() bool { return stderr.count("SIGHUP: apps file reloaded") == 1 })
	if s := f.stats("c-news"); s[pipeline.StatUsersDone] >= users {
		t.Fatalf("news done (%v) with its sends held", s)
	}
	release()
	f.emitUsers("c-games", userRange(users))

	for _, a := range apps {
		s := f.waitDone("c-"+a.id, users, 90*time.Second)
		wantFailed := int64(0)
		if a.noFCM {
			wantFailed = users
		}
		if s[pipeline.StatSent] != int64(len(a.devices))-wantFailed || s[pipeline.StatFailed] != wantFailed {
			t.Errorf("app %s: counters %v, want %d sent and %d failed", a.id, s, int64(len(a.devices))-wantFailed, wantFailed)
		}
		checkApp(t, a)
		if d := a.fake.Summary().Duplicates; d != 0 {
			t.Errorf("app %s: %d duplicates", a.id, d)
		}
	}
	if inv := f.invalidations(); len(inv) != 0 {
		t.Errorf("%d tokens invalidated, want none", len(inv))
	}
	if p.cmd.ProcessState != nil {
		t.Fatal("deliver exited")
	}
}
