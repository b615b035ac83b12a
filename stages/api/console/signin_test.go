package console_test

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/pushpipe/pushpipe/pipeline/campaign"
)

// TestSignIn: a wrong token and an app key are refused with the same
// answer; the operator token gives an HttpOnly, SameSite=Strict, expiring
// cookie; sign-out ends the session (the old cookie no longer works).
func TestSignIn(t *testing.T) {
	t.Parallel()
	b := newBed(t)
	b.expect("status of 401")
	for _, tok := range []string{"not-the-token-0123456789", appKey} {
		b.typeToken(tok)
		b.run(waitJS(`document.querySelector("p.error") !== null`))
		if got := b.text("p.error"); !strings.Contains(got, "not the operator token") {
			t.Errorf("token %q: error %q", tok, got)
		}
		if n := len(b.cookies()); n != 0 {
			t.Errorf("token %q: %d cookies set", tok, n)
		}
	}
	// Typed, as the other tests' b.signIn does not.
	b.typeToken(adminToken)
	b.waitCampaigns()
	cookies := b.cookies()
	if len(cookies) != 1 {
		t.Fatalf("cookies after sign-in: %+v", cookies)
	}
	c := cookies[0]
	if !c.HTTPOnly || c.SameSite != network.CookieSameSiteStrict || c.Session || c.Expires <= 0 || c.Path != "/ui/" {
		t.Errorf("session cookie %+v: want HttpOnly, SameSite=Strict, expiring, Path=/ui/", c)
	}
	if c.Secure {
		t.Error("Secure cookie over plain HTTP: the browser would never send it back")
	}
	// The console's API data needs the session: the API's bearer routes
	// do not accept the cookie, and the console does not accept a bearer.
	old := c.Value
	b.run(clickJS(".signout button"),
		waitJS(`location.pathname === "/ui/signin"`))
	if n := len(b.cookies()); n != 0 {
		t.Errorf("%d cookies after sign-out", n)
	}
	jar, _ := cookiejar.New(nil)
	u, _ := url.Parse(b.url + "/ui/")
	jar.SetCookies(u, []*http.Cookie{{Name: c.Name, Value: old, Path: "/ui/"}})
	client := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Get(b.url + "/ui/campaigns")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	// To the sign-in form, which says the session ended.
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/ui/signin?why=ended" {
		t.Errorf("the signed-out cookie still opens the console: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
}

// TestSecurityHeadersAndCSRF: every answer has the strict CSP; a POST of a
// signed-in browser without the CSRF token is refused, and so is one from
// another origin with it; the same POST with the token works.
func TestSecurityHeadersAndCSRF(t *testing.T) {
	t.Parallel()
	b := newBed(t)
	for _, path := range []string{"/ui/signin", "/ui/campaigns", "/ui/static/console.js", "/ui/nowhere"} {
		resp, err := http.Get(b.url + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		csp := resp.Header.Get("Content-Security-Policy")
		if !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "script-src 'self'") ||
			strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") {
			t.Errorf("%s: Content-Security-Policy %q", path, csp)
		}
		if resp.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s: no nosniff", path)
		}
	}
	b.signIn()
	b.expect("status of 403")
	// From the page itself (same origin, the session cookie sent), without
	// the token: refused.
	status := js[int](b, `fetch("/ui/signout", {method: "POST", body: new URLSearchParams({x: "1"})}).then(r => r.status)`)
	if status != http.StatusForbidden {
		t.Errorf("POST without the CSRF token: %d, want 403", status)
	}
	// From another origin, with the token: refused by the origin check.
	// (A page elsewhere cannot read the token; this shows the second
	// lock holds on its own.)
	token := js[string](b, `JSON.parse(document.body.getAttribute("hx-headers"))["X-CSRF-Token"]`)
	cookie := b.cookies()[0]
	req, _ := http.NewRequest("POST", b.url+"/ui/signout", strings.NewReader(url.Values{"csrf": {token}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	req.AddCookie(&http.Cookie{Name: cookie.Name, Value: cookie.Value})
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("cross-site POST with the token: %d, want 403", resp.StatusCode)
	}
	// Still signed in: neither refused POST did anything.
	b.run(chromedp.Navigate(b.url+"/ui/pipeline"), waitJS(`location.pathname === "/ui/pipeline"`))
	status = js[int](b, `fetch("/ui/signout", {method: "POST", headers: {"X-CSRF-Token": `+"`"+token+"`"+`}, redirect: "manual"}).then(r => r.type === "opaqueredirect" ? 303 : r.status)`)
	if status != http.StatusSeeOther {
		t.Errorf("POST with the CSRF token: %d, want 303", status)
	}
	// Signed out: the page's next refresh takes it to the sign-in form.
	b.run(waitJS(`location.pathname === "/ui/signin" && document.readyState === "complete"`))
}

// TestPhoneWidth: at 375 px no page scrolls sideways, and the navigation
// is reachable with the keyboard.
func TestPhoneWidth(t *testing.T) {
	t.Parallel()
	b := newBed(t)
	b.run(chromedp.EmulateViewport(375, 740, chromedp.EmulateMobile, chromedp.EmulatePortrait))
	b.signIn()
	for _, path := range []string{"/ui/campaigns", "/ui/campaigns/new", "/ui/messages", "/ui/pipeline", "/ui/deadletters"} {
		b.run(chromedp.Navigate(b.url+path), waitJS(`document.readyState === "complete"`))
		// Against the layout viewport (clientWidth): a phone's
		// innerWidth is its visual viewport, which zooms out to a page
		// wider than the screen, so the check could not fail.
		if w := js[[]int](b, `[document.documentElement.scrollWidth, document.documentElement.clientWidth]`); w[0] > w[1] {
			t.Errorf("%s: %d px wide in a %d px viewport", path, w[0], w[1])
		}
	}
	// Tab from the top: the skip link first, then the navigation.
	b.run(chromedp.Navigate(b.url+"/ui/campaigns"), waitJS(`document.readyState === "complete"`),
		chromedp.KeyEvent("\t"), waitJS(`document.activeElement.classList.contains("skip")`),
		chromedp.KeyEvent("\t"), chromedp.KeyEvent("\t"), chromedp.KeyEvent("\t"),
		waitJS(`document.activeElement.getAttribute("href") === "/ui/campaigns/new"`),
		chromedp.KeyEvent("\r"), waitJS(`location.pathname === "/ui/campaigns/new"`))
}

// TestExpiredSessionLeadsBack: a session that ends under an open campaign
// page takes the page to the sign-in form, and signing in leads back to
// that campaign. It used to lead to the campaign list: mid-launch the
// operator had to find the campaign again.
func TestExpiredSessionLeadsBack(t *testing.T) {
	t.Parallel()
	b := newBed(t)
	if _, _, err := campaign.Create(t.Context(), b.rdb, b.db, b.keys, campaign.Campaign{ID: "watched", App: app, Channels: []string{"nobody"}, Title: "Watched"}); err != nil {
		t.Fatal(err)
	}
	b.signIn()
	b.run(chromedp.Navigate(b.url+"/ui/campaigns/watched"), waitJS(`document.getElementById("state") !== null`))
	// The session ends (its time is up, or it was signed out elsewhere):
	// its key leaves Redis.
	h := sha256.Sum256([]byte(b.cookies()[0].Value))
	if err := b.rdb.Do(t.Context(), b.rdb.B().Del().Key(b.keys.ConsoleSession(hex.EncodeToString(h[:]))).Build()).Error(); err != nil {
		t.Fatal(err)
	}
	b.within(30*time.Second,
		waitJS(`location.pathname === "/ui/signin" && document.readyState === "complete" && document.getElementById("token") !== null`),
		chromedp.SendKeys(chromedp.ID("token"), adminToken+"\r"),
		waitJS(`location.pathname === "/ui/campaigns/watched" && document.getElementById("state") !== null`))
}

// TestSignInSaysWhy: the sign-in form says why it is shown. A session that
// ended under an open campaign page (its time up, or signed out in another
// tab) took the page to a bare sign-in form, with no word of why the
// console had let go; a sign-out said nothing either. A browser that never
// signed in is told nothing it did not do.
func TestSignInSaysWhy(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		before func(b *bed) // leads the tab to the sign-in form
		says   string       // the notice; "": none
	}{
		{"never signed in", func(b *bed) {
			b.run(chromedp.Navigate(b.url + "/ui/campaigns/watched"))
		}, ""},
		{"session ended under an open page", func(b *bed) {
			b.signIn()
			b.run(chromedp.Navigate(b.url+"/ui/campaigns/watched"), waitJS(`document.getElementById("state") !== null`))
			h := sha256.Sum256([]byte(b.cookies()[0].Value))
			if err := b.rdb.Do(b.t.Context(), b.rdb.B().Del().Key(b.keys.ConsoleSession(hex.EncodeToString(h[:]))).Build()).Error(); err != nil {
				b.t.Fatal(err)
			}
		}, "Your session ended: a sign-in lasts 8 hours, and signing out in another tab ends it too."},
		{"signed out", func(b *bed) {
			b.signIn()
			b.run(clickJS(".signout button"))
		}, "You are signed out."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := newBed(t)
			if _, _, err := campaign.Create(t.Context(), b.rdb, b.db, b.keys, campaign.Campaign{ID: "watched", App: app, Channels: []string{"nobody"}, Title: "Watched"}); err != nil {
				t.Fatal(err)
			}
			tt.before(b)
			b.within(30*time.Second, waitJS(`location.pathname === "/ui/signin" && document.readyState === "complete" && document.getElementById("token") !== null`))
			if got := b.text("p.notice"); got != tt.says && (tt.says == "" || !strings.HasPrefix(got, tt.says)) {
				t.Errorf("the sign-in form says %q, want %q", got, tt.says)
			}
		})
	}
}

// TestSignInTakesAPastedToken: the operator token copied from a terminal
// with the spaces around it signs in. It was refused as "not the operator
// token" with the right token in the field. A wrong token with spaces is
// still wrong.
func TestSignInTakesAPastedToken(t *testing.T) {
	t.Parallel()
	b := newHTTPBed(t)
	tests := []struct {
		name, token string
		status      int
	}{
		{"as printed", adminToken, http.StatusSeeOther},
		{"with the spaces before it", "    " + adminToken, http.StatusSeeOther},
		{"with a space and a newline after it", adminToken + " \n", http.StatusSeeOther},
		{"a tab either side", "\t" + adminToken + "\t", http.StatusSeeOther},
		{"wrong, with spaces", " " + adminToken[1:] + " ", http.StatusUnauthorized},
		{"spaces alone", "   ", http.StatusUnauthorized},
	}
	for _, tt := range tests {
		resp, err := noRedirect.PostForm(b.url+"/ui/signin", url.Values{"token": {tt.token}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tt.status {
			t.Errorf("%s: %d, want %d", tt.name, resp.StatusCode, tt.status)
		}
		if signedIn := len(resp.Cookies()) > 0; signedIn != (tt.status == http.StatusSeeOther) {
			t.Errorf("%s: a session cookie %v", tt.name, signedIn)
		}
	}
}

// TestSignInLeadsOnlyToConsolePages: where a sign-in leads is the
// console's own page from ?next=, and the campaign list for anything else:
// a crafted link can never make the sign-in send the operator to another
// site.
func TestSignInLeadsOnlyToConsolePages(t *testing.T) {
	t.Parallel()
	b := newHTTPBed(t)
	tests := []struct {
		next, want string
	}{
		{"/ui/campaigns/c1", "/ui/campaigns/c1"},
		{"/ui/deadletters?stream=deliver", "/ui/deadletters?stream=deliver"},
		{"", "/ui/campaigns"},
		{"//evil.example/ui/", "/ui/campaigns"},
		{"https://evil.example/ui/campaigns", "/ui/campaigns"},
		{`/\evil.example/ui/`, "/ui/campaigns"},
		{"/ui//evil.example", "/ui/campaigns"},
		{"/v1/campaigns", "/ui/campaigns"},
		{"javascript:alert(1)", "/ui/campaigns"},
		{"/ui/signin", "/ui/campaigns"},
	}
	for _, tt := range tests {
		resp, err := noRedirect.PostForm(b.url+"/ui/signin", url.Values{"token": {adminToken}, "next": {tt.next}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther || got != tt.want {
			t.Errorf("next %q: %d to %q, want 303 to %q", tt.next, resp.StatusCode, got, tt.want)
		}
	}
}

// TestFormBodyCapped: every console POST refuses a body over the forms'
// cap (413) before doing anything, whatever the handler. The new-campaign
// form's cap was set after the session check had read the whole body for
// its CSRF field (Go's own limit: 10 MB), so it capped nothing.
func TestFormBodyCapped(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		pad  int // bytes of padding beside the form's fields
		want int
	}{
		{"a form", 0, http.StatusSeeOther},
		{"a megabyte", 1 << 20, http.StatusRequestEntityTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := newHTTPBed(t)
			_, page := b.get("/ui/pipeline")
			m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(page)
			if m == nil {
				t.Fatalf("no CSRF field in\n%s", page)
			}
			form := url.Values{"csrf": {m[1]}}
			if tt.pad > 0 {
				form.Set("pad", strings.Repeat("x", tt.pad))
			}
			if status, _, _ := b.post("/ui/signout", form); status != tt.want {
				t.Errorf("sign-out with %d bytes of padding: %d, want %d", tt.pad, status, tt.want)
			}
		})
	}
}
