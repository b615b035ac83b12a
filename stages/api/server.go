// Package api is pushpipe's HTTP API: it validates requests and turns them
// into stream entries (devices, campaigns) or direct writes (subscriptions,
// preferences). It never does a stage's work itself.
package api

import (
	"bytes"
	"cmp"
	"context"
	"net/http"
	"net/netip"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/rueidis"
	"github.com/rs/zerolog"
	"golang.org/x/sync/semaphore"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/stages/api/console"
)

// Config is what the API needs.
type Config struct {
	Redis rueidis.Client
	DB    *pgxpool.Pool
	Keys  pipeline.Keys
	Log   zerolog.Logger
	Auth  Auth
	// AppsFile, if set, is the --apps file: its apps are the only ones
	// campaigns and messages may name (ReloadApps on SIGHUP); nil: those
	// of Auth.AppKeys (KnownApps).
	AppsFile *AppsFile
	// Dev is an API `pushpipe dev` started (PUSHPIPE_DEV): it set the app
	// keys itself, and the 422 of an unknown app says so (KnownApps.Dev).
	Dev bool
	// MaxBodyBytes caps the device batch's body (413 past it) and is the
	// ceiling of every other route's own, smaller cap (routes); default
	// DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// MaxBodyMemory bounds the request body bytes held at once, across all
	// requests: past it a request is answered 503 + Retry-After before its
	// body is read. Default DefaultMaxBodyMemory; never below MaxBodyBytes.
	MaxBodyMemory int64
	// DeviceWriteRate limits device writes (registrations and deletions; a
	// batch counts each device) per app key per second: past it, 429 with
	// Retry-After. 0 is no limit; `pushpipe api` defaults to
	// DefaultDeviceWriteRate. The operator token is never limited.
	DeviceWriteRate float64
	// Metrics registers the API's request metrics (none when nil).
	Metrics prometheus.Registerer
	// DeviceWriteBurst is how many device writes an app key may make at once;
	// default twice the rate, and at least one full batch.
	DeviceWriteBurst int
	// KeepMessages is how long a direct message is kept past its expiry
	// (PurgeMessages); 0 keeps them for ever.
	KeepMessages time.Duration
	// AuthFailRate is the wrong tokens a client address may send per
	// second, bearer tokens and console sign-ins alike, and AuthFailBurst
	// how many at once; past them, 429 with Retry-After (throttle.go). 0:
	// DefaultAuthFailRate and DefaultAuthFailBurst; a negative rate: no
	// throttle.
	AuthFailRate  float64
	AuthFailBurst int
	// TrustedProxies are the peers whose X-Forwarded-For (or Forwarded)
	// names the client the throttle counts (clientAddr); none: every peer
	// is the client. `pushpipe api` defaults to DefaultTrustedProxies.
	TrustedProxies []netip.Prefix
}

// Server serves the API.
type Server struct {
	cfg     Config
	mux     *http.ServeMux
	metrics *apiMetrics
	apps    atomic.Pointer[appsState] // apps.go: keys, their limits, known apps; swapped by ReloadApps
	bodies  *semaphore.Weighted       // body.go: request body bytes held at once
	dev     deviceEvents              // devices.go: the event clock of device writes
	streams []string                  // the ingest stream of each partition
	console *console.Console          // the operator console (/ui/)
	ownAuth []string                  // path prefixes of routes that authenticate themselves (scopeConsole)
	fails   *authThrottle             // throttle.go: wrong tokens by client address; nil: none
	// partialLog says a report came from Redis alone (PostgreSQL down)
	// once in a while, not at each of the console's once-a-second reads of
	// every page open through an outage.
	partialLog zerolog.Logger
}

// New builds the API server.
func New(cfg Config) *Server {
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.MaxBodyMemory <= 0 {
		cfg.MaxBodyMemory = DefaultMaxBodyMemory
	}
	// A budget smaller than the largest body would refuse that body forever.
	cfg.MaxBodyMemory = max(cfg.MaxBodyMemory, cfg.MaxBodyBytes)
	s := &Server{cfg: cfg, mux: http.NewServeMux(), metrics: newAPIMetrics(cfg.Metrics),
		bodies: semaphore.NewWeighted(cfg.MaxBodyMemory), streams: cfg.Keys.Streams(pipeline.StreamIngest),
		partialLog: cfg.Log.Sample(&zerolog.BurstSampler{Burst: 1, Period: 10 * time.Second})}
	s.apps.Store(s.newAppsState(cfg.Auth, cfg.AppsFile))
	registerProgress(cfg)
	if !cfg.Auth.Insecure {
		s.fails = newAuthThrottle(cmp.Or(cfg.AuthFailRate, DefaultAuthFailRate), cmp.Or(cfg.AuthFailBurst, DefaultAuthFailBurst),
			cfg.TrustedProxies, cfg.Log)
	}
	// The operator token is not in the apps file: a reload never changes it.
	s.console = console.New(console.Config{Redis: cfg.Redis, DB: cfg.DB, Keys: cfg.Keys, Log: cfg.Log,
		Operator: func(tok string) bool { return s.apps.Load().auth.operator(tok) }, OperatorTag: cfg.Auth.consoleTag(),
		CheckApp: s.checkApp, Apps: s.appNames, ParseNotification: ParseNotification, Throttle: s.fails})
	routes := s.routes()
	paths := newPathMethods(routes)
	for _, rt := range routes {
		if rt.scope == scopeConsole {
			s.ownAuth = append(s.ownAuth, rt.pattern)
		}
		s.mux.Handle(rt.pattern, s.metrics.instrument(rt.pattern, s.wrap(rt)))
	}
	// Everything else, once authenticated: a JSON 404, or a JSON 405 with
	// Allow for a known path asked with another method (the mux's own are
	// text, and this catch-all keeps the mux from answering either).
	s.mux.Handle("/", s.metrics.instrument(unmatched, http.HandlerFunc(paths.serveUnmatched)))
	return s
}

// route is one endpoint: who may call it, the largest body it reads and,
// for device writes, how many writes a request counts for in the app key's
// rate limit.
type route struct {
	pattern string
	scope   scope
	body    int64     // the body cap (at most Config.MaxBodyBytes); 0: the route reads no body
	writes  writeCost // nil: not a device write
	handler handler
	// query names the query parameters it takes; nil: none. One it does
	// not take answers 400 naming it (queryParams): ?x=1 on GET
	// /v1/users/{user_id}/preferences was ignored, where the lists refused
	// a misspelt filter.
	query []string
}

// handler serves a route's request once it is authorized, rate-limited and
// its body read (nil for a route that reads none).
type handler func(w http.ResponseWriter, r *http.Request, body []byte)

// Body caps of the routes other than the batch: each is what the largest
// valid request takes, with room for whitespace and escapes, so no route
// holds more memory than its requests can need.
const (
	deviceBody      = 8 << 10                   // one device: under 1 KB at every field's limit
	preferencesBody = 512 << 10                 // 2 × 1000 names of up to 128 characters
	notificationMax = 1 << 20                   // 100 locales, each rendering to at most 4 KB, sent as \uXXXX escapes (Python's json.dumps does): 800 KiB, and the rest
	campaignBody    = notificationMax + 64<<10  // the notification and 100 channels
	messageBody     = notificationMax + 640<<10 // the notification and 10,000 user ids of up to 20 digits, or 1,000 tokens of up to 512 characters
)

// listRoutes take lists a client may send in parts (tooLarge says to split
// a body over their cap).
var listRoutes = map[string]bool{
	"POST /v1/devices/batch":                  true,
	"POST /v1/channels/{channel}/subscribers": true,
	"POST /v1/messages":                       true,
}

// routes is the whole API surface in one place; every endpoint is
// authenticated first (ServeHTTP), then authorized for its scope, its body
// capped and read, and device writes are rate-limited per app key
// (ratelimit.go). Handlers live in one file per resource.
func (s *Server) routes() []route {
	return []route{
		// devices: app keys allowed, for their own app only (checked per item)
		{"POST /v1/devices", scopeApp, deviceBody, oneDevice, s.postDevice, nil},
		{"POST /v1/devices/batch", scopeApp, s.cfg.MaxBodyBytes, countItems, s.postDeviceBatch, nil},
		{"DELETE /v1/devices/{app}/{token}", scopeApp, 0, oneDevice, s.deleteDevice, nil},
		// operator only
		{"POST /v1/channels/{channel}/subscribers", scopeAdmin, subscribersBody, nil, s.postSubscribers, nil},
		{"PUT /v1/channels/{channel}/subscribers/{user_id}", scopeAdmin, 0, nil, s.putSubscriber, nil},
		{"DELETE /v1/channels/{channel}/subscribers/{user_id}", scopeAdmin, 0, nil, s.deleteSubscriber, nil},
		{"GET /v1/channels", scopeAdmin, 0, nil, s.listChannels, []string{"limit", "after"}},
		{"GET /v1/channels/{channel}", scopeAdmin, 0, nil, s.getChannel, nil},
		{"GET /v1/users/{user_id}", scopeAdmin, 0, nil, s.getUser, nil},
		{"DELETE /v1/users/{user_id}", scopeAdmin, 0, nil, s.deleteUser, nil},
		{"GET /v1/users/{user_id}/preferences", scopeAdmin, 0, nil, s.getPreferences, nil},
		{"PUT /v1/users/{user_id}/preferences", scopeAdmin, preferencesBody, nil, s.putPreferences, nil},
		{"POST /v1/campaigns", scopeAdmin, campaignBody, nil, s.postCampaign, nil},
		{"GET /v1/campaigns", scopeAdmin, 0, nil, s.listCampaigns, []string{"state", "limit", "before"}},
		{"GET /v1/campaigns/{id}", scopeAdmin, 0, nil, s.getCampaign, nil},
		{"POST /v1/campaigns/{id}/cancel", scopeAdmin, 0, nil, s.cancelCampaign, nil},
		{"PATCH /v1/campaigns/{id}", scopeAdmin, patchBody, nil, s.patchCampaign, nil},
		{"POST /v1/messages", scopeAdmin, messageBody, nil, s.postMessage, nil},
		{"GET /v1/messages", scopeAdmin, 0, nil, s.listMessages, []string{"limit", "before"}},
		{"GET /v1/messages/{id}", scopeAdmin, 0, nil, s.getMessage, nil},
		// the reference of this table (openapi.go): any valid token
		{"GET " + OpenAPIPath, scopeAny, 0, nil, s.getOpenAPI, nil},
		// the operator console: its own sign-in (the operator token) and session cookie
		{"/ui/", scopeConsole, 0, nil, s.serveConsole, nil},
	}
}

// ServeHTTP authenticates before anything else, routing included: without a
// known bearer token every request gets the same 401 whatever its method and
// path (the mux would answer a non-canonical path such as //v1/campaigns/x
// with a redirect, telling an anonymous caller which paths exist).
//
// The console's pages are the exception: a browser does not send a bearer
// token, so they check their own session (stages/api/console).
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// Error messages quote the request's path and headers: a browser must
	// never take an answer for HTML it could run.
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if console.OverTLS(r) {
		// Reached over HTTPS (here or at the proxy in front): the browser
		// is to use nothing else for this host from now on, so a later
		// plain-HTTP link or a network attacker's downgrade cannot carry
		// the console's session or a bearer token in the clear. Browsers
		// ignore it over plain HTTP, so a forged X-Forwarded-Proto does
		// nothing, and make dev's http://127.0.0.1 never gets it.
		w.Header().Set("Strict-Transport-Security", hsts)
	}
	if s.ownsAuth(r) {
		s.mux.ServeHTTP(w, r)
		return
	}
	p, ok := s.apps.Load().auth.identify(r)
	// Only a request that presents a token is a guess: one without gets
	// its 401, whatever its address did. An address out of budget gets 429
	// for the operator token as for a wrong one, or its answer would tell a
	// guesser which guess was right; an app key passes, being no secret
	// worth guessing (it ships inside the app), so phones behind a carrier
	// NAT shared with a guesser, or with old installs of a retired key, keep
	// registering.
	_, presented := r.Header["Authorization"]
	if presented && (!ok || p.admin) {
		if wait := s.fails.Blocked(r); wait > 0 {
			_, pattern := s.mux.Handler(r) // only to count the refusal on its route
			s.metrics.count(cmp.Or(pattern, unmatched), http.StatusTooManyRequests)
			tooManyFailures(w, wait)
			return
		}
	}
	if !ok {
		if presented {
			s.fails.Failed(r)
		}
		_, pattern := s.mux.Handler(r) // only to count the refusal on its route
		s.metrics.count(cmp.Or(pattern, unmatched), http.StatusUnauthorized)
		unauthorized(w)
		return
	}
	s.mux.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), principalKey{}, p)))
}

// utf8BOM is the byte order mark a body may start with (wrap refuses it).
var utf8BOM = []byte("\ufeff")

// hsts is a year, the value browsers' preload lists ask of a site; no
// includeSubDomains: other hosts of the domain are not this server's to
// decide.
const hsts = "max-age=31536000"

// ownsAuth reports whether r goes to a route that checks its own
// credentials (the console). The route the mux picks decides, not the
// path's prefix: "/ui%2F..%2Fv1/x" decodes to a path under /ui/ but routes to
// the API's 404, and "/ui/../v1/campaigns/x" to a redirect to an API route,
// both of which an anonymous caller got without a 401. The prefix only
// spares the other requests the second route match.
func (s *Server) ownsAuth(r *http.Request) bool {
	for _, prefix := range s.ownAuth {
		// "/ui" too: the mux redirects it to "/ui/".
		if strings.HasPrefix(r.URL.Path+"/", prefix) {
			_, pattern := s.mux.Handler(r)
			return pattern == prefix
		}
	}
	return false
}

// serveConsole hands a /ui/ request to the console.
func (s *Server) serveConsole(w http.ResponseWriter, r *http.Request, _ []byte) {
	s.console.ServeHTTP(w, r)
}

// wrap puts a route's handler behind, in this order: its scope (403), the
// query parameters it takes (400), the Content-Type and Content-Encoding of its body (415), the app key's rate
// limit when the key is already out of tokens (429, before any body is
// read), the body cap and body memory budget (413, 503), a byte order mark
// (400), and for device writes the rate limit for what the request actually
// writes.
func (s *Server) wrap(rt route) http.Handler {
	limit := min(rt.body, s.cfg.MaxBodyBytes)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := principalOf(r)
		if rt.scope == scopeAdmin && !p.admin {
			w.Header().Set("WWW-Authenticate", `Bearer realm="pushpipe", error="insufficient_scope"`)
			writeError(w, http.StatusForbidden, "this endpoint needs the operator token; app keys may only register and delete their own app's devices (/v1/devices*)")
			return
		}
		// Before the body is read: the query is refused whatever the body.
		// The console reads its own (its pages' forms and links).
		if rt.scope != scopeConsole {
			if _, ok := queryParams(w, r, rt.query...); !ok {
				return
			}
		}
		if limit == 0 && rt.scope != scopeConsole && !noBody(w, r, rt.pattern) {
			return
		}
		if limit > 0 && !jsonContentType(r) {
			writeError(w, http.StatusUnsupportedMediaType, "Content-Type must be application/json (UTF-8), got "+quoteHeader(r.Header.Get("Content-Type")))
			return
		}
		if limit > 0 && !identityEncoding(r) {
			w.Header().Set("Accept-Encoding", "identity") // RFC 9110 §12.5.3: the codings a 415 takes
			writeError(w, http.StatusUnsupportedMediaType, "Content-Encoding "+quoteHeader(strings.Join(r.Header.Values("Content-Encoding"), ", "))+
				" is not supported: send the body uncompressed (no Content-Encoding)")
			return
		}
		limits := &s.apps.Load().limits
		lim := limits.bucket(p, rt.writes)
		if lim != nil && !limits.hasToken(w, lim, p.app) {
			return
		}
		var body []byte
		if limit > 0 {
			b, release, ok := s.readBody(w, r, limit, listRoutes[rt.pattern])
			if !ok {
				return
			}
			defer release()
			body = b
			if bytes.HasPrefix(body, utf8BOM) {
				// Notepad and some .NET writers start a UTF-8 file with one;
				// the decoder's "invalid character '\ufeff'" did not say what
				// to drop.
				writeError(w, http.StatusBadRequest, "the body starts with a UTF-8 byte order mark (bytes EF BB BF), which JSON sent between systems must not carry (RFC 8259 §8.1): send it without")
				return
			}
		}
		if lim != nil && !limits.charge(w, lim, p.app, rt.writes(body)) {
			return
		}
		rt.handler(w, r, body)
	})
}
