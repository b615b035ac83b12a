package drills

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"
)

// postMessage sends a direct message to the given drill users and returns
// the status code.
func (r *rig) postMessage(id, category string, users []int64) int {
	r.t.Helper()
	ids := make([]string, len(users))
	for i, u := range users {
		ids[i] = fmt.Sprint(u)
	}
	body := fmt.Sprintf(`{"id":%q,"app":%q,"users":[%s],"category":%q,"notification":{"title":"Chat","body":"%s"}}`,
		id, drillApp, strings.Join(ids, ","), category, id)
	return r.sendMessage(body)
}

// sendMessage POSTs a message's body and returns the status code.
func (r *rig) sendMessage(body string) int {
	r.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, "http://"+r.apiAddr+"/v1/messages", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+r.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		r.t.Fatal(err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

type messageProgress struct {
	State   string `json:"state"`
	Targets int64  `json:"targets"`
	Sent    int64  `json:"sent"`
	Failed  int64  `json:"failed"`
	Muted   int64  `json:"muted"`
}

func (r *rig) messageProgress(id string) (messageProgress, error) {
	req, _ := http.NewRequest(http.MethodGet, "http://"+r.apiAddr+"/v1/messages/"+id, nil)
	req.Header.Set("Authorization", "Bearer "+r.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return messageProgress{}, err
	}
	defer resp.Body.Close()
	var p messageProgress
	if resp.StatusCode != http.StatusOK {
		return p, fmt.Errorf("GET message: %s", resp.Status)
	}
	return p, json.NewDecoder(resp.Body).Decode(&p)
}

// drillUsers are the seeded users with index in [from, to): ids 173·g.
func drillUsers(from, to int) []int64 {
	var out []int64
	for g := from; g < to; g++ {
		out = append(out, int64(g)*173)
	}
	return out
}

// checkOnce checks the receipts of one collapse id: each of want's devices
// reached, none other, and at most maxDups repeats in all.
func (r *rig) checkOnce(id string, want []int64, maxDups int) {
	r.t.Helper()
	wanted := map[int64]bool{}
	for _, u := range want {
		wanted[u] = true
	}
	per := map[int64]int{}
	for _, rc := range r.receipts() {
		if rc.CollapseID != id {
			continue
		}
		u, ok := r.tokens[rc.Token]
		if !ok || !wanted[u] {
			r.t.Errorf("%s reached user %d (token %s), who was not listed", id, u, rc.Token)
		}
		per[u]++
	}
	dups := 0
	for _, u := range want {
		switch n := per[u]; {
		case n == 0:
			r.t.Errorf("%s never reached user %d", id, u)
		case n > 2:
			r.t.Errorf("%s reached user %d %d times", id, u, n)
		default:
			dups += n - 1
		}
	}
	if dups > maxDups {
		r.t.Errorf("%s: %d repeated sends, at most %d expected", id, dups, maxDups)
	}
}

// A message sent while a campaign's backlog fills dedupe and deliver rides
// the express lane and finishes while the campaign is still sending; its
// listed users (repeats and an unknown id among them) are reached once
// each, a user who muted its category is counted muted and not reached.
func TestDrillMessageOvertakesCampaign(t *testing.T) {
	r := newRig(t, rigOptions{Users: 4000, TPS: 500})
	r.createCampaign("bulk")
	r.poll(60*time.Second, "the campaign sending", func() bool {
		s, err := r.summary()
		return err == nil && s.Accepted >= uint64(r.opts.Users)/8
	})
	req, _ := http.NewRequest(http.MethodPut, "http://"+r.apiAddr+"/v1/users/173/preferences", strings.NewReader(`{"muted_categories":["chat"]}`))
	req.Header.Set("Authorization", "Bearer "+r.token)
	req.Header.Set("Content-Type", "application/json")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusNoContent {
		t.Fatalf("preferences: %v %v", resp, err)
	}
	listed := drillUsers(1, 60)
	users := append(append([]int64{7}, listed...), listed[:10]...) // an unknown id, repeats
	if code := r.postMessage("chat-1", "chat", users); code != http.StatusAccepted {
		t.Fatalf("POST /v1/messages: %d", code)
	}
	var mp messageProgress
	r.poll(60*time.Second, "message chat-1 done", func() bool {
		var err error
		mp, err = r.messageProgress("chat-1")
		return err == nil && mp.State == "done"
	})
	cp, err := r.progress("bulk")
	if err != nil {
		t.Fatal(err)
	}
	// Sent at a quarter of the campaign and done within a few hundred sends
	// of it: waiting behind the bulk backlog it would finish near its end.
	if cp.State == "done" || cp.Sent >= int64(r.opts.Users)*3/4 {
		t.Errorf("the campaign was at %+v when the message finished: the express lane waited behind it", cp)
	}
	if mp.Targets != 59 || mp.Muted != 1 || mp.Sent != 58 || mp.Failed != 0 {
		t.Errorf("message progress %+v, want 59 targets (58 with a device, 1 unknown), 1 muted, 58 sent", mp)
	}
	if code := r.postMessage("chat-1", "chat", users); code != http.StatusOK {
		t.Errorf("same message again: %d, want 200", code)
	}
	// status shows a message's progress as the message reports it, not as
	// a campaign's (which would never see it split).
	if text := r.cli("status", "chat-1"); !strings.Contains(text, "message chat-1  done") || !strings.Contains(text, "59 / 59 people") ||
		!strings.Contains(text, "sent 58 ") {
		t.Errorf("status chat-1:\n%s", text)
	}
	r.waitDone("bulk", 120*time.Second)
	r.settle()
	r.checkOnce("chat-1", listed[1:], 0)
	t.Logf("message done %+v while the campaign was at %+v", mp, cp)
}

// deliver is SIGKILLed while it sends a message: after its restart the
// message completes, every listed device reached once, except the sends in
// flight at the kill, each repeated with the message's collapse id.
func TestDrillMessageDeliverKilled(t *testing.T) {
	parallelDrill(t)
	r := newRig(t, rigOptions{Users: 3000, TPS: 400, Deliver: []string{"--express-share", "0.5", "--express-in-flight", "64"}})
	listed := drillUsers(1, 2001)
	if code := r.postMessage("kill-1", "", listed); code != http.StatusAccepted {
		t.Fatalf("POST /v1/messages: %d", code)
	}
	r.poll(60*time.Second, "a quarter of the message sent", func() bool {
		s, err := r.summary()
		return err == nil && s.ByCollapseID["kill-1"] >= 500
	})
	r.restart(r.kill("deliver"))
	r.poll(120*time.Second, "message kill-1 done", func() bool {
		mp, err := r.messageProgress("kill-1")
		return err == nil && mp.State == "done"
	})
	r.settle()
	r.checkOnce("kill-1", listed, 64)
}

// postTokens sends a direct message to raw tokens of seeded devices (the
// platform told by the token's shape, as seed makes them) and returns the
// status code.
func (r *rig) postTokens(id string, tokens []string) int {
	r.t.Helper()
	items := make([]string, len(tokens))
	for i, tok := range tokens {
		platform := "ios"
		if strings.HasPrefix(tok, "fcm_") {
			platform = "android"
		}
		items[i] = fmt.Sprintf(`{"platform":%q,"token":%q}`, platform, tok)
	}
	body := fmt.Sprintf(`{"id":%q,"app":%q,"tokens":[%s],"notification":{"title":"Raw","body":"%s"}}`,
		id, drillApp, strings.Join(items, ","), id)
	return r.sendMessage(body)
}

// kill SIGKILLs a stage process and returns it, for restart.
func (r *rig) kill(name string) *proc {
	r.t.Helper()
	for i, p := range r.procs {
		if p.name == name {
			p.cmd.Process.Signal(syscall.SIGKILL)
			<-p.done
			r.procs = append(r.procs[:i], r.procs[i+1:]...)
			return p
		}
	}
	r.t.Fatalf("no process %s", name)
	return nil
}

// dedupe is SIGKILLed right after a 10,000-user message and a burst of
// chat-sized ones were accepted (some of their dedupe entries read, some
// not), more messages and a raw-token one arrive while it is down; then
// deliver is SIGKILLed while the big message is sending at a provider
// 20 ms away. Every message completes; every listed device (or raw token)
// got its message once, except the sends in flight at deliver's kill, at
// most its express in-flight slots in all, and a repeat is recognisable:
// it carries the message's collapse id like the first copy.
func TestDrillMessageDedupeAndDeliverKilled(t *testing.T) {
	parallelDrill(t)
	const inFlight = 32
	r := newRig(t, rigOptions{Users: 10_000, TPS: 2000, Fake: []string{"--latency", "20ms"},
		Deliver: []string{"--express-share", "0.5", "--express-in-flight", fmt.Sprint(inFlight)}})
	want := map[string][]int64{"big": drillUsers(1, 10_001)}
	post := func(id string, users []int64) {
		if code := r.postMessage(id, "", users); code != http.StatusAccepted {
			t.Fatalf("POST /v1/messages %s: %d", id, code)
		}
		want[id] = users
	}
	post("big", want["big"])
	for k := range 10 {
		post(fmt.Sprintf("chat-%d", k), drillUsers(1+k*50, 51+k*50))
	}
	dedupe := r.kill("dedupe")
	for k := 10; k < 20; k++ {
		post(fmt.Sprintf("chat-%d", k), drillUsers(1+k*50, 51+k*50))
	}
	// Raw tokens of users 9001..10000: a message dedupe never sees.
	raw := drillUsers(9001, 10_001)
	byUser := map[int64]string{}
	for tok, u := range r.tokens {
		byUser[u] = tok
	}
	tokens := make([]string, len(raw))
	for i, u := range raw {
		tokens[i] = byUser[u]
	}
	if code := r.postTokens("raw", tokens); code != http.StatusAccepted {
		t.Fatalf("POST /v1/messages raw: %d", code)
	}
	want["raw"] = raw
	r.restart(dedupe)

	r.poll(120*time.Second, "a third of the big message sent", func() bool {
		s, err := r.summary()
		return err == nil && s.ByCollapseID["big"] >= 3000
	})
	r.restart(r.kill("deliver"))
	for id := range want {
		r.poll(180*time.Second, "message "+id+" done", func() bool {
			mp, err := r.messageProgress(id)
			return err == nil && mp.State == "done"
		})
	}
	sum := r.settle()
	for id, users := range want {
		r.checkOnce(id, users, inFlight)
	}
	for _, rc := range r.receipts() {
		if _, ok := want[rc.CollapseID]; !ok {
			t.Errorf("token %s was sent with collapse id %q, which is no message's", rc.Token, rc.CollapseID)
		}
	}
	if sum.Duplicates > inFlight {
		t.Errorf("the provider saw %d repeats in all, at most %d (deliver's express sends in flight at its kill)", sum.Duplicates, inFlight)
	}
	if big, err := r.messageProgress("big"); err != nil || big.Targets != 10_000 || big.Sent != 10_000 {
		t.Errorf("big message progress %+v (%v), want 10000 targets and sent", big, err)
	}
	t.Logf("provider: %d accepted, %d repeats", sum.Accepted, sum.Duplicates)
}
