// Package fcm sends notifications through Firebase Cloud Messaging (HTTP v1)
// with firebase.google.com/go/v4/messaging, one request per notification,
// and classifies every answer into a push.Result.
package fcm

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"cloud.google.com/go/auth/httptransport"
	firebase "firebase.google.com/go/v4"
	"firebase.google.com/go/v4/messaging"
	"google.golang.org/api/option"

	"github.com/pushpipe/pushpipe/stages/deliver/push"
)

// scopes lets a service-account token send FCM messages.
var scopes = []string{"https://www.googleapis.com/auth/firebase.messaging"}

// Sender is a push.Sender for FCM. It is safe for concurrent use; the
// deliver stage decides the concurrency (Send, not SendEach: SendEach would
// add its own 50-goroutine pool per call).
type Sender struct {
	client  *messaging.Client
	http    *http.Client
	timeout time.Duration
	warmup  *push.Warmup // the first send goes alone

	// messages caches the rendered message per Notification.Key (the
	// campaign and locale): a send copies it and sets the token.
	messages sync.Map // key → *messaging.Message
	cached   atomic.Int64
}

// maxCachedMessages bounds the message cache; past it, it starts over.
const maxCachedMessages = 1024

var _ push.Sender = (*Sender)(nil)

// New builds the HTTP client (roots, credentials, one request per send) and
// the messaging client. It makes no request; ctx only scopes the set-up.
func New(ctx context.Context, cfg Config) (*Sender, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("fcm: %w", err)
	}
	base := newBaseTransport(cfg.RootCAs)
	// No http.Client.Timeout: behind a wrapping transport it costs a
	// goroutine per request; Send puts the timeout on the context instead.
	hc := &http.Client{Transport: base}
	project := cfg.Project
	if cfg.CredentialsFile != "" {
		// Token requests share the base transport (and its roots).
		tokenClient := &http.Client{Transport: base, Timeout: cfg.Timeout}
		creds, p, err := loadServiceAccount(cfg.CredentialsFile, project, tokenClient)
		if err != nil {
			return nil, fmt.Errorf("fcm: service account %s: %w", cfg.CredentialsFile, err)
		}
		project = p
		if err := httptransport.AddAuthorizationMiddleware(hc, creds); err != nil {
			return nil, fmt.Errorf("fcm: credentials: %w", err)
		}
	}
	// Outermost, so that it also sees token-fetch failures as the attempt.
	hc.Transport = oneShotTransport{base: hc.Transport}

	// WithHTTPClient: the SDK uses hc as is, so without credentials nothing
	// authenticates (what option.WithoutAuthentication would give).
	app, err := firebase.NewApp(ctx, &firebase.Config{ProjectID: project},
		option.WithHTTPClient(hc), option.WithEndpoint(cfg.Endpoint))
	if err != nil {
		return nil, fmt.Errorf("fcm: firebase app: %w", err)
	}
	client, err := app.Messaging(ctx)
	if err != nil {
		return nil, fmt.Errorf("fcm: messaging client: %w", err)
	}
	return &Sender{client: client, http: hc, timeout: cfg.Timeout, warmup: push.NewWarmup()}, nil
}

// Send sends one notification with exactly one request and classifies the
// answer. It never returns an error: transport failures are push.Retry.
func (s *Sender) Send(ctx context.Context, n push.Notification) push.Result {
	if n.Token == "" {
		return push.Result{Outcome: push.Invalid, Reason: "empty registration token"}
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	var res push.Result
	err := s.warmup.Do(ctx, func() bool {
		a := &attempt{cancel: cancel}
		_, err := s.client.Send(context.WithValue(ctx, attemptKey{}, a), s.message(n, time.Now()))
		res = classify(err, a)
		return a.done && a.err == nil // the endpoint answered
	})
	if err != nil {
		return push.Result{Outcome: push.Retry, Reason: push.TransportReason(err)}
	}
	return res
}

// Close drops idle connections.
func (s *Sender) Close() { s.http.CloseIdleConnections() }

// message is n's message: the campaign's, rendered once per Key, with n's
// token. The SDK only reads it, so the copies share their parts.
func (s *Sender) message(n push.Notification, now time.Time) *messaging.Message {
	if n.Key == "" {
		return message(n, now)
	}
	if m, ok := s.messages.Load(n.Key); ok {
		c := *m.(*messaging.Message)
		c.Token = n.Token
		if !n.Expires.IsZero() { // what is left of the TTL is the send's own
			a := *c.Android
			a.TTL = ttlLeft(n.Expires, now)
			c.Android = &a
		}
		return &c
	}
	m := message(n, now)
	if s.cached.Add(1) > maxCachedMessages {
		s.messages.Clear()
		s.cached.Store(1)
	}
	s.messages.Store(n.Key, m)
	c := *m
	return &c
}

// ttlLeft is FCM's android ttl for a send at now of a notification that
// expires at expires: what is left, in whole seconds rounded up (FCM keeps
// it to the second; rounding down would make a send in the last second a
// "now or never" one), never negative.
func ttlLeft(expires, now time.Time) *time.Duration {
	left := max(expires.Sub(now), 0)
	if r := left % time.Second; r != 0 {
		left += time.Second - r
	}
	return &left
}

// Payload is the part of the message n becomes that FCM holds against its
// 4096-byte limit: the notification and the data, as the SDK writes them
// (escapes included: at most what FCM counts), without the delivery options
// (android, apns) and the token.
func Payload(n push.Notification) ([]byte, error) {
	m := message(n, time.Time{})
	return json.Marshal(struct {
		Notification *messaging.Notification `json:"notification,omitempty"`
		Data         map[string]string       `json:"data,omitempty"`
	}{m.Notification, m.Data})
}

// ReservedDataKey reports a data key FCM refuses (the HTTP v1 reference of
// Message.data: "from", "message_type", or any word starting with "google"
// or "gcm"), or that its legacy protocol and the Android SDK read as their
// own ("collapse_key", "notification"). The prefixes are matched whatever
// their case: Google does not say, and a refused key fails every send.
func ReservedDataKey(k string) bool {
	switch k {
	case "from", "message_type", "collapse_key", "notification":
		return true
	}
	l := strings.ToLower(k)
	return strings.HasPrefix(l, "google") || strings.HasPrefix(l, "gcm")
}

// message renders n for FCM (DESIGN, "The notification object"):
// notification title, body and image (none when silent: a data-only
// message), the data, and for Android the priority, TTL, collapse key and
// the notification's tag (the collapse id), sound and count (the badge).
// iOS devices reached through FCM get the matching APNs headers and aps.
func message(n push.Notification, now time.Time) *messaging.Message {
	android := &messaging.AndroidConfig{CollapseKey: n.CollapseID, Priority: "normal"}
	apnsHeaders := map[string]string{"apns-priority": "5"}
	aps := &messaging.Aps{Category: n.Category, ThreadID: n.ThreadID}
	if n.HighPriority {
		android.Priority = "high"
		if !n.Silent {
			apnsHeaders["apns-priority"] = "10"
		}
	}
	if !n.Expires.IsZero() {
		android.TTL = ttlLeft(n.Expires, now)
		apnsHeaders["apns-expiration"] = strconv.FormatInt(n.Expires.Unix(), 10)
	}
	if n.CollapseID != "" {
		apnsHeaders["apns-collapse-id"] = n.CollapseID
	}
	m := &messaging.Message{
		Token:   n.Token,
		Data:    n.DataStrings(),
		Android: android,
		APNS:    &messaging.APNSConfig{Headers: apnsHeaders},
	}
	if n.Silent {
		apnsHeaders["apns-push-type"] = "background"
		aps.ContentAvailable = true
	} else {
		m.Notification = &messaging.Notification{Title: n.Title, Body: n.Body, ImageURL: n.Image}
		android.Notification = &messaging.AndroidNotification{Tag: n.CollapseID, Sound: n.Sound, NotificationCount: n.Badge}
		aps.Sound, aps.Badge = n.Sound, n.Badge
		if n.Image != "" {
			aps.MutableContent = true
		}
	}
	if aps.Category != "" || aps.ThreadID != "" || aps.Sound != "" || aps.Badge != nil || aps.ContentAvailable || aps.MutableContent {
		m.APNS.Payload = &messaging.APNSPayload{Aps: aps}
	}
	return m
}
