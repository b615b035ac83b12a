package deliver

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"fmt"
	"maps"
	"os"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/pushpipe/pushpipe/stages/deliver/apns"
	"github.com/pushpipe/pushpipe/stages/deliver/fcm"
	"github.com/pushpipe/pushpipe/stages/deliver/push"
)

// ReasonNoCredentials is the failure of a device whose app has no
// credentials for its platform (or is not in the apps file at all). The
// token is kept: it is not the token that is wrong.
const ReasonNoCredentials = "no credentials"

// AppSenders holds a sender per app and platform, built from an apps file,
// and sends each notification with its app's (Notification.App). Reload
// swaps in a new file: apps added or changed take effect for the sends that
// start after it, sends in flight finish on the senders they started on,
// and removed apps get no new sends.
type AppSenders struct {
	opts SenderOptions
	log  zerolog.Logger

	mu  sync.Mutex // serialises Reload and Close
	cur atomic.Pointer[map[string]*appSender]
}

// SenderOptions are the process's settings for every app's senders.
type SenderOptions struct {
	APNsConns int            // HTTP/2 connections per app to APNs; default 2
	RootCAs   *x509.CertPool // replaces the system roots (tests); nil in production
	Timeout   time.Duration  // per request; default 30s
}

// appSender is one app's senders and the entry they were built from.
type appSender struct {
	cfg     App
	files   [sha256.Size]byte // fingerprint of the files cfg names
	senders map[push.Platform]push.Sender
	closers []func()
}

// fingerprint is a digest of the contents of the files cfg names (APNs key
// or certificate, FCM service account), and false if one cannot be read. A
// file replaced in place, as a renewed certificate or a rotated key usually
// is (a mounted secret keeps its path), changes the app as much as a new
// path does: compared by its entry alone, SIGHUP kept the old credentials
// until they expired.
func fingerprint(cfg App) ([sha256.Size]byte, bool) {
	h := sha256.New()
	var paths []string
	if p := cfg.APNS; p != nil {
		paths = append(paths, p.Key, p.Cert)
	}
	if p := cfg.FCM; p != nil {
		paths = append(paths, p.Credentials)
	}
	for _, path := range paths {
		if path == "" {
			continue
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return [sha256.Size]byte{}, false
		}
		sum := sha256.Sum256(b)
		h.Write(sum[:])
	}
	var out [sha256.Size]byte
	h.Sum(out[:0])
	return out, true
}

// NewAppSenders builds the senders of every app of apps.
func NewAppSenders(ctx context.Context, apps Apps, opts SenderOptions, log zerolog.Logger) (*AppSenders, error) {
	a := &AppSenders{opts: opts, log: log}
	empty := map[string]*appSender{}
	a.cur.Store(&empty)
	if err := a.Reload(ctx, apps); err != nil {
		return nil, err
	}
	return a, nil
}

// Reload builds the senders of apps added or changed in apps (their entry,
// or the contents of a file it names), keeps those of unchanged apps (and
// their connections), and swaps. On an error nothing
// changes. The senders of apps changed or removed are closed: Close drops
// only idle connections, so a send in flight on them still completes.
func (a *AppSenders) Reload(ctx context.Context, apps Apps) error {
	if err := apps.providerEnv(); err != nil {
		return err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	old := *a.cur.Load()
	next := make(map[string]*appSender, len(apps.Apps))
	var built []*appSender
	for _, id := range slices.Sorted(maps.Keys(apps.Apps)) {
		cfg := apps.Apps[id]
		// An unreadable file rebuilds the app, so that its build fails and
		// the reload says why.
		files, readable := fingerprint(cfg)
		if prev := old[id]; prev != nil && readable && prev.files == files && reflect.DeepEqual(prev.cfg, cfg) {
			next[id] = prev
			continue
		}
		s, err := a.build(ctx, id, cfg)
		if err != nil {
			for _, b := range built {
				b.close()
			}
			return err
		}
		s.files = files
		built = append(built, s)
		next[id] = s
	}
	a.cur.Store(&next)
	for id, prev := range old {
		if next[id] != prev {
			prev.close()
		}
	}
	a.log.Info().Int("apps", len(next)).Int("built", len(built)).Msg("apps loaded")
	return nil
}

// build makes one app's senders; a platform it has no entry for has none.
func (a *AppSenders) build(ctx context.Context, id string, cfg App) (*appSender, error) {
	s := &appSender{cfg: cfg, senders: map[push.Platform]push.Sender{}}
	if p := cfg.APNS; p != nil {
		topic := p.Topic
		if topic == "" {
			topic = id
		}
		password := ""
		if p.PasswordEnv != "" {
			password = os.Getenv(p.PasswordEnv)
		}
		snd, err := apns.New(apns.Config{
			KeyFile: p.Key, KeyID: p.KeyID, TeamID: p.TeamID, CertFile: p.Cert, CertPassword: password,
			Topic: topic, Host: p.Host, Conns: a.opts.APNsConns, RootCAs: a.opts.RootCAs, Timeout: a.opts.Timeout,
		})
		if err != nil {
			return nil, fmt.Errorf("app %q: %w", id, err)
		}
		s.senders[push.IOS] = snd
		s.closers = append(s.closers, snd.Close)
	}
	if p := cfg.FCM; p != nil {
		snd, err := fcm.New(ctx, fcm.Config{CredentialsFile: p.Credentials, Project: p.Project, Endpoint: p.Endpoint,
			RootCAs: a.opts.RootCAs, Timeout: a.opts.Timeout})
		if err != nil {
			s.close()
			return nil, fmt.Errorf("app %q: %w", id, err)
		}
		s.senders[push.Android] = snd
		s.closers = append(s.closers, snd.Close)
	}
	return s, nil
}

func (s *appSender) close() {
	for _, f := range s.closers {
		f()
	}
}

// Senders are the per-platform senders for Config.Senders: each sends with
// the notification's app's sender of its platform, or fails the device
// with ReasonNoCredentials.
func (a *AppSenders) Senders() map[push.Platform]push.Sender {
	return map[push.Platform]push.Sender{push.IOS: appRouter{a, push.IOS}, push.Android: appRouter{a, push.Android}}
}

// TPS is app's own cap per provider (0: none), as the apps file says now.
func (a *AppSenders) TPS(app string) int {
	if s := (*a.cur.Load())[app]; s != nil {
		return s.cfg.TPS
	}
	return 0
}

// Close closes every app's senders.
func (a *AppSenders) Close() {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, s := range *a.cur.Load() {
		s.close()
	}
}

// appRouter is AppSenders for one platform.
type appRouter struct {
	a        *AppSenders
	platform push.Platform
}

// Serves reports whether app has credentials for the router's platform,
// as the apps file says now.
func (r appRouter) Serves(app string) bool {
	s := (*r.a.cur.Load())[app]
	return s != nil && s.senders[r.platform] != nil
}

// Send sends n with its app's sender of the router's platform.
func (r appRouter) Send(ctx context.Context, n push.Notification) push.Result {
	if s := (*r.a.cur.Load())[n.App]; s != nil {
		if snd := s.senders[r.platform]; snd != nil {
			return snd.Send(ctx, n)
		}
	}
	return push.Result{Outcome: push.Failed, Reason: ReasonNoCredentials}
}

// OnlyApp is the single-app provider flags' senders (DESIGN: a shorthand
// for one app, the app whose id is --apns-topic): senders send app's
// notifications and fail every other app's devices with
// ReasonNoCredentials. Sent with app's topic, another app's iOS tokens
// would come back DeviceTokenNotForTopic and be deactivated, though
// nothing is wrong with them. A platform the flags give no credentials for
// (FCM alone, say) fails app's devices of it with ReasonNoCredentials too,
// as an apps file's app without them does: with no sender at all they
// failed as "no sender for platform".
func OnlyApp(app string, senders map[push.Platform]push.Sender) map[push.Platform]push.Sender {
	out := make(map[push.Platform]push.Sender, 2)
	for _, p := range []push.Platform{push.IOS, push.Android} {
		out[p] = oneApp{app: app, s: senders[p]}
	}
	return out
}

// oneApp is a sender that serves one app; nil s: none of its devices.
type oneApp struct {
	app string
	s   push.Sender
}

// Serves reports whether app is the one app, with credentials.
func (o oneApp) Serves(app string) bool { return app == o.app && o.s != nil }

func (o oneApp) Send(ctx context.Context, n push.Notification) push.Result {
	if n.App != o.app || o.s == nil {
		return push.Result{Outcome: push.Failed, Reason: ReasonNoCredentials}
	}
	return o.s.Send(ctx, n)
}
