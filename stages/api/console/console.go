// Package console is the operator console the API serves under /ui/: server
// rendered html/template pages (escaping by construction) that htmx refreshes
// in place, at most once a second per open page. It reads the same shared
// code the HTTP API and the CLI read (pipeline.Status, pipeline.DLQ,
// campaign.Progress), never Redis or PostgreSQL by hand.
//
// Everything it serves is embedded: no request of a console page leaves the
// machine, and the Content-Security-Policy (securityHeaders) says so to the
// browser too.
package console

import (
	"cmp"
	"embed"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/rueidis"
	"github.com/rs/zerolog"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/devices"
	"github.com/pushpipe/pushpipe/stages/api/allow"
	"github.com/pushpipe/pushpipe/stages/deliver/push"
)

//go:embed templates/*.html
var templateFiles embed.FS

//go:embed static
var staticFiles embed.FS

// Config is what the console needs; the API passes its own clients.
type Config struct {
	Redis rueidis.Client
	DB    *pgxpool.Pool
	Keys  pipeline.Keys
	Log   zerolog.Logger
	// Operator reports whether token is the operator (admin) token. It is
	// the only credential that signs in: an app key ships inside apps, and
	// whoever unpacks one must not get the console.
	Operator func(token string) bool
	// OperatorTag names the operator token without revealing it (the API
	// passes an HMAC of it). A session keeps the tag it signed in under and
	// ends when the token changes: rotating a leaked token must also end
	// the console sessions signed in with it, which outlive any restart in
	// Redis.
	OperatorTag string
	// CheckApp is nil for an app a new campaign may name, else the API's
	// 422 for it (api.KnownApps.Check), which says where the apps come
	// from and the fix that works there; nil: any app.
	CheckApp func(app string) error
	// Apps lists the apps the new-campaign form offers (sorted), exactly
	// those CheckApp takes; nil or none: the field is left to type. With
	// one, the form fills it in.
	Apps func() []string
	// ParseNotification reads a notification object (JSON) with its
	// request's priority as POST /v1/campaigns does (api.ParseNotification:
	// the console cannot import the API), so the new-campaign form accepts
	// exactly what the API accepts; def is the priority when none is given.
	// Its error names the object's field ("notification.badge: ...").
	// Required.
	ParseNotification func(raw []byte, priority, def string) (push.Content, error)
	// Campaigns is where campaigns are listed, created and canceled; nil:
	// the shared campaign model (NewCampaigns).
	Campaigns Campaigns
	// SessionTTL is how long a sign-in lasts; default DefaultSessionTTL.
	SessionTTL time.Duration
	// Throttle slows down guessing the operator token at the sign-in form
	// (the API passes the one its bearer tokens share); nil: none.
	Throttle Throttle
}

// Throttle counts wrong tokens by client address.
type Throttle interface {
	// Blocked is how long the client of r must wait before it may try a
	// token again; 0: it may now.
	Blocked(r *http.Request) time.Duration
	// Failed charges a wrong token to the client of r.
	Failed(r *http.Request)
}

// DefaultSessionTTL is a working day: long enough for a launch, short
// enough that a forgotten browser does not stay signed in for good.
const DefaultSessionTTL = 8 * time.Hour

// Refresh is how often a live page polls: the "at most one request a
// second per open page" of the console's contract.
const Refresh = time.Second

// requestTimeout bounds the Redis and PostgreSQL work of one page.
const requestTimeout = 5 * time.Second

// Console serves /ui/.
type Console struct {
	cfg   Config
	mux   *http.ServeMux
	pages pages
	cop   *http.CrossOriginProtection
	fails failures // render.go: the errors logged lately, by reference
}

// New builds the console; Redis, Operator and ParseNotification are required.
func New(cfg Config) *Console {
	cfg.SessionTTL = cmp.Or(cfg.SessionTTL, DefaultSessionTTL)
	if cfg.Campaigns == nil {
		cfg.Campaigns = NewCampaigns(cfg.Redis, cfg.DB, cfg.Keys)
	}
	// Go's own CSRF defence (Go 1.25): refuses a state-changing request
	// that Sec-Fetch-Site or Origin shows came from another origin. The
	// per-session token (session.go) is the second lock, for browsers too
	// old to send either header.
	c := &Console{cfg: cfg, mux: http.NewServeMux(), pages: templates, cop: http.NewCrossOriginProtection()}
	c.cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "cross-origin request refused: use the console's own pages", http.StatusForbidden)
	}))
	c.routes()
	return c
}

// routes is the console's surface. Pages need a session; every POST needs
// the session's CSRF token too (signedIn).
func (c *Console) routes() {
	patterns := []string{"GET /ui/static/", "GET /ui/signin", "POST /ui/signin"}
	c.mux.Handle("GET /ui/static/", http.StripPrefix("/ui/", http.FileServerFS(staticFiles)))
	c.mux.HandleFunc("GET /ui/signin", c.signInPage)
	c.mux.HandleFunc("POST /ui/signin", c.signIn)
	for pattern, h := range map[string]sessionHandler{
		"POST /ui/signout":                c.signOut,
		"GET /ui/{$}":                     c.home,
		"GET /ui/campaigns":               c.campaignsPage,
		"GET /ui/campaigns/rows":          c.campaignRows,
		"GET /ui/campaigns/new":           c.newCampaignPage,
		"POST /ui/campaigns":              c.createCampaign,
		"GET /ui/campaigns/{id}":          c.campaignPage,
		"GET /ui/campaigns/{id}/live":     c.campaignLive,
		"GET /ui/campaigns/{id}/user":     c.campaignUserPage,
		"GET /ui/campaigns/{id}/cancel":   c.cancelPage,
		"POST /ui/campaigns/{id}/cancel":  c.cancelCampaign,
		"POST /ui/campaigns/{id}/rate":    c.rateCampaign,
		"GET /ui/messages":                c.messagesPage,
		"GET /ui/messages/rows":           c.messageRows,
		"GET /ui/messages/{id}":           c.messagePage,
		"GET /ui/messages/{id}/live":      c.messageLive,
		"GET /ui/channels":                c.channelsPage,
		"GET /ui/channels/options":        c.channelOptions,
		"GET /ui/pipeline":                c.pipelinePage,
		"GET /ui/pipeline/live":           c.pipelineLive,
		"GET /ui/deadletters":             c.deadLettersPage,
		"GET /ui/deadletters/{id}":        c.deadLetterPage,
		"POST /ui/deadletters/{id}/retry": c.retryDeadLetter,
		"POST /ui/deadletters/retry-all":  c.retryAllDeadLetters,
		"GET /ui/deadletters/{id}/drop":   c.dropPage,
		"POST /ui/deadletters/{id}/drop":  c.dropDeadLetter,
	} {
		c.mux.Handle(pattern, c.signedIn(h))
		patterns = append(patterns, pattern)
	}
	// The rest: a page asked with a method it does not take, or none. This
	// catch-all keeps the mux from answering either, in text.
	allowed := allow.New(patterns)
	c.mux.HandleFunc("/ui/", func(w http.ResponseWriter, r *http.Request) {
		if _, allow := allowed.Of(r); allow != "" {
			w.Header().Set("Allow", allow)
			c.render(w, r, http.StatusMethodNotAllowed, "error", page{Title: "Method not allowed",
				Error: devices.Echo(r.URL.Path) + " takes " + allow + ", not " + devices.Echo(r.Method) + "."})
			return
		}
		c.render(w, r, http.StatusNotFound, "error", page{Title: "Not found", Error: "No such page: " + r.URL.Path})
	})
}

// ServeHTTP sets the security headers on every answer and refuses
// cross-origin POSTs before any handler runs.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	securityHeaders(w.Header())
	c.cop.Handler(c.mux).ServeHTTP(w, r)
}

// csp allows the console's own scripts, styles, images and requests and
// nothing else: no inline script or style (htmx reads its configuration from
// a meta tag, progress bars are <progress>, the chart's sizes are set
// through the CSSOM, which CSP does not govern), no frames, no other
// origin. A page that tried to reach outside the machine is refused by the
// browser, and the browser tests record every request to prove it.
const csp = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
	"form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

func securityHeaders(h http.Header) {
	h.Set("Content-Security-Policy", csp)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cache-Control", "no-store")
}
