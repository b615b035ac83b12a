// Package apns sends notifications to Apple Push Notification service with
// github.com/sideshow/apns2, over a few long-lived HTTP/2 connections, and
// classifies every answer into a push.Result.
package apns

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sideshow/apns2"
	"github.com/sideshow/apns2/certificate"
	"github.com/sideshow/apns2/payload"
	"github.com/sideshow/apns2/token"

	"github.com/pushpipe/pushpipe/stages/deliver/push"
)

// Sender is a push.Sender for APNs. It is safe for concurrent use; the
// deliver stage decides the concurrency.
type Sender struct {
	clients []*apns2.Client
	warmups []*push.Warmup // per client: its first send goes alone
	next    atomic.Uint64
	topic   string
	timeout time.Duration

	// payloads caches the JSON payload per Notification.Key: rendering it
	// is a few microseconds per send, the same bytes for a whole campaign.
	payloads sync.Map // key → []byte
	cached   atomic.Int64
}

// maxCachedPayloads bounds the payload cache; past it, it starts over.
const maxCachedPayloads = 1024

var _ push.Sender = (*Sender)(nil)

// New loads the credentials and prepares cfg.Conns clients. It does not
// connect: the first send does.
func New(cfg Config) (*Sender, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("apns: %w", err)
	}
	var (
		tok  *token.Token
		cert *tls.Certificate
	)
	if cfg.KeyFile != "" {
		key, err := token.AuthKeyFromFile(cfg.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("apns: load key file %s: %w", cfg.KeyFile, err)
		}
		// One token for all clients: it has its own lock, and regenerating
		// it per connection would trip TooManyProviderTokenUpdates.
		tok = &token.Token{AuthKey: key, KeyID: cfg.KeyID, TeamID: cfg.TeamID}
		// apns2 ignores signing errors later (an empty bearer, then 403 on
		// every send); fail here instead.
		if _, err := tok.Generate(); err != nil {
			return nil, fmt.Errorf("apns: sign provider token with key %s: %w", cfg.KeyFile, err)
		}
	} else {
		c, err := loadCertificate(cfg.CertFile, cfg.CertPassword)
		if err != nil {
			return nil, fmt.Errorf("apns: load certificate %s: %w", cfg.CertFile, err)
		}
		cert = &c
	}
	s := &Sender{topic: cfg.Topic, timeout: cfg.Timeout}
	for range cfg.Conns {
		c := &apns2.Client{Host: cfg.Host, Token: tok, HTTPClient: newHTTPClient(cfg.RootCAs, cert)}
		if cert != nil {
			c.Certificate = *cert
		}
		s.clients = append(s.clients, c)
		s.warmups = append(s.warmups, push.NewWarmup())
	}
	return s, nil
}

func loadCertificate(file, password string) (tls.Certificate, error) {
	switch strings.ToLower(filepath.Ext(file)) {
	case ".p12", ".pfx":
		return certificate.FromP12File(file, password)
	default:
		return certificate.FromPemFile(file, password)
	}
}

// Send pushes one notification and classifies the answer. It never returns
// an error: transport failures are push.Retry with the cause in Reason.
func (s *Sender) Send(ctx context.Context, n push.Notification) push.Result {
	if !plausibleToken(n.Token) {
		// Never let a token with '/', '?' or '#' reshape the request URL.
		return push.Result{Outcome: push.Invalid, Reason: "malformed device token"}
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	var retryAfter time.Duration
	ctx = withRetryAfter(ctx, &retryAfter)
	i := s.next.Add(1) % uint64(len(s.clients))
	var res push.Result
	err := s.warmups[i].Do(ctx, func() bool {
		resp, err := s.clients[i].PushWithContext(ctx, s.notification(n))
		res = classify(resp, err, retryAfter)
		return err == nil // APNs answered
	})
	if err != nil {
		return classify(nil, err, 0)
	}
	return res
}

// Close drops idle connections.
func (s *Sender) Close() {
	for _, c := range s.clients {
		c.CloseIdleConnections()
	}
}

// notification renders n for APNs (DESIGN, "The notification object"):
// the payload, and as headers the collapse id, the expiry, the
// push type (background when silent) and the priority (10 for high, else 5;
// Apple refuses 10 on a background push).
func (s *Sender) notification(n push.Notification) *apns2.Notification {
	return header(n, s.topic, s.payload(n))
}

// header is the request n becomes, its payload already rendered.
func header(n push.Notification, topic string, payload any) *apns2.Notification {
	note := &apns2.Notification{
		DeviceToken: n.Token,
		Topic:       topic,
		CollapseID:  n.CollapseID,
		Payload:     payload,
		PushType:    apns2.PushTypeAlert,
		Priority:    apns2.PriorityLow,
	}
	switch {
	case n.Silent:
		note.PushType = apns2.PushTypeBackground
	case n.HighPriority:
		note.Priority = apns2.PriorityHigh
	}
	note.Expiration = n.Expires // zero: apns2 sends no apns-expiration
	return note
}

// payload is n's JSON payload, rendered once per Key (apns2 sends a []byte
// payload as it is).
func (s *Sender) payload(n push.Notification) any {
	if n.Key == "" {
		return render(n)
	}
	if b, ok := s.payloads.Load(n.Key); ok {
		return b
	}
	b, err := Payload(n)
	if err != nil {
		return render(n) // apns2 reports the error on send
	}
	if s.cached.Add(1) > maxCachedPayloads {
		s.payloads.Clear()
		s.cached.Store(1)
	}
	s.payloads.Store(n.Key, b)
	return b
}

// Payload is n's JSON payload exactly as it is sent: the body of the APNs
// request, which APNs refuses over 4096 bytes (413 PayloadTooLarge). The
// API measures campaigns with it before accepting them.
func Payload(n push.Notification) ([]byte, error) { return json.Marshal(render(n)) }

// ReservedKey reports a data key the payload cannot carry: "aps" is
// Apple's own dictionary (the alert itself).
func ReservedKey(k string) bool { return k == "aps" }

// render builds n's payload: aps.alert with title, subtitle and body, badge,
// sound, category, thread-id, and with an image mutable-content (the app's
// notification service extension fetches the custom key "image"); a silent
// push is aps.content-available alone. The data are top-level custom keys.
func render(n push.Notification) *payload.Payload {
	p := payload.NewPayload()
	if n.Silent {
		p.ContentAvailable()
	} else {
		p.AlertTitle(n.Title).AlertBody(n.Body)
		if n.Subtitle != "" {
			p.AlertSubtitle(n.Subtitle)
		}
		if n.Badge != nil {
			p.Badge(*n.Badge)
		}
		if n.Sound != "" {
			p.Sound(n.Sound)
		}
		if n.Image != "" {
			p.MutableContent().Custom("image", n.Image)
		}
	}
	if n.Category != "" {
		p.Category(n.Category)
	}
	if n.ThreadID != "" {
		p.ThreadID(n.ThreadID)
	}
	for k, v := range n.Data {
		if ReservedKey(k) {
			continue // would replace the alert itself; the API refuses it
		}
		p.Custom(k, v)
	}
	return p
}

// plausibleToken accepts what APNs tokens are made of (hex, in practice)
// and leaves the real judgement to APNs.
func plausibleToken(t string) bool {
	if t == "" {
		return false
	}
	for i := 0; i < len(t); i++ {
		c := t[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
			return false
		}
	}
	return true
}
