package apns

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sideshow/apns2"

	"github.com/pushpipe/pushpipe/stages/deliver/fakeprovider"
	"github.com/pushpipe/pushpipe/stages/deliver/push"
)

func TestSendAcceptedWithCollapseID(t *testing.T) {
	fake := fakeprovider.Start(t, fakeprovider.Options{})
	s := newSender(t, fake)
	ctx := context.Background()
	sends := []push.Notification{
		{Token: hexToken(1), Title: "t", Body: "b", CollapseID: "c1"},
		{Token: hexToken(2), Title: "t", Body: "b", CollapseID: "c1"},
		{Token: hexToken(1), Title: "t", Body: "b", CollapseID: "c1"}, // a re-send after a crash
		{Token: hexToken(3), Title: "t", Body: "b", CollapseID: "c2"},
	}
	for _, n := range sends {
		if r := s.Send(ctx, n); r.Outcome != push.Sent || r.Status != http.StatusOK {
			t.Fatalf("Send(%s) = %+v, want sent", n.Token, r)
		}
	}
	sum := fake.Summary()
	if sum.Accepted != 4 || sum.Unique != 3 || sum.Duplicates != 1 {
		t.Errorf("summary accepted/unique/duplicates = %d/%d/%d, want 4/3/1", sum.Accepted, sum.Unique, sum.Duplicates)
	}
	if sum.ByCollapseID["c1"] != 3 || sum.ByCollapseID["c2"] != 1 {
		t.Errorf("by_collapse_id = %v, want c1:3 c2:1", sum.ByCollapseID)
	}
	rs := fake.Receipts()
	if len(rs) != 4 || rs[3].Provider != "apns" || rs[3].Token != hexToken(3) || rs[3].CollapseID != "c2" {
		t.Errorf("receipts = %+v", rs)
	}
}

func TestSendClassifiesProviderAnswers(t *testing.T) {
	force := func(status int, reason string) func(string) (int, string) {
		return func(string) (int, string) { return status, reason }
	}
	tests := []struct {
		name      string
		give      fakeprovider.Options
		n         push.Notification
		want      push.Outcome
		status    int
		reason    string
		fatal     bool
		sinceTime bool
	}{
		{name: "unregistered", give: fakeprovider.Options{UnregisteredRate: 1},
			want: push.Invalid, status: 410, reason: "Unregistered", sinceTime: true},
		{name: "bad device token", give: fakeprovider.Options{BadTokenRate: 1},
			want: push.Invalid, status: 400, reason: "BadDeviceToken"},
		{name: "provider token rejected", give: fakeprovider.Options{ForceStatus: force(403, "InvalidProviderToken")},
			want: push.Failed, status: 403, reason: "InvalidProviderToken", fatal: true},
		{name: "token of another app", give: fakeprovider.Options{ForceStatus: force(400, "DeviceTokenNotForTopic")},
			want: push.Failed, status: 400, reason: "DeviceTokenNotForTopic"},
		{name: "payload too large", give: fakeprovider.Options{},
			n:    push.Notification{Data: map[string]json.RawMessage{"blob": json.RawMessage(`"` + strings.Repeat("x", 5000) + `"`)}},
			want: push.Failed, status: 413, reason: "PayloadTooLarge", fatal: true},
		{name: "collapse id too long", give: fakeprovider.Options{},
			n:    push.Notification{CollapseID: strings.Repeat("c", 65)},
			want: push.Failed, status: 400, reason: "BadCollapseId", fatal: true},
		{name: "provider error", give: fakeprovider.Options{ForceStatus: force(500, "InternalServerError")},
			want: push.Retry, status: 500, reason: "InternalServerError"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSender(t, fakeprovider.Start(t, tt.give))
			n := tt.n
			n.Token = hexToken(7)
			before := time.Now().Truncate(time.Second)
			r := s.Send(context.Background(), n)
			if r.Outcome != tt.want || r.Status != tt.status || r.Reason != tt.reason || r.CampaignFatal != tt.fatal {
				t.Errorf("Send = %+v, want outcome %v status %d reason %q fatal %v", r, tt.want, tt.status, tt.reason, tt.fatal)
			}
			if tt.sinceTime && (r.InvalidSince.Before(before) || r.InvalidSince.After(time.Now())) {
				t.Errorf("InvalidSince = %v, want the 410 timestamp (about now)", r.InvalidSince)
			}
		})
	}
}

func TestRandomErrorsAreRetried(t *testing.T) {
	s := newSender(t, fakeprovider.Start(t, fakeprovider.Options{ErrorRate: 1}))
	for i := range 20 {
		r := s.Send(context.Background(), push.Notification{Token: hexToken(i)})
		if r.Outcome != push.Retry || (r.Status != 500 && r.Status != 503) {
			t.Fatalf("Send = %+v, want retry with 500 or 503", r)
		}
	}
}

func TestOverTPSIsRetriedWithRetryAfter(t *testing.T) {
	fake := fakeprovider.Start(t, fakeprovider.Options{TPS: 1})
	s := newSender(t, fake)
	var refused int
	// Three sends in well under a second cross at most one second boundary,
	// so at least one is over a 1/s limit.
	for i := range 3 {
		r := s.Send(context.Background(), push.Notification{Token: hexToken(i)})
		switch r.Outcome {
		case push.Sent:
		case push.Retry:
			refused++
			if r.Status != 429 || r.Reason != apns2.ReasonTooManyRequests || r.RetryAfter <= 0 || r.RetryAfter > time.Second || r.Throttled {
				t.Errorf("over TPS: %+v, want 429 TooManyRequests with Retry-After within 1s, not Throttled (per device)", r)
			}
		default:
			t.Fatalf("Send = %+v", r)
		}
	}
	if refused == 0 || fake.Summary().RejectedOverTPS != uint64(refused) {
		t.Errorf("refused %d, fake counted %d over TPS; want the same, at least 1", refused, fake.Summary().RejectedOverTPS)
	}
}

func TestOutageIsRetriedThenRecovers(t *testing.T) {
	// An outage the test ends itself: a timed one may be over before a
	// loaded machine's first request (sender, handshake) reaches it.
	fake := fakeprovider.Start(t, fakeprovider.Options{Outage: time.Hour})
	s := newSender(t, fake)
	r := s.Send(context.Background(), push.Notification{Token: hexToken(1)})
	if r.Outcome != push.Retry || r.Status != 503 || r.RetryAfter != time.Hour {
		t.Fatalf("during outage: %+v, want retry 503 with the outage's Retry-After, 1h", r)
	}
	fake.SetOutage(0)
	deadline := time.Now().Add(10 * time.Second)
	for {
		r = s.Send(context.Background(), push.Notification{Token: hexToken(1)})
		if r.Outcome == push.Sent {
			break
		}
		if r.Status != 503 || time.Now().After(deadline) {
			t.Fatalf("after outage: %+v", r)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if sum := fake.Summary(); sum.Accepted != 1 || sum.Errors == 0 {
		t.Errorf("summary %+v, want 1 accepted and the outage counted as errors", sum)
	}
}

func TestNetworkErrorIsRetry(t *testing.T) {
	fake := fakeprovider.Start(t, fakeprovider.Options{})
	s := newSender(t, fake)
	fake.Close()
	tok := hexToken(42)
	r := s.Send(context.Background(), push.Notification{Token: tok})
	if r.Outcome != push.Retry || r.Status != 0 || !strings.HasPrefix(r.Reason, "network: ") {
		t.Fatalf("Send to a closed server = %+v, want retry with a network reason", r)
	}
	if strings.Contains(r.Reason, tok) {
		t.Errorf("reason %q repeats the request URL", r.Reason)
	}
}

func TestCanceledContextIsRetry(t *testing.T) {
	s := newSender(t, fakeprovider.Start(t, fakeprovider.Options{Latency: time.Second}))
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if r := s.Send(ctx, push.Notification{Token: hexToken(1)}); r.Outcome != push.Retry || !strings.HasPrefix(r.Reason, "timeout") {
		t.Fatalf("Send past its deadline = %+v, want retry with a timeout reason", r)
	}
}

func TestMalformedTokenIsInvalidWithoutARequest(t *testing.T) {
	fake := fakeprovider.Start(t, fakeprovider.Options{})
	s := newSender(t, fake)
	for _, tok := range []string{"", "../../_receipts", "abc?x=1", "ab#c", "ab/cd"} {
		if r := s.Send(context.Background(), push.Notification{Token: tok}); r.Outcome != push.Invalid {
			t.Errorf("Send(%q) = %+v, want invalid", tok, r)
		}
	}
	if n := fake.Summary().Requests; n != 0 {
		t.Errorf("fake saw %d requests, want none", n)
	}
}

func TestCertificateAuth(t *testing.T) {
	fake := fakeprovider.Start(t, fakeprovider.Options{})
	s := newSender(t, fake, func(c *Config) {
		c.KeyFile, c.KeyID, c.TeamID = "", "", ""
		c.CertFile = writeClientPEM(t)
	})
	// The fake refuses a request with neither a bearer nor a client
	// certificate, so "sent" proves the certificate was presented.
	if c := s.clients[0]; c.Token != nil {
		t.Fatal("certificate client carries a provider token")
	}
	if r := s.Send(context.Background(), push.Notification{Token: hexToken(1)}); r.Outcome != push.Sent {
		t.Fatalf("Send with a client certificate = %+v, want sent", r)
	}
}

func TestSpreadsOverConns(t *testing.T) {
	fake := fakeprovider.Start(t, fakeprovider.Options{})
	s := newSender(t, fake, func(c *Config) { c.Conns = 3 })
	for i := range 9 {
		if r := s.Send(context.Background(), push.Notification{Token: hexToken(i)}); r.Outcome != push.Sent {
			t.Fatalf("Send = %+v", r)
		}
	}
	if n := fake.Summary().Connections; n != 3 {
		t.Errorf("fake saw %d connections, want 3", n)
	}
}

// A burst of concurrent first sends shares the one connection instead of
// dialing a TLS connection per request.
func TestBurstDialsOnce(t *testing.T) {
	fake := fakeprovider.Start(t, fakeprovider.Options{})
	s := newSender(t, fake, func(c *Config) { c.Conns = 1 })
	var wg sync.WaitGroup
	for i := range 200 {
		wg.Go(func() {
			if r := s.Send(context.Background(), push.Notification{Token: hexToken(i)}); r.Outcome != push.Sent {
				t.Errorf("Send = %+v", r)
			}
		})
	}
	wg.Wait()
	if n := fake.Summary().Connections; n != 1 {
		t.Errorf("fake saw %d connections for 200 concurrent sends, want 1", n)
	}
}

func TestRender(t *testing.T) {
	s := &Sender{topic: "com.example.app"}
	expires := time.Unix(1_700_000_000, 0)
	// Without a Key the payload is rendered per send; with one it is
	// rendered once and reused for every token of the campaign.
	for _, key := range []string{"", "camp-1", "camp-1"} {
		n := push.Notification{
			Token: hexToken(len(key)), Key: key, Title: "Hello", Body: "World", Category: "NEWS",
			Data:       map[string]json.RawMessage{"deep_link": json.RawMessage(`"app://x"`), "aps": json.RawMessage(`"must not replace aps"`)},
			CollapseID: "camp-1", Expires: expires, HighPriority: true,
		}
		note := s.notification(n)
		if note.Topic != "com.example.app" || note.CollapseID != "camp-1" || note.PushType != apns2.PushTypeAlert ||
			note.Priority != apns2.PriorityHigh || !note.Expiration.Equal(expires) || note.DeviceToken != n.Token {
			t.Errorf("notification = %+v", note)
		}
		raw, err := note.MarshalJSON() // what apns2 sends
		if err != nil {
			t.Fatal(err)
		}
		var got struct {
			APS struct {
				Alert    struct{ Title, Body string } `json:"alert"`
				Category string                       `json:"category"`
			} `json:"aps"`
			DeepLink string `json:"deep_link"`
		}
		if err := json.Unmarshal(raw, &got); err != nil {
			t.Fatalf("key %q: payload %s: %v", key, raw, err)
		}
		if got.APS.Alert.Title != "Hello" || got.APS.Alert.Body != "World" || got.APS.Category != "NEWS" || got.DeepLink != "app://x" {
			t.Errorf("key %q: payload = %s", key, raw)
		}
	}

	low := s.notification(push.Notification{Token: hexToken(1)})
	if low.Priority != apns2.PriorityLow || !low.Expiration.IsZero() {
		t.Errorf("default notification: priority %d expiration %v, want 5 and none", low.Priority, low.Expiration)
	}
}

// More sends at once than APNs's stream limit per connection: they go out
// on more connections, each once. Queued on one connection they hung until
// their timeout.
func TestMoreSendsThanStreamsGoOutOnce(t *testing.T) {
	// A hung send waits forever; a slow one on a loaded 2-core CI box under
	// -race has taken over 5 s. Long enough for the second, short enough to
	// fail on the first.
	const hang = 30 * time.Second
	fake := fakeprovider.Start(t, fakeprovider.Options{MaxConcurrentStreams: 20})
	s := newSender(t, fake, func(c *Config) { c.Conns = 1; c.Timeout = hang })
	fakeprovider.SendAll(t, fake, 3000, 100, func(i int) push.Result {
		return s.Send(context.Background(), push.Notification{Token: hexToken(i), CollapseID: "c"})
	})
}
