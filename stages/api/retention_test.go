package api

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/pushpipe/pushpipe/pipeline/campaign"
	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
)

// Direct messages past --keep-messages after their expiry are purged (a
// chat app writes millions a day, and nothing deleted them): GET is then a
// 404, and the id is free for a new message, which starts from nothing.
// Messages within the horizon, by creation or by a long TTL, and campaigns
// of any age stay.
func TestMessagesPastTheHorizonArePurged(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	keep := campaign.MinKeepMessages
	a := newDeviceAPIConfig(t, env.Redis.Addr, Config{Auth: Auth{AdminToken: "op"}, Metrics: reg, KeepMessages: keep})
	msg := func(id string, ttl int) string {
		return `{"id":"` + id + `","app":"com.example.chat","users":[1,2],"ttl_seconds":` + strconv.Itoa(ttl) + `,"notification":{"body":"hi"}}`
	}
	for _, m := range []struct {
		id  string
		ttl int
	}{{"old", 3600}, {"old-long-ttl", 28 * 86400}, {"young", 3600}} {
		if r := a.do("POST", "/v1/messages", msg(m.id, m.ttl), "op"); r.status != http.StatusAccepted {
			t.Fatalf("create %s: %d %s", m.id, r.status, r.body)
		}
	}
	if r := a.do("POST", "/v1/campaigns", `{"id":"launch","app":"com.example.chat","channels":["x"],"notification":{"body":"x"}}`, "op"); r.status != http.StatusCreated {
		t.Fatalf("campaign: %d %s", r.status, r.body)
	}
	// Their creation moved back: "old" and the campaign expired 8 days
	// ago, "old-long-ttl" (28 days) a day from now, "young" an hour ago.
	for id, ago := range map[string]time.Duration{"old": keep + 25*time.Hour, "old-long-ttl": keep + 2*time.Hour, "launch": keep + 25*time.Hour, "young": 2 * time.Hour} {
		if _, err := a.db.Exec(context.Background(), `UPDATE campaigns SET created_at = now() - $2::interval WHERE id = $1`, id, ago.String()); err != nil {
			t.Fatal(err)
		}
	}

	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.srv.PurgeMessages(ctx) }()
	pipelinetest.Eventually(t, 30*time.Second, "the first pass", func() bool {
		return testutil.ToFloat64(a.srv.metrics.messagesPurged) >= 1
	})
	stop()
	if err := <-done; err != nil {
		t.Fatalf("PurgeMessages: %v", err)
	}
	if n := testutil.ToFloat64(a.srv.metrics.messagesPurged); n != 1 {
		t.Errorf("%v messages purged, want 1", n)
	}
	tests := []struct {
		path string
		want int
	}{
		{"/v1/messages/old", http.StatusNotFound},
		{"/v1/messages/old-long-ttl", http.StatusOK},
		{"/v1/messages/young", http.StatusOK},
		{"/v1/campaigns/launch", http.StatusOK},
	}
	for _, tt := range tests {
		if r := a.do("GET", tt.path, "", "op"); r.status != tt.want {
			t.Errorf("GET %s: %d %s, want %d", tt.path, r.status, r.body, tt.want)
		}
	}
	// The id again, with other content: a new message (202), not a 409.
	if r := a.do("POST", "/v1/messages", strings.Replace(msg("old", 3600), "hi", "again", 1), "op"); r.status != http.StatusAccepted {
		t.Errorf("the purged message's id again: %d %s, want 202", r.status, r.body)
	}
}
