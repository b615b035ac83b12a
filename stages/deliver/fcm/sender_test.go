package fcm

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pushpipe/pushpipe/stages/deliver/fakeprovider"
	"github.com/pushpipe/pushpipe/stages/deliver/push"
)

func TestSendAcceptedWithCollapseKey(t *testing.T) {
	fake := fakeprovider.Start(t, fakeprovider.Options{})
	s := newSender(t, fake)
	ctx := context.Background()
	sends := []push.Notification{
		{Token: token(1), Title: "t", Body: "b", CollapseID: "c1", Data: map[string]json.RawMessage{"k": json.RawMessage(`"v"`)}},
		{Token: token(2), Title: "t", Body: "b", CollapseID: "c1"},
		{Token: token(1), Title: "t", Body: "b", CollapseID: "c1"}, // a re-send after a crash
		{Token: token(3), Title: "t", Body: "b", CollapseID: "c2", Expires: time.Now().Add(time.Hour), HighPriority: true},
	}
	for _, n := range sends {
		if r := s.Send(ctx, n); r.Outcome != push.Sent || r.Status != http.StatusOK {
			t.Fatalf("Send(%s) = %+v, want sent", n.Token, r)
		}
	}
	sum := fake.Summary()
	if sum.Accepted != 4 || sum.Unique != 3 || sum.Duplicates != 1 || sum.Requests != 4 {
		t.Errorf("summary %+v, want 4 requests, 4 accepted, 3 unique, 1 duplicate", sum)
	}
	if sum.ByCollapseID["c1"] != 3 || sum.ByCollapseID["c2"] != 1 {
		t.Errorf("by_collapse_id = %v, want c1:3 c2:1", sum.ByCollapseID)
	}
	rs := fake.Receipts()
	if len(rs) != 4 || rs[3].Provider != "fcm" || rs[3].Token != token(3) || rs[3].CollapseID != "c2" {
		t.Errorf("receipts = %+v", rs)
	}
}

func TestSendClassifiesProviderAnswers(t *testing.T) {
	force := func(status int, code string) func(string) (int, string) {
		return func(string) (int, string) { return status, code }
	}
	tests := []struct {
		name   string
		give   fakeprovider.Options
		n      push.Notification
		want   push.Outcome
		status int
		reason string // prefix
		fatal  bool
	}{
		{name: "unregistered", give: fakeprovider.Options{UnregisteredRate: 1},
			want: push.Invalid, status: 404, reason: "UNREGISTERED"},
		{name: "malformed token", give: fakeprovider.Options{BadTokenRate: 1},
			want: push.Invalid, status: 400, reason: "INVALID_ARGUMENT: The registration token"},
		{name: "reserved data key", n: push.Notification{Data: map[string]json.RawMessage{"from": json.RawMessage(`"x"`)}},
			want: push.Failed, status: 400, reason: "INVALID_ARGUMENT: Invalid data payload key", fatal: true},
		{name: "payload too big", n: push.Notification{Data: map[string]json.RawMessage{"blob": json.RawMessage(`"` + strings.Repeat("x", 5000) + `"`)}},
			want: push.Failed, status: 400, reason: "INVALID_ARGUMENT: Message is too big", fatal: true},
		{name: "invalid argument of unknown cause", give: fakeprovider.Options{ForceStatus: force(400, "INVALID_ARGUMENT")},
			want: push.Failed, status: 400, reason: "INVALID_ARGUMENT"},
		{name: "sender id mismatch", give: fakeprovider.Options{ForceStatus: force(403, "SENDER_ID_MISMATCH")},
			want: push.Failed, status: 403, reason: "SENDER_ID_MISMATCH"},
		{name: "apns auth error", give: fakeprovider.Options{ForceStatus: force(401, "THIRD_PARTY_AUTH_ERROR")},
			want: push.Failed, status: 401, reason: "THIRD_PARTY_AUTH_ERROR", fatal: true},
		{name: "unauthenticated", give: fakeprovider.Options{RequireAuth: true},
			want: push.Failed, status: 401, reason: "UNAUTHENTICATED", fatal: true},
		{name: "permission denied", give: fakeprovider.Options{ForceStatus: force(403, "")},
			want: push.Failed, status: 403, reason: "PERMISSION_DENIED", fatal: true},
		{name: "internal", give: fakeprovider.Options{ForceStatus: force(500, "INTERNAL")},
			want: push.Retry, status: 500, reason: "INTERNAL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := fakeprovider.Start(t, tt.give)
			s := newSender(t, fake)
			n := tt.n
			n.Token = token(7)
			r := s.Send(context.Background(), n)
			if r.Outcome != tt.want || r.Status != tt.status || !strings.HasPrefix(r.Reason, tt.reason) || r.CampaignFatal != tt.fatal {
				t.Errorf("Send = %+v, want outcome %v status %d reason %q... fatal %v", r, tt.want, tt.status, tt.reason, tt.fatal)
			}
			if n := fake.Summary().Requests; n != 1 {
				t.Errorf("fake saw %d requests, want 1", n)
			}
		})
	}
}

func TestOverTPSIsRetriedWithRetryAfter(t *testing.T) {
	fake := fakeprovider.Start(t, fakeprovider.Options{TPS: 1})
	s := newSender(t, fake)
	var refused int
	for i := range 3 {
		r := s.Send(context.Background(), push.Notification{Token: token(i)})
		switch r.Outcome {
		case push.Sent:
		case push.Retry:
			refused++
			if r.Status != 429 || r.Reason != "QUOTA_EXCEEDED" || r.RetryAfter <= 0 || r.RetryAfter > time.Second || !r.Throttled {
				t.Errorf("over TPS: %+v, want 429 QUOTA_EXCEEDED with Retry-After within 1s, Throttled", r)
			}
		default:
			t.Fatalf("Send = %+v", r)
		}
	}
	if refused == 0 || fake.Summary().RejectedOverTPS != uint64(refused) {
		t.Errorf("refused %d, fake counted %d over TPS; want the same, at least 1", refused, fake.Summary().RejectedOverTPS)
	}
}

// TestOutageIsOneRequestThenRecovers also proves the SDK's own 503 retries
// are off: it would wait out Retry-After and ask again up to four times.
func TestOutageIsOneRequestThenRecovers(t *testing.T) {
	// An outage the test ends itself: a timed one may be over before a
	// loaded machine's first request (sender, handshake) reaches it.
	fake := fakeprovider.Start(t, fakeprovider.Options{Outage: time.Hour})
	s := newSender(t, fake)
	r := s.Send(context.Background(), push.Notification{Token: token(1)})
	if r.Outcome != push.Retry || r.Status != 503 || r.RetryAfter != time.Hour {
		t.Fatalf("during outage: %+v, want retry 503 with the outage's Retry-After, 1h", r)
	}
	if n := fake.Summary().Requests; n != 1 {
		t.Fatalf("one Send made %d requests, want 1", n)
	}
	fake.SetOutage(0)
	deadline := time.Now().Add(10 * time.Second)
	for {
		r = s.Send(context.Background(), push.Notification{Token: token(1)})
		if r.Outcome == push.Sent {
			break
		}
		if r.Status != 503 || time.Now().After(deadline) {
			t.Fatalf("after outage: %+v", r)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestRandomErrorsAreOneRequestEach(t *testing.T) {
	fake := fakeprovider.Start(t, fakeprovider.Options{ErrorRate: 1})
	s := newSender(t, fake)
	const sends = 20
	for i := range sends {
		r := s.Send(context.Background(), push.Notification{Token: token(i)})
		if r.Outcome != push.Retry || (r.Status != 500 && r.Status != 503) {
			t.Fatalf("Send = %+v, want retry with 500 or 503", r)
		}
	}
	if n := fake.Summary().Requests; n != sends {
		t.Errorf("%d sends made %d requests", sends, n)
	}
}

func TestNetworkErrorIsRetryWithoutBackoff(t *testing.T) {
	fake := fakeprovider.Start(t, fakeprovider.Options{})
	s := newSender(t, fake)
	fake.Close()
	start := time.Now()
	r := s.Send(context.Background(), push.Notification{Token: token(1)})
	if r.Outcome != push.Retry || r.Status != 0 || !strings.HasPrefix(r.Reason, "network: ") {
		t.Fatalf("Send to a closed server = %+v, want retry with a network reason", r)
	}
	// The SDK alone would back off 0+1+2+4 s before giving up.
	if d := time.Since(start); d > time.Second {
		t.Errorf("Send took %v; the SDK's retries are not cut", d)
	}
}

func TestCanceledContextIsRetry(t *testing.T) {
	s := newSender(t, fakeprovider.Start(t, fakeprovider.Options{Latency: time.Second}))
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if r := s.Send(ctx, push.Notification{Token: token(1)}); r.Outcome != push.Retry || !strings.HasPrefix(r.Reason, "timeout") {
		t.Fatalf("Send past its deadline = %+v, want retry with a timeout reason", r)
	}
}

func TestEmptyTokenIsInvalidWithoutARequest(t *testing.T) {
	fake := fakeprovider.Start(t, fakeprovider.Options{})
	s := newSender(t, fake)
	if r := s.Send(context.Background(), push.Notification{}); r.Outcome != push.Invalid {
		t.Errorf("Send without a token = %+v, want invalid", r)
	}
	if n := fake.Summary().Requests; n != 0 {
		t.Errorf("fake saw %d requests, want none", n)
	}
}

func TestServiceAccountCredentials(t *testing.T) {
	fake := fakeprovider.Start(t, fakeprovider.Options{RequireAuth: true})
	sa := writeServiceAccount(t, "sa-project", fake.URL()+"/token")
	s := newSender(t, fake, func(c *Config) { c.CredentialsFile, c.Project = sa, "" })
	// RequireAuth refuses requests without a bearer token, so "sent" means
	// the token came from the service account's token endpoint.
	if r := s.Send(context.Background(), push.Notification{Token: token(1)}); r.Outcome != push.Sent {
		t.Fatalf("Send with a service account = %+v, want sent", r)
	}
}

func TestRefusedCredentialsFailCampaign(t *testing.T) {
	fake := fakeprovider.Start(t, fakeprovider.Options{})
	sa := writeServiceAccount(t, "sa-project", fake.URL()+"/no-such-token-endpoint")
	s := newSender(t, fake, func(c *Config) { c.CredentialsFile = sa })
	r := s.Send(context.Background(), push.Notification{Token: token(1)})
	if r.Outcome != push.Failed || !r.CampaignFatal || !strings.HasPrefix(r.Reason, "credentials refused") {
		t.Fatalf("Send with refused credentials = %+v, want failed, campaign fatal", r)
	}
	if strings.Contains(r.Reason, "PRIVATE KEY") {
		t.Fatalf("reason leaks key material: %q", r.Reason)
	}
}

func TestMessage(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	n := push.Notification{
		Token: token(1), Title: "Hello", Body: "World", Data: map[string]json.RawMessage{"deep_link": json.RawMessage(`"app://x"`)},
		CollapseID: "camp-1", Expires: now.Add(time.Hour), HighPriority: true, Category: "NEWS",
	}
	raw, err := json.Marshal(message(n, now))
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Token        string
		Notification struct{ Title, Body string }
		Data         map[string]string
		Android      struct {
			CollapseKey string `json:"collapse_key"`
			Priority    string
			TTL         string
		}
		APNS struct {
			Headers map[string]string
			Payload struct {
				Aps struct{ Category string }
			}
		}
	}
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatalf("%s: %v", raw, err)
	}
	if got.Token != n.Token || got.Notification.Title != "Hello" || got.Notification.Body != "World" || got.Data["deep_link"] != "app://x" {
		t.Errorf("message = %s", raw)
	}
	if got.Android.CollapseKey != "camp-1" || got.Android.Priority != "high" || got.Android.TTL != "3600s" {
		t.Errorf("android = %+v, want collapse_key camp-1, priority high, ttl 3600s", got.Android)
	}
	h := got.APNS.Headers
	if h["apns-collapse-id"] != "camp-1" || h["apns-priority"] != "10" || h["apns-expiration"] != "1700003600" || got.APNS.Payload.Aps.Category != "NEWS" {
		t.Errorf("apns = %+v", got.APNS)
	}

	low, _ := json.Marshal(message(push.Notification{Token: token(1)}, now))
	if !strings.Contains(string(low), `"priority":"normal"`) || strings.Contains(string(low), "ttl") || strings.Contains(string(low), "collapse") {
		t.Errorf("default message = %s, want normal priority, no ttl, no collapse key", low)
	}
}

// FCM's android ttl is what is left of the notification's life at each
// send, rounded up to the second; the cached message keeps its own.
func TestTTLLeftAtTheSend(t *testing.T) {
	expires := time.Unix(1_700_003_600, 0)
	tests := []struct {
		name string
		now  time.Time
		want string
	}{
		{"an hour left", expires.Add(-time.Hour), "3600s"},
		{"a part of a second is a second", expires.Add(-59*time.Second - 300*time.Millisecond), "60s"},
		{"at the expiry", expires, "0s"},
		{"past it", expires.Add(time.Minute), "0s"},
	}
	s := &Sender{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := push.Notification{Token: token(1), Key: "camp-1", CollapseID: "camp-1", Expires: expires}
			for range 2 { // rendered, then from the cache
				raw, _ := json.Marshal(s.message(n, tt.now))
				if !strings.Contains(string(raw), `"ttl":"`+tt.want+`"`) || !strings.Contains(string(raw), `"apns-expiration":"1700003600"`) {
					t.Fatalf("message at %v = %s, want ttl %s and apns-expiration 1700003600", tt.now, raw, tt.want)
				}
			}
		})
	}
}

// A burst of concurrent first sends shares one HTTP/2 connection instead of
// dialing a TLS connection per request.
func TestBurstDialsOnce(t *testing.T) {
	fake := fakeprovider.Start(t, fakeprovider.Options{})
	s := newSender(t, fake)
	var wg sync.WaitGroup
	for i := range 200 {
		wg.Go(func() {
			if r := s.Send(context.Background(), push.Notification{Token: fmt.Sprintf("fcm-token-%d", i)}); r.Outcome != push.Sent {
				t.Errorf("Send = %+v", r)
			}
		})
	}
	wg.Wait()
	if n := fake.Summary().Connections; n != 1 {
		t.Errorf("fake saw %d connections for 200 concurrent sends, want 1", n)
	}
}

// More sends at once than the endpoint's stream limit per connection (FCM's
// is about 100; deliver's --in-flight is 1024): they go out on more
// connections, each once. Queued on one connection they hung until their
// timeout, and some that the provider had taken were sent again.
func TestMoreSendsThanStreamsGoOutOnce(t *testing.T) {
	// A hung send waits forever; a slow one on a loaded 2-core CI box under
	// -race has taken over 5 s. Long enough for the second, short enough to
	// fail on the first.
	const hang = 30 * time.Second
	fake := fakeprovider.Start(t, fakeprovider.Options{MaxConcurrentStreams: 20})
	s := newSender(t, fake, func(c *Config) { c.Timeout = hang })
	fakeprovider.SendAll(t, fake, 3000, 100, func(i int) push.Result {
		return s.Send(context.Background(), push.Notification{Token: token(i), CollapseID: "c"})
	})
}
