//go:build upgrade

// The upgrade drill builds an older release from git history and runs it
// for minutes: `make upgrade-drill` (-tags upgrade), not part of `make test`.

package drills

import (
	"cmp"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The release the upgrade drill starts from: deploy/README.md, "Upgrading".
// PUSHPIPE_UPGRADE_FROM names another commit (any the clone has);
// PUSHPIPE_UPGRADE_USERS sizes the campaign (the README's figures are of
// 200,000); PUSHPIPE_UPGRADE_ORDER (comma-separated) replaces the processes
// in another order than upgradeOrder; PUSHPIPE_UPGRADE_MIGRATE=last runs
// the new migrate after every process is new (the Job that failed to apply
// while the Deployments rolled). Since processes check the schema version
// at start (Globals.DB), "last" fails at the first swap when upgrading to
// a release with a newer migration: the new process refuses the old
// schema, naming `pushpipe migrate` (deploy/README.md, step 3).
const upgradeFrom = "5931b92"

// upgradeOrder is the order deploy/README.md gives: the API first (it only
// writes entries every release reads), then the stages from upstream down.
const upgradeOrder = "api,ingest,split,resolve,dedupe,deliver,deliver-2,webhook"

// buildRelease builds pushpipe as it was at commit, from this clone's
// history (git archive, then go build in that tree).
func buildRelease(t *testing.T, commit string) string {
	t.Helper()
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	if err := os.Mkdir(src, 0o755); err != nil {
		t.Fatal(err)
	}
	archive := exec.Command("sh", "-c", `cd "$(git rev-parse --show-toplevel)" && git archive "$0" | tar -x -C "$1"`, commit, src)
	if out, err := archive.CombinedOutput(); err != nil {
		t.Fatalf("git archive %s (a fresh clone has the whole history; a shallow one needs `git fetch --unshallow`): %v\n%s", commit, err, out)
	}
	out := filepath.Join(dir, "pushpipe-"+commit)
	// -trimpath: the packages this tree shares with the old one come from
	// the build cache, whatever directory the old tree is in.
	build := exec.Command("go", "build", "-trimpath", "-o", out, "./cmd/pushpipe")
	build.Dir = src
	if b, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build %s: %v\n%s", commit, err, b)
	}
	return out
}

// receiver is a webhook receiver that counts result events by id and by
// (campaign or message, token).
type receiver struct {
	mu     sync.Mutex
	posts  int
	byID   map[string]int
	bySend map[string]int // campaign or message + " " + token → events
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	var body struct {
		Events []struct {
			ID       string `json:"id"`
			Campaign string `json:"campaign"`
			Message  string `json:"message"`
			Token    string `json:"token"`
		} `json:"events"`
	}
	if err := json.NewDecoder(req.Body).Decode(&body); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.posts++
	for _, e := range body.Events {
		rc.byID[e.ID]++
		rc.bySend[cmp.Or(e.Campaign, e.Message)+" "+e.Token]++
	}
}

// startWebhook starts the webhook stage POSTing to a receiver of the test.
func (r *rig) startWebhook() *receiver {
	rc := &receiver{byID: map[string]int{}, bySend: map[string]int{}}
	srv := httptest.NewServer(rc)
	r.t.Cleanup(srv.Close)
	secret := filepath.Join(r.dir, "webhook.secret")
	if err := os.WriteFile(secret, []byte("upgrade-drill-secret-0123456789\n"), 0o600); err != nil {
		r.t.Fatal(err)
	}
	r.ops["webhook"] = r.freeAddr()
	r.start("webhook", "webhook", "--url", srv.URL, "--secret-file", secret, "--http", r.ops["webhook"],
		"--consumer", "webhook-1", "--claim-idle", "3s", "--shutdown-timeout", "5s")
	r.waitReady("webhook")
	return rc
}

// swap stops the named process (SIGTERM) and starts it again with binary,
// as a rolling Deployment replaces a pod, and waits until it is ready.
func (r *rig) swap(name, binary string) {
	r.t.Helper()
	p := r.stop(name)
	r.startWith(binary, p.name, p.args...)
	r.waitReady(name)
}

// messenger posts direct messages of a few users each until stopped, as a
// chat app does throughout an upgrade; it tolerates no refusal.
type messenger struct {
	stop chan struct{}
	done chan struct{}
	mu   sync.Mutex
	sent map[string][]int64 // message id → users
	errs []string
}

func (r *rig) startMessages(users int) *messenger {
	m := &messenger{stop: make(chan struct{}), done: make(chan struct{}), sent: map[string][]int64{}}
	go func() {
		defer close(m.done)
		for i := 0; ; i++ {
			select {
			case <-m.stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			from := 1 + (i*7)%(users-5)
			to := drillUsers(from, from+5)
			id := fmt.Sprintf("chat-%d", i)
			ids := make([]string, len(to))
			for j, u := range to {
				ids[j] = strconv.FormatInt(u, 10)
			}
			body := fmt.Sprintf(`{"id":%q,"app":%q,"users":[%s],"notification":{"title":"Chat","body":"%s"}}`,
				id, drillApp, strings.Join(ids, ","), id)
			req, _ := http.NewRequest(http.MethodPost, "http://"+r.apiAddr+"/v1/messages", strings.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+r.token)
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				continue // the API being replaced: its client retries, and so do we (a new id)
			}
			resp.Body.Close()
			m.mu.Lock()
			if resp.StatusCode == http.StatusAccepted {
				m.sent[id] = to
			} else if resp.StatusCode != http.StatusServiceUnavailable {
				m.errs = append(m.errs, fmt.Sprintf("%s: %s", id, resp.Status))
			}
			m.mu.Unlock()
		}
	}()
	return m
}

func (m *messenger) halt() {
	close(m.stop)
	<-m.done
}

// upgradeCounts are the figures of one upgrade run, logged for the README.
type upgradeCounts struct {
	Devices, CampaignReached, CampaignRepeats                int
	Messages, MessageDevices, MessageReached, MessageRepeats int
	Posts, Events, EventIDs, EventRepeats, EventsMissing     int
}

// A deployment of the previous release upgrades stage by stage while a
// campaign and a stream of direct messages go out: the new migrate Job
// first, then each process SIGTERMed and started with the new binary
// (two deliver processes one after the other, as a rolling Deployment),
// the new API running a while beside the old deliver, and deliver rolled
// back to the old release and forward again. Every device is reached
// once, every direct message's devices once, and the webhook receiver gets
// one event per device sent to (DESIGN: repeats only of sends in flight in
// a process that died; SIGTERM lets them finish).
func TestDrillUpgrade(t *testing.T) {
	old := buildRelease(t, cmp.Or(os.Getenv("PUSHPIPE_UPGRADE_FROM"), upgradeFrom))
	users := 20000
	if s := os.Getenv("PUSHPIPE_UPGRADE_USERS"); s != "" {
		var err error
		if users, err = strconv.Atoi(s); err != nil {
			t.Fatalf("PUSHPIPE_UPGRADE_USERS=%q: %v", s, err)
		}
	}
	// The campaign takes about 50 s at this cap (per provider, two of them):
	// in flight through every replacement.
	t.Logf("built %s", cmp.Or(os.Getenv("PUSHPIPE_UPGRADE_FROM"), upgradeFrom))
	r := newRig(t, rigOptions{Users: users, TPS: max(users/100, 100), Bin: old})
	r.startTwin("deliver")
	rc := r.startWebhook()

	msgs := r.startMessages(users)
	r.createCampaign("up-1")
	r.poll(30*time.Second, "first sends", func() bool {
		p, err := r.progress("up-1")
		return err == nil && p.Sent > 0
	})
	began := time.Now()
	step := func(what string) {
		p, _ := r.progress("up-1")
		t.Logf("%5.1fs %s: campaign sent %d of %d targets", time.Since(began).Seconds(), what, p.Sent, p.Targets)
	}
	step("first sends")
	migrate := func() {
		r.cliWith(bin, "migrate")
		step("new migrate applied")
		// A rolled-back migrate Job (the old image) finds nothing to
		// apply and leaves the newer schema alone.
		r.cliWith(old, "migrate")
	}
	last := os.Getenv("PUSHPIPE_UPGRADE_MIGRATE") == "last"
	if !last {
		migrate()
	}
	for _, name := range strings.Split(cmp.Or(os.Getenv("PUSHPIPE_UPGRADE_ORDER"), upgradeOrder), ",") {
		r.swap(name, bin)
		step("new " + name)
		if name == "api" {
			time.Sleep(2 * time.Second) // messages through the new API to old stages
		}
	}
	if last {
		migrate()
	}
	r.swap("deliver", old)
	step("deliver rolled back")
	time.Sleep(2 * time.Second)
	r.swap("deliver", bin)
	step("deliver forward again")
	msgs.halt()
	r.waitDone("up-1", 3*time.Minute)
	r.settle()

	var n upgradeCounts
	n.Devices = len(r.tokens)
	recs := r.receipts()
	perToken := map[string]int{}
	perMessage := map[string]map[string]int{}
	for _, rc := range recs {
		if rc.CollapseID == "up-1" {
			perToken[rc.Token]++
			continue
		}
		if perMessage[rc.CollapseID] == nil {
			perMessage[rc.CollapseID] = map[string]int{}
		}
		perMessage[rc.CollapseID][rc.Token]++
	}
	byUser := map[int64]string{}
	for tok, u := range r.tokens {
		byUser[u] = tok
	}
	for tok := range r.tokens {
		if c := perToken[tok]; c > 0 {
			n.CampaignReached++
			n.CampaignRepeats += c - 1
		}
	}
	msgs.mu.Lock()
	defer msgs.mu.Unlock()
	if len(msgs.errs) > 0 {
		t.Errorf("direct messages refused: %v", msgs.errs)
	}
	n.Messages = len(msgs.sent)
	var wantEvents []string
	for tok := range r.tokens {
		wantEvents = append(wantEvents, "up-1 "+tok)
	}
	for id, us := range msgs.sent {
		r.poll(30*time.Second, "message "+id+" done", func() bool {
			p, err := r.messageProgress(id)
			return err == nil && p.State == "done"
		})
		for _, u := range us {
			tok := byUser[u]
			n.MessageDevices++
			wantEvents = append(wantEvents, id+" "+tok)
			if c := perMessage[id][tok]; c > 0 {
				n.MessageReached++
				n.MessageRepeats += c - 1
			}
		}
	}
	r.poll(60*time.Second, "every result event at the receiver", func() bool {
		rc.mu.Lock()
		defer rc.mu.Unlock()
		return len(rc.byID) >= len(wantEvents)
	})
	rc.mu.Lock()
	n.Posts, n.EventIDs = rc.posts, len(rc.byID)
	for _, c := range rc.byID {
		n.Events += c
		n.EventRepeats += c - 1
	}
	for _, k := range wantEvents {
		if rc.bySend[k] == 0 {
			n.EventsMissing++
		}
	}
	rc.mu.Unlock()
	t.Logf("upgrade from %s: %+v", cmp.Or(os.Getenv("PUSHPIPE_UPGRADE_FROM"), upgradeFrom), n)
	if n.CampaignReached != n.Devices || n.MessageReached != n.MessageDevices || n.EventsMissing != 0 {
		t.Errorf("not every device reached: %+v", n)
	}
	if n.CampaignRepeats+n.MessageRepeats != 0 {
		t.Errorf("repeated sends with every process stopped by SIGTERM: %+v", n)
	}
}
