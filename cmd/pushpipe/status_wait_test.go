package main

import (
	"strings"
	"testing"
	"time"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/campaign"
)

// `status ID --wait` follows a campaign created elsewhere (the API,
// another shell) to its end with send --wait's exit status: the walk's
// `pushpipe status ID --wait` was "unknown flag --wait", and a script that
// created a campaign with curl had no way to wait for it.
func TestStatusWaitFollowsToTheEnd(t *testing.T) {
	t.Parallel()
	r, rdb := testRedis(t)
	url, db := testDatabase(t)
	keys := pipeline.NewKeys("pp", pipeline.DefaultPartitions)
	at := time.Now().Add(time.Hour).Truncate(time.Second)
	for _, id := range []string{"going", "off"} {
		c := campaign.Campaign{ID: id, App: "a", Channels: []string{"x"}, Title: "t", SendAt: at}
		if _, _, err := campaign.Create(t.Context(), rdb, db, keys, c); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := campaign.Cancel(t.Context(), rdb, db, keys, "off"); err != nil {
		t.Fatal(err)
	}
	src := campaignSource{rdb: rdb, keys: keys, db: db}
	wait := func(id string) (string, error) {
		cli := parse(t, "status", "--redis-addr", r.Addr, "--database-url", url, "--wait", "--interval", "100ms", id)
		var out lockedBuffer
		err := cli.Status.wait(t.Context(), src, &out, false)
		return out.String(), err
	}

	// One that ended already: its summary, and exit 1.
	out, err := wait("off")
	if exitCode(err) != 1 || err == nil || !strings.Contains(err.Error(), "campaign off was canceled") || !strings.Contains(out, "canceled") {
		t.Errorf("status --wait off: %v (exit %d), printed\n%s\nwant its summary and exit 1, canceled", err, exitCode(err), out)
	}
	// One still to come: followed until it ends, not shown once.
	done := make(chan error, 1)
	go func() { _, err := wait("going"); done <- err }()
	select {
	case err := <-done:
		t.Fatalf("status --wait going returned (%v) while the campaign was scheduled", err)
	case <-time.After(500 * time.Millisecond):
	}
	if _, err := campaign.Cancel(t.Context(), rdb, db, keys, "going"); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if exitCode(err) != 1 || !strings.Contains(err.Error(), "was canceled") {
			t.Errorf("status --wait going, canceled meanwhile: %v (exit %d), want exit 1, canceled", err, exitCode(err))
		}
	case <-time.After(30 * time.Second):
		t.Fatal("status --wait going did not end within 30 s of the campaign's cancel")
	}
	// An id of nothing is said as status says it.
	if _, err := wait("nope"); err == nil || !strings.Contains(err.Error(), "no campaign or direct message nope: check the id") {
		t.Errorf("status --wait nope: %v, want status's unknown id", err)
	}
}

// --wait needs an id, and refreshes nothing else.
func TestStatusWaitUsage(t *testing.T) {
	t.Parallel()
	tests := []struct {
		give []string
		want string
	}{
		{[]string{"status", "--wait"}, "--wait: give the id of the campaign or direct message to follow"},
		{[]string{"status", "c1", "--wait", "--watch"}, "give one or the other"},
		{[]string{"status", "c1", "--wait", "--json"}, "give one or the other"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.give, " "), func(t *testing.T) {
			_, err := fresh(takeParser(t).k).Parse(tt.give)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("pushpipe %s: %v, want %q", strings.Join(tt.give, " "), err, tt.want)
			}
		})
	}
	if cli := parse(t, "status", "c1", "--wait"); !cli.Status.Wait {
		t.Error("status c1 --wait: parsed without --wait")
	}
}
