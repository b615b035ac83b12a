package console

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"math"
	"net/http"
	"regexp"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/redis/rueidis"

	"github.com/pushpipe/pushpipe/pipeline/campaign"
	"github.com/pushpipe/pushpipe/pipeline/devices"
)

// page is what every page template gets: the layout's parts and the page's
// own Data.
type page struct {
	Title string
	// ID is the id of what the page is about, shown small beside its
	// heading, where a click selects it whole to copy ("" for none): a
	// campaign's page is headed by its title, as the list names it, and
	// its id (a generated string, for a form-made one) is what the API
	// and the CLI take.
	ID      string
	Nav     string // the current section, marked in the navigation
	Session session
	Error   string
	// LiveError is a page whose live part says Error in place of what it
	// could not read, and takes it back at the refresh that reads it: the
	// layout does not say it too. It did: the error stood twice, and the
	// layout's stayed, stale, after the outage had ended.
	LiveError bool
	Notice    string
	Refresh   int // the live fragments' polling interval, in seconds
	Data      any
}

// CSRF is the session's token, for the hidden field of every form.
func (p page) CSRF() string { return p.Session.csrf }

// HXHeaders is the hx-headers value that sends the token with every htmx
// request: JSON, which htmx parses without eval (CSP-compatible).
func (p page) HXHeaders() string {
	b, _ := json.Marshal(map[string]string{csrfHeader: p.Session.csrf})
	return string(b)
}

// SignedIn is whether to show the navigation and sign-out.
func (p page) SignedIn() bool { return p.Session.csrf != "" }

// pageNames are the templates under templates/, each rendered inside
// layout.html.
var pageNames = []string{"signin", "error", "campaigns", "campaign", "cancel", "new", "messages", "message", "campaignuser", "pipeline", "deadletters", "deadletter", "drop", "channels"}

type pages map[string]*template.Template

// templates are parsed once: they are embedded, so an error is the
// build's, and every test that renders a page finds it.
var templates = func() pages {
	p, err := parsePages()
	if err != nil {
		panic(err)
	}
	return p
}()

func parsePages() (pages, error) {
	p := pages{}
	for _, name := range pageNames {
		t, err := template.New(name).Funcs(funcs).ParseFS(templateFiles, "templates/layout.html", "templates/parts.html", "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("console: template %s: %w", name, err)
		}
		p[name] = t
	}
	return p, nil
}

// render writes a whole page. Templates execute into a buffer first, so a
// template error is a clean 500, never half a page.
func (c *Console) render(w http.ResponseWriter, _ *http.Request, status int, name string, p page) {
	p.Refresh = int(Refresh / time.Second)
	c.write(w, status, name, "layout", p)
}

// fail answers a request that could not be served with p.Error: a whole
// error page, or, to a live region's poll (htmx), the error alone, which
// htmx swaps in place of the region's figures (layout.html's
// responseHandling). A whole page swapped into a region would nest a
// document in it; an error htmx did not swap would leave the last figures
// standing as if they were current.
func (c *Console) fail(w http.ResponseWriter, r *http.Request, status int, p page) {
	if r.Header.Get("HX-Request") == "true" {
		c.write(w, status, "error", "alert", p)
		return
	}
	c.render(w, r, status, "error", p)
}

// unavailable is the sentence for a part that could not be read: what,
// why, what comes next, and where the error is. A part htmx polls comes
// back by itself once Redis and PostgreSQL answer; a page that does not poll
// needs a reload. The error itself goes to the log under a reference the
// sentence gives (failed): it used to be shown as it came, Redis's and
// PostgreSQL's own words ("WRONGTYPE Operation against a key…", a dial
// error naming a host), which tell an operator nothing to do and tell
// anyone looking over a shoulder the servers' addresses.
func (c *Console) unavailable(r *http.Request, whatIs string, err error, polled bool) string {
	s := whatIs + " unavailable: " + culprit(err) + "."
	if polled {
		s += " This part tries again every second."
	} else {
		s += " Reload the page in a moment."
	}
	return s + " " + c.failed(r, err, "console: "+whatIs+" unavailable")
}

// failed logs err under a reference and returns the sentence that points
// an operator to it: the reference and when it was logged, to find the line
// in the API's log. The same failure again within failureRefFor keeps its
// reference and is not logged again: every open page polls once a second,
// and an outage logged a line per page per second.
func (c *Console) failed(r *http.Request, err error, msg string) string {
	if gone(r) {
		// The browser canceled the request (a page left mid-load, a poll
		// cut short): nothing failed, and nobody reads the answer. It was
		// logged as "… unavailable: context canceled", a warning that sent
		// on-call looking for an outage.
		c.cfg.Log.Debug().Err(err).Str("path", r.URL.Path).Msg("console: request canceled by the browser")
		return "The request was canceled."
	}
	ref, at, fresh := c.fails.ref(msg+": "+err.Error(), time.Now())
	if fresh {
		c.cfg.Log.Warn().Err(err).Str("ref", ref).Str("path", r.URL.Path).Msg(msg)
	}
	return "If it persists, the API's log has the error under ref " + ref + " (" + at.UTC().Format("2006-01-02 15:04:05 UTC") + ")."
}

// gone is whether r's client went away (its context canceled): what failed
// under it failed because of that.
func gone(r *http.Request) bool { return r.Context().Err() != nil }

// failureRefFor is how long a failure keeps its reference.
const failureRefFor = time.Minute

// failures are the references of the failures logged lately, by their text.
type failures struct {
	mu   sync.Mutex
	seen map[string]loggedFailure
}

type loggedFailure struct {
	ref string
	at  time.Time
}

// ref is the reference of failure text at now, when it was logged, and
// whether it is new (to be logged).
func (f *failures) ref(text string, now time.Time) (string, time.Time, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if l, ok := f.seen[text]; ok && now.Sub(l.at) < failureRefFor {
		return l.ref, l.at, false
	}
	if f.seen == nil || len(f.seen) >= 256 {
		f.seen = map[string]loggedFailure{} // bounded: errors that name ids differ
	}
	var b [4]byte
	rand.Read(b[:])
	l := loggedFailure{ref: hex.EncodeToString(b[:]), at: now}
	f.seen[text] = l
	return l.ref, l.at, true
}

// culprit says in plain words which server failed, as far as the error
// tells.
func culprit(err error) string {
	var (
		pgErr   *pgconn.PgError
		pgConn  *pgconn.ConnectError
		redisEr *rueidis.RedisError
	)
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Sprintf("Redis or PostgreSQL did not answer within %s", requestTimeout)
	}
	if say, ok := campaign.Unreachable(err); ok {
		return say
	}
	switch {
	case errors.As(err, &pgErr), errors.As(err, &pgConn):
		return "PostgreSQL failed"
	case errors.As(err, &redisEr), errors.Is(err, rueidis.ErrClosing):
		return "Redis failed"
	}
	return "Redis or PostgreSQL failed"
}

// listFailed is what a list page says when it could not be read, and its
// status. A cursor (?before=) that names no such campaign or message is a
// link to fix, not an outage: it read "The campaign list is unavailable:
// … not found", and an operator looked for a server that was down.
func (c *Console) listFailed(r *http.Request, whatIs, kind, newest, before string, err error, polled bool) (string, int) {
	var ve *campaign.ValidationError
	if before != "" && (errors.Is(err, campaign.ErrNotFound) || errors.As(err, &ve)) {
		return fmt.Sprintf("This page lists the %ss older than %s %q, and there is no %s by that id: the newest are at %s.",
			kind, kind, devices.Echo(before), kind, newest), http.StatusNotFound
	}
	return c.unavailable(r, whatIs, err, polled), http.StatusOK
}

// polled is whether r is a live region's refresh (htmx), which polls again.
func polled(r *http.Request) bool { return r.Header.Get("HX-Request") == "true" }

// inPlace is whether r came from htmx in a page that stays (a live
// region's poll, a row's action), to be answered with a fragment.
func inPlace(r *http.Request) bool { return r.Header.Get("HX-Request") == "true" }

// fragment writes one named block of a page: what a live region polls.
func (c *Console) fragment(w http.ResponseWriter, name, block string, p page) {
	c.write(w, http.StatusOK, name, block, p)
}

// stopPolling is htmx's status for "swap this, and poll no more" (its 286).
const stopPolling = 286

// live writes a live region's refresh; final says nothing more will change
// (a campaign done, canceled or failed, a message done): htmx swaps the
// figures in one last time and stops polling, where it used to poll a
// finished campaign's page for as long as it stayed open. A page loaded
// final does not poll at all (its template leaves out the trigger).
func (c *Console) live(w http.ResponseWriter, name string, p page, final bool) {
	status := http.StatusOK
	if final {
		status = stopPolling
	}
	c.write(w, status, name, "live", p)
}

func (c *Console) write(w http.ResponseWriter, status int, name, block string, p page) {
	var buf bytes.Buffer
	if err := c.pages[name].ExecuteTemplate(&buf, block, p); err != nil {
		c.cfg.Log.Error().Err(err).Str("template", name).Msg("console: render failed")
		http.Error(w, "the console could not render this page; the API's log says why", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

var funcs = template.FuncMap{
	// echo is what a page repeats of a value a client typed (a query
	// parameter): cut as the API's errors cut it (devices.Echo).
	"echo": devices.Echo,
	// num takes the counters (int64) and a page's own counts (int: len,
	// events read): a template passes no conversion, and an int given to
	// num(int64) failed the page's render.
	"num": func(n any) (string, error) {
		switch v := n.(type) {
		case int64:
			return num(v), nil
		case int:
			return num(int64(v)), nil
		}
		return "", fmt.Errorf("num: %T is not an integer", n)
	},
	"ms": msTime,
	// shortToken is a device token as a person compares two: its first
	// and last characters (the whole one in the cell's title).
	"shortToken": func(t string) string {
		r := []rune(t)
		if len(r) <= 16 {
			return t
		}
		return string(r[:8]) + "…" + string(r[len(r)-4:])
	},
	"utc":       func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") },
	"ago":       ago,
	"since":     func(t time.Time) string { return ago(t.UnixMilli()) },
	"dur":       func(d time.Duration) string { return d.Round(time.Millisecond).String() },
	"fraction":  fraction,
	"rate":      rate,
	"cap":       rateCap,
	"sends":     func(r campaign.Report) int64 { return r.Sends() },
	"eta":       func(r campaign.Report) template.HTML { return whole(eta(r, time.Now())) },
	"unstarted": unstarted,
	// deadLettersOf links a campaign's or a message's own dead letters.
	"deadLettersOf": deadLettersOf,
	"backTo":        func(nav string) string { return sections[sectionOf(nav)][0] },
	"backName":      func(nav string) string { return sections[sectionOf(nav)][1] },
}

// sections are the navigation's sections (page.Nav) an error page leads
// back to: its path and its name in "Back to the …".
var sections = map[string][2]string{
	"campaigns":   {"/ui/campaigns", "campaigns"},
	"new":         {"/ui/campaigns/new", "new-campaign form"},
	"messages":    {"/ui/messages", "direct messages"},
	"channels":    {"/ui/channels", "channels"},
	"pipeline":    {"/ui/pipeline", "pipeline"},
	"deadletters": {"/ui/deadletters", "dead letters"},
}

// sectionOf is nav, or the campaigns for a page of no section.
func sectionOf(nav string) string {
	if _, ok := sections[nav]; ok {
		return nav
	}
	return "campaigns"
}

// unstarted is what a campaign split has not taken (scheduled) or never
// took (canceled before its start) says in place of its counts, as
// `pushpipe status ID` says it (cmd/pushpipe/status_view.go); "" for any
// other. Its Targets and Sent read 0, as if it had reached nobody.
func unstarted(r campaign.Report) template.HTML {
	switch {
	case r.SendAt == nil:
		return ""
	case r.State == campaign.StateScheduled:
		return whole("Scheduled for " + r.SendAt.UTC().Format("2006-01-02 15:04:05 UTC") +
			": nobody counted yet; split counts its channels' subscribers once it takes it.")
	case r.State == campaign.StateCanceled && r.StartedAt == nil:
		return whole("Canceled before its start, " + r.SendAt.UTC().Format("2006-01-02 15:04:05 UTC") +
			": never started; nobody was counted or sent to.")
	}
	return ""
}

// stamp is a date and time as eta and the pages write them.
var stamp = regexp.MustCompile(`(\d{4}-\d\d-\d\d )?\d\d:\d\d:\d\d UTC`)

// whole is text, escaped, with each date and time in it kept on one line
// (.when): "Expected finish" of a scheduled campaign broke "starts
// 2026-12-07" from "15:04:05 UTC" in its narrow column, read as two times.
func whole(text string) template.HTML {
	return template.HTML(stamp.ReplaceAllString(template.HTMLEscapeString(text), `<span class="when">$0</span>`))
}

// num writes 1234567 as 1,234,567.
func num(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := n < 0
	if neg {
		s = s[1:]
	}
	var out []byte
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	if neg {
		return "-" + string(out)
	}
	return string(out)
}

func msTime(ms int64) string {
	if ms == 0 {
		return "—"
	}
	return time.UnixMilli(ms).UTC().Format("2006-01-02 15:04:05 UTC")
}

func ago(ms int64) string {
	if ms == 0 {
		return "—"
	}
	return time.Since(time.UnixMilli(ms)).Round(time.Second).String() + " ago"
}

// fraction is the progress bar's value in thousandths: the targets that
// reached an end (campaign.Report.Done) of all targets (of its audience
// while split is still emitting ranges: campaign.Report.Reached), or -1
// for a bar with no value (indeterminate) while split is still emitting
// ranges of a campaign whose audience it has not counted. The
// targets grow while ranges are resolved, so the targets found so far can
// all be done long before the campaign is: until its state is final, the
// bar stops short of full (999) rather than claim an end that has not come.
func fraction(r campaign.Report) int64 {
	switch {
	case r.State == campaign.StateDone:
		return 1000
	case r.State == campaign.StateSplitting && r.Audience <= 0:
		return -1
	}
	reached, of := r.Reached()
	switch {
	case of <= 0:
		return 0
	case campaign.Final(r.State):
		return min(1000, r.Done*1000/r.Targets)
	}
	return min(999, reached*1000/of)
}

// rate is the campaign's sends (devices sent or failed, Counts.Sends: SendRate's count,
// and the chart's, from the "sends" of each refresh) per second between its
// first and last send;
// under 10/s with a decimal, so a slow campaign (a low cap, a trickle of
// retries) never reads "0/s", as if it had stalled; from 10/s grouped in
// thousands like every other figure beside it ("11072/s" under "119,917").
func rate(r campaign.Report) string {
	switch {
	case r.SendRate <= 0:
		return "—"
	case r.SendRate < 10:
		return strconv.FormatFloat(r.SendRate, 'f', 1, 64) + "/s"
	}
	return num(int64(math.Round(r.SendRate))) + "/s"
}

// rateCap is a campaign's own cap as its page says it: "1,000/s", or
// "none".
func rateCap(r campaign.Report) string {
	if r.RatePerSecond <= 0 {
		return "none"
	}
	return num(int64(r.RatePerSecond)) + "/s"
}

// eta is when a running campaign will be done at its rate, or what else it
// is waiting for. A finish on another (UTC) day than now carries its date:
// a rate-capped million-user campaign runs for hours, and a bare "03:12"
// reads as tonight when it is tomorrow night.
func eta(r campaign.Report, now time.Time) string {
	switch {
	case r.State == campaign.StateScheduled && r.SendAt != nil:
		// To the second: the API takes any RFC 3339 time, and a start
		// shown at 23:00 that comes at 23:00:30 looks late.
		return "starts " + r.SendAt.UTC().Format("2006-01-02 15:04:05 UTC")
	case r.State == campaign.StateCanceled && r.SendAt != nil && r.StartedAt == nil:
		// Canceled before it started: when it was to go out still says
		// which scheduled send was stopped, and a bare "canceled" hid it
		// the moment Cancel was pressed. (One that started has its sends
		// to show instead; a past send_at started it at once.)
		return "canceled, was scheduled for " + r.SendAt.UTC().Format("2006-01-02 15:04:05 UTC")
	case campaign.Final(r.State):
		return r.State
	case r.StalledSinceMs > 0:
		// No progress for as long as the pipeline page takes to call a
		// stage not running: no finish to promise.
		return "stalled since " + time.UnixMilli(r.StalledSinceMs).UTC().Format("15:04:05 UTC")
	case r.QueuedSinceMs > 0:
		// As long without progress while the stages send other
		// campaigns: it waits its turn, and nothing is down.
		return "queued since " + time.UnixMilli(r.QueuedSinceMs).UTC().Format("15:04:05 UTC")
	case r.ExpectedFinishMs == 0:
		return "—"
	}
	at, now := time.UnixMilli(r.ExpectedFinishMs).UTC(), now.UTC()
	if y, m, d := at.Date(); y == now.Year() && m == now.Month() && d == now.Day() {
		return at.Format("15:04:05 UTC")
	}
	return at.Format("2006-01-02 15:04:05 UTC")
}
