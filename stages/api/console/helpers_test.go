package console_test

import (
	"context"
	"flag"
	"fmt"
	"html"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/input"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/rueidis"
	"github.com/rs/zerolog"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
	"github.com/pushpipe/pushpipe/stages/api"
)

const (
	adminToken = "operator-token-0123456789"
	appKey     = "app-key-of-news-0123456789"
	app        = "com.example.news"
)

// bed is one test's API server (console included) on real Redis and
// PostgreSQL, and a browser tab of its own that records what the page does.
type bed struct {
	t     *testing.T
	url   string
	keys  pipeline.Keys
	rdb   rueidis.Client
	db    *pgxpool.Pool
	dbURL string
	tab   context.Context
	rec   *recorder
	// session is the cookie of b.get's own sign-in (no browser), once
	// made; location the last answer's Location, allow its Allow.
	session  *http.Cookie
	location string
	allow    string
	// queries counts the statements the API (and the test) sent
	// PostgreSQL through db.
	queries *queryCounter
	// redisCalls counts the API's round trips to Redis (b.rdb is not
	// counted).
	redisCalls *redisCounter
	// logs is what the API logged.
	logs *pipelinetest.Logs
}

// redisCounter is the real client, counting the calls that make a round
// trip (Do and DoMulti: one each, however many commands).
type redisCounter struct {
	rueidis.Client
	n atomic.Int64
}

func (r *redisCounter) Do(ctx context.Context, cmd rueidis.Completed) rueidis.RedisResult {
	r.n.Add(1)
	return r.Client.Do(ctx, cmd)
}

func (r *redisCounter) DoMulti(ctx context.Context, cmds ...rueidis.Completed) []rueidis.RedisResult {
	r.n.Add(1)
	return r.Client.DoMulti(ctx, cmds...)
}

// queryCounter is a pgx tracer that counts the queries started.
type queryCounter struct{ n atomic.Int64 }

func (q *queryCounter) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	q.n.Add(1)
	return ctx
}

func (q *queryCounter) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// recorder keeps what a tab did that a test must see: every request it
// made, every console error or exception, every dialog.
type recorder struct {
	mu       sync.Mutex
	requests []string
	errors   []string
	dialogs  []string
	expected []string // console errors a test causes on purpose (a refused request)
}

// expect allows browser console errors containing text: the browser logs
// every 4xx answer, and a test that is refused on purpose sees one.
func (b *bed) expect(text string) {
	b.rec.mu.Lock()
	defer b.rec.mu.Unlock()
	b.rec.expected = append(b.rec.expected, text)
}

func (r *recorder) add(list *[]string, s string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	*list = append(*list, s)
}

func (r *recorder) snapshot() (requests, errors, dialogs []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range r.errors {
		if !slices.ContainsFunc(r.expected, func(x string) bool { return strings.Contains(e, x) }) {
			errors = append(errors, e)
		}
	}
	return append([]string(nil), r.requests...), errors, append([]string(nil), r.dialogs...)
}

// newBed starts the API on a fresh key prefix and database and opens a tab.
// Nothing of a bed is shared with another test's (the browser is, but not
// its contexts), so a test with a bed calls t.Parallel: most of its time
// is spent waiting on the browser and the pages' refreshes.
// At cleanup it saves a screenshot of the tab under the test's artifact
// directory and fails the test if the page logged an error, opened a dialog
// or made a request anywhere but the API.
func newBed(t *testing.T) *bed {
	t.Helper()
	return openBed(t, true)
}

// newHTTPBed is newBed without a tab, for a test that reads the console's
// pages and posts its forms over HTTP alone (get, post, do, and its own
// requests to b.url): a tab it never opens is a renderer process started
// and closed for nothing, seconds of a loaded machine per bed. Its b.tab is
// no browser's: a browser action fails the test ("invalid context").
func newHTTPBed(t *testing.T) *bed {
	t.Helper()
	return openBed(t, false)
}

// on is b for subtest t: its requests and failures are t's, its servers
// and session b's. The rows of a table share one bed (b signed in before
// them), each a database and an API started spared.
func (b *bed) on(t *testing.T) *bed {
	c := *b
	c.t = t
	return &c
}

// withAPI is b.on(t) served by an API of its own on b's Redis, database
// and keys, its config changed by tune (its apps, say): another config
// without another bed's database to start. No tab: HTTP alone.
func (b *bed) withAPI(t *testing.T, tune func(*api.Config)) *bed {
	cfg := api.Config{Redis: b.rdb, DB: b.db, Keys: b.keys, Log: zerolog.Nop(),
		Auth: api.Auth{AdminToken: adminToken, AppKeys: map[string]string{app: appKey}}}
	tune(&cfg)
	srv := httptest.NewServer(api.New(cfg))
	t.Cleanup(srv.Close)
	c := b.on(t)
	c.url, c.session, c.tab = srv.URL, nil, context.Background()
	return c
}

// openBed is newBed, with a tab or without one (newHTTPBed).
func openBed(t *testing.T, withTab bool) *bed {
	t.Helper()
	b := &bed{t: t, rec: &recorder{}, tab: context.Background()}
	opened, openErr := make(chan struct{}), error(nil)
	closeTab, cancel := func() {}, context.CancelFunc(func() {})
	if withTab {
		// A browser context of its own: no cookie is shared with another
		// test. It opens (a renderer process of its own, seconds on a
		// loaded machine) while the database is copied and the API starts.
		var tab context.Context
		tab, closeTab = chromedp.NewContext(browser, chromedp.WithNewBrowserContext(), chromedp.WithListener(b.record))
		tab, cancel = context.WithTimeout(tab, 4*time.Minute)
		b.tab = tab
		go func() {
			defer close(opened)
			if openErr = enableTab(tab); openErr == nil {
				// A laptop's viewport, the same for every test's screenshot.
				openErr = chromedp.Do(tab, chromedp.EmulateViewport(1024, 768))
			}
		}()
	} else {
		close(opened)
	}
	// Closed last, and only once it opened, whatever fails first; the
	// cleanup below checks the tab before the servers close.
	t.Cleanup(func() {
		<-opened
		cancel()
		closeTab()
	})
	rdb, err := pipeline.NewRedis(env.Redis.Addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rdb.Close)
	url := pipelinetest.MigratedDatabaseT(t, env.Postgres)
	pcfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	queries := &queryCounter{}
	pcfg.ConnConfig.Tracer = queries
	db, err := pgxpool.NewWithConfig(context.Background(), pcfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	keys := pipeline.NewKeys("t"+strconv.FormatUint(rand.Uint64(), 36), 4)
	calls := &redisCounter{Client: rdb}
	logs := &pipelinetest.Logs{}
	srv := httptest.NewServer(api.New(api.Config{Redis: calls, DB: db, Keys: keys, Log: zerolog.New(logs),
		Auth: api.Auth{AdminToken: adminToken, AppKeys: map[string]string{app: appKey}}}))
	t.Cleanup(srv.Close)

	b.url, b.keys, b.rdb, b.db, b.dbURL, b.queries, b.redisCalls, b.logs = srv.URL, keys, rdb, db, url, queries, calls, logs
	<-opened
	if openErr != nil {
		t.Fatal(openErr)
	}
	t.Cleanup(func() {
		defer closeTab()
		defer cancel()
		if withTab && keepArtifacts() {
			b.screenshot()
		}
		requests, errs, dialogs := b.rec.snapshot()
		for _, u := range requests {
			if !strings.HasPrefix(u, b.url+"/") && !strings.HasPrefix(u, "data:") {
				t.Errorf("the page requested %s, outside the API", u)
			}
		}
		for _, e := range errs {
			t.Errorf("browser console: %s", e)
		}
		for _, d := range dialogs {
			t.Errorf("a dialog opened: %s", d)
		}
	})
	return b
}

// keepArtifacts tells whether go test was asked to keep artifacts
// (-artifacts): without it, t.ArtifactDir is a directory removed when the
// test ends, and a screenshot saved there (a full page encoded as PNG, at
// every one of the package's beds) would be work thrown away.
func keepArtifacts() bool {
	f := flag.Lookup("test.artifacts")
	return f != nil && f.Value.String() == "true"
}

// screenshot saves the tab's whole page under the test's artifact
// directory, as screenshot.png.
func (b *bed) screenshot() { b.screenshotAs("screenshot.png") }

// screenshotAs saves the tab's whole page under the test's artifact
// directory as name: a test's view of a moment its end does not show.
func (b *bed) screenshotAs(name string) {
	// Its own time budget: a screenshot that hangs (a page caught
	// mid-navigation) must not take the test's.
	shot, cancelShot := context.WithTimeout(b.tab, 30*time.Second)
	defer cancelShot()
	png, err := chromedp.Run(shot, chromedp.FullScreenshot(100))
	if err != nil {
		// Chromium now and then measures a page mid-refresh at zero
		// width: the viewport alone then.
		png, err = chromedp.Run(shot, chromedp.CaptureScreenshot())
	}
	if err != nil {
		b.t.Errorf("screenshot: %v", err)
	} else if err := os.WriteFile(filepath.Join(b.t.ArtifactDir(), name), png, 0o644); err != nil {
		b.t.Error(err)
	}
}

// record is every tab's listener: the tab's loop calls it, so it records
// and returns, and runs no command (a dialog is closed from a goroutine).
func (b *bed) record(ev any) {
	switch ev := ev.(type) {
	case *network.EventRequestWillBeSent:
		b.rec.add(&b.rec.requests, ev.Request.URL)
	case *runtime.EventExceptionThrown:
		b.rec.add(&b.rec.errors, "exception: "+ev.ExceptionDetails.Text)
	case *runtime.EventConsoleAPICalled:
		if ev.Type == runtime.ConsoleAPICalledTypeError {
			b.rec.add(&b.rec.errors, "console.error")
		}
	case *cdplog.EventEntryAdded:
		if ev.Entry.Level == cdplog.EntryLevelError {
			b.rec.add(&b.rec.errors, string(ev.Entry.Source)+": "+ev.Entry.Text)
		}
	case *page.EventJavascriptDialogOpening:
		b.rec.add(&b.rec.dialogs, string(ev.Type)+": "+ev.Message)
		go chromedp.Call(b.tab, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: false})
	}
}

// enable turns on the network and log events record needs.
func (b *bed) enable(tab context.Context) {
	b.t.Helper()
	if err := enableTab(tab); err != nil {
		b.t.Fatal(err)
	}
}

// enableTab is enable's work, for a goroutine of its own (newBed's).
func enableTab(tab context.Context) error {
	if _, err := chromedp.Call(tab, network.Enable, network.EnableParams{}); err != nil {
		return err
	}
	_, err := chromedp.Call(tab, cdplog.Enable, cdp.Empty{})
	return err
}

// secondTab opens another tab in the test's browser context (the same
// session), recorded like the first.
func (b *bed) secondTab() context.Context {
	b.t.Helper()
	tab, closeTab := chromedp.NewContext(b.tab, chromedp.WithListener(b.record))
	b.t.Cleanup(closeTab)
	b.enable(tab)
	return tab
}

// run runs browser actions in the tab, failing the test on error.
func (b *bed) run(actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := chromedp.Do(b.tab, actions...); err != nil {
		b.t.Fatal(err)
	}
}

// waitJS waits until a JavaScript expression is true in the page: DOM
// conditions, never sleeps. A navigation while it waits (a form posted, a
// redirect) destroys the page's JavaScript context under the poll; it then
// polls again in the new page.
//
// An expression that throws counts as false: between a click and the page
// it leads to, the old page is still there, without the new one's elements.
//
// It holds only once the page is parsed whole: a page arrives in pieces,
// and the browser shows what came. A table's first rows made "rows > 0"
// true while the last row had its first cell and not its second, and the
// test's next look at every row's second cell threw (TestChannelsPage, CI).
func waitJS(expr string) chromedp.Action[chromedp.Void] {
	safe := "(() => { try { return document.readyState !== \"loading\" && (" + expr + "); } catch (e) { return false; } })()"
	return func(ctx context.Context, t *chromedp.Target) (chromedp.Void, error) {
		deadline := time.Now().Add(3 * time.Minute)
		for {
			_, err := chromedp.Poll[chromedp.Void](safe, chromedp.WithPollingInterval(50*time.Millisecond),
				chromedp.WithPollingTimeout(time.Until(deadline)))(ctx, t)
			if err == nil || ctx.Err() != nil || time.Now().After(deadline) || !contextGone(err) {
				if err != nil {
					err = fmt.Errorf("waiting for %s: %w", expr, err)
				}
				return chromedp.Void{}, err
			}
		}
	}
}

// contextGone is the error of an evaluation whose page went away.
func contextGone(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "context with specified id") || strings.Contains(msg, "Execution context was destroyed") ||
		strings.Contains(msg, "Inspected target navigated")
}

// typeToken opens a console page signed out, which leads to the sign-in
// form, and signs in with the keyboard: the token field has the focus,
// Enter submits. The caller waits for the outcome.
func (b *bed) typeToken(token string) {
	b.t.Helper()
	b.submitToken(chromedp.KeyEvent(token))
}

// submitToken is typeToken with the token put in the focused field by fill.
func (b *bed) submitToken(fill chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	b.run(
		chromedp.Navigate(b.url+"/ui/campaigns"),
		chromedp.WaitVisible(chromedp.ID("token")),
		waitJS(`location.pathname === "/ui/signin" && document.activeElement && document.activeElement.id === "token"`),
		fill,
		chromedp.KeyEvent(kb.Enter),
	)
}

// signIn signs in as the operator through the sign-in form, as typeToken
// does, and waits for the campaigns page. The token goes into the focused
// field as one insertion (what a paste does), not a key at a time: typed,
// its 25 characters were 75 round trips to Chromium, seconds of most
// tests' setup on a loaded machine. TestSignIn types it.
func (b *bed) signIn() {
	b.t.Helper()
	b.submitToken(insertText(adminToken))
	b.waitCampaigns()
}

// waitCampaigns waits for the campaigns page, where a sign-in leads, with
// its scripts run: they are deferred, htmx first, console.js last, and a
// click between the two (htmx defined, the rows there) was a click before
// console.js took a row's Cancel, which followed the plain link. On a busy
// box that window is wide enough for a test's click: TestListCancelsInPlace
// then waited 3 minutes on the cancel page for the question in the list.
func (b *bed) waitCampaigns() {
	b.t.Helper()
	b.run(waitJS(`location.pathname === "/ui/campaigns" && document.getElementById("campaign-list") !== null && document.readyState === "complete"`))
}

// insertText puts text into the focused element in one input event, as a
// paste or an input method does (Input.insertText).
func insertText(text string) chromedp.Action[chromedp.Void] {
	return func(ctx context.Context, t *chromedp.Target) (chromedp.Void, error) {
		_, err := cdp.Call(ctx, t, input.InsertText, input.InsertTextParams{Text: text})
		return chromedp.Void{}, err
	}
}

// js evaluates an expression in the page.
func js[T any](b *bed, expr string) T {
	b.t.Helper()
	v, err := chromedp.Run(b.tab, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		b.t.Fatalf("%s: %v", expr, err)
	}
	return v
}

// text is an element's text.
func (b *bed) text(sel string) string {
	b.t.Helper()
	// Read in the page in one evaluation: a node id chromedp resolved can
	// be gone by the time it asks for its text (the page swaps parts).
	return js[string](b, fmt.Sprintf(`(document.querySelector(%q) || {innerText: ""}).innerText`, sel))
}

// cookies are the tab's cookies for the console.
func (b *bed) cookies() []*network.Cookie {
	b.t.Helper()
	res, err := chromedp.Call(b.tab, network.GetCookies, network.GetCookiesParams{URLs: []string{b.url + "/ui/"}})
	if err != nil {
		b.t.Fatal(err)
	}
	return res.Cookies
}

// clickJS clicks the first element matching the CSS selector sel, found and
// clicked in one evaluation in the page: the live pages swap parts of
// themselves every second (htmx), so a node chromedp found can be gone by the
// time it clicks it ("Could not find node with given id"). The click runs
// after the evaluation returns, so a click that navigates is not repeated.
func clickJS(sel string) chromedp.Action[chromedp.Void] {
	return waitJS(fmt.Sprintf(`(() => { const e = document.querySelector(%q); if (!e) return false; setTimeout(() => e.click(), 0); return true })()`, sel))
}

// setJS sets the value of the first element matching the CSS selector sel,
// found and set in one evaluation in the page, for the reason clickJS
// gives: chromedp.SetValue resolves a node id first, and a page that swaps
// its live part (or the page a redirect just left) can drop it in between
// ("No node with given id found").
func setJS(sel, value string) chromedp.Action[chromedp.Void] {
	return waitJS(fmt.Sprintf(`(() => { const e = document.querySelector(%q); if (!e) return false; e.value = %q; return e.value === %q })()`, sel, value, value))
}

// fillApp sets the new-campaign form's App field to app, whatever it
// held: the form fills it in when the API has one app, and keys typed
// into it (chromedp.SendKeys) were added to that, "com.example.news" twice.
func fillApp(app string) chromedp.Action[chromedp.Void] { return setJS("#app", app) }

// get is a console page as a signed-in browser fetches it, without the
// browser: its status and its body.
func (b *bed) get(path string) (int, string) {
	b.t.Helper()
	req, _ := http.NewRequestWithContext(b.t.Context(), http.MethodGet, b.url+path, nil)
	return b.do(req)
}

// post is a console form posted by a signed-in browser: its status, its
// redirect's Location and its body.
func (b *bed) post(path string, form url.Values) (int, string, string) {
	b.t.Helper()
	req, _ := http.NewRequestWithContext(b.t.Context(), http.MethodPost, b.url+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	status, body := b.do(req)
	return status, b.location, body
}

// do sends req with b.get's own session (signing in once, without the
// browser) and does not follow redirects.
func (b *bed) do(req *http.Request) (int, string) {
	b.t.Helper()
	if b.session == nil {
		resp, err := noRedirect.PostForm(b.url+"/ui/signin", url.Values{"token": {adminToken}})
		if err != nil {
			b.t.Fatal(err)
		}
		resp.Body.Close()
		for _, c := range resp.Cookies() {
			b.session = c
		}
		if b.session == nil {
			b.t.Fatalf("sign-in: %d, no cookie", resp.StatusCode)
		}
	}
	req.AddCookie(b.session)
	resp, err := noRedirect.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	b.location, b.allow = resp.Header.Get("Location"), resp.Header.Get("Allow")
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		b.t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

// noRedirect shows the console's redirects rather than following them.
var noRedirect = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// formCSRF is the csrf field of a console page's form, as a browser sends
// it back.
func formCSRF(t testing.TB, page string) string {
	t.Helper()
	m := regexp.MustCompile(`name="csrf" value="([^"]*)"`).FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no csrf field in\n%s", page)
	}
	return html.UnescapeString(m[1])
}
