package console_test

import (
	"context"
	"errors"
	"html"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/rs/zerolog"

	"github.com/pushpipe/pushpipe/pipeline"
)

// deadLetters makes n dead letters the way production does: a real deliver
// runner whose handler dead-letters every entry it reads.
func (b *bed) deadLetters(n int) {
	b.t.Helper()
	for i := range n {
		if _, err := pipeline.Emit(b.t.Context(), b.rdb, pipeline.Message{Stream: b.keys.Stream(pipeline.StreamDeliver, 0),
			Fields: []string{pipeline.FieldCampaign, "bad", "n", strconv.Itoa(i), pipeline.FieldUsers, pipeline.EncodeIDs([]int64{int64(i)})}}); err != nil {
			b.t.Fatal(err)
		}
	}
	b.deadLettered(pipeline.Options{Stage: "deliver", Stream: pipeline.StreamDeliver, Consumer: "d1"}, func(pipeline.Entry) bool { return true })
}

// deadLettered runs a real runner of o over the entries already in its
// stream until its handler has dead-lettered each one bad picks (and acked
// the others).
func (b *bed) deadLettered(o pipeline.Options, bad func(pipeline.Entry) bool) {
	b.t.Helper()
	ctx := b.t.Context()
	q := pipeline.NewDLQ(b.rdb, b.keys)
	before, err := q.Len(ctx)
	if err != nil {
		b.t.Fatal(err)
	}
	var want atomic.Int64
	want.Store(-1)    // until the runner has read the stream
	var mu sync.Mutex // the runner's workers share the counts
	var seen, picked int64
	total, err := b.rdb.Do(ctx, b.rdb.B().Xlen().Key(b.keys.Stream(o.Stream, 0)).Build()).AsInt64()
	if err != nil {
		b.t.Fatal(err)
	}
	h := pipeline.HandlerFunc(func(_ context.Context, batch *pipeline.Batch) error {
		mu.Lock()
		defer mu.Unlock()
		for i, e := range batch.Entries {
			if bad(e) {
				batch.DeadLetter(i, errors.New("payload rejected by the provider"))
				picked++
			}
			if seen++; seen == total {
				want.Store(before + picked)
			}
		}
		return nil
	})
	o.Block, o.BatchSize = 50*time.Millisecond, 1
	r := pipeline.NewRunner(b.rdb, b.keys, o, h, zerolog.Nop(), nil)
	rctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { r.Run(rctx) })
	defer wg.Wait()
	defer cancel()
	for deadline := time.Now().Add(time.Minute); ; {
		l, err := q.Len(ctx)
		if w := want.Load(); err == nil && w >= 0 && l == w {
			return
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("%d dead letters after a minute, want %d (%v)", l, want.Load(), err)
		}
		select { // the runner is another goroutine: wait for its commits
		case <-ctx.Done():
			b.t.Fatal(ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (b *bed) deliverLen() int64 {
	b.t.Helper()
	n, err := b.rdb.Do(b.t.Context(), b.rdb.B().Xlen().Key(b.keys.Stream(pipeline.StreamDeliver, 0)).Build()).AsInt64()
	if err != nil {
		b.t.Fatal(err)
	}
	return n
}

// TestDeadLetterRetryAndDrop: the pipeline page counts the dead letters,
// the list shows them, Retry puts one back into its stream, Drop asks
// first and deletes the other.
func TestDeadLetterRetryAndDrop(t *testing.T) {
	t.Parallel()
	b := newBed(t)
	b.deadLetters(2)
	before := b.deliverLen()
	b.signIn()
	b.run(chromedp.Navigate(b.url+"/ui/pipeline"),
		waitJS(`document.getElementById("dlq-depth").textContent === "2" && document.querySelector('section[data-stage="deliver"]') !== null`))
	letters, err := pipeline.NewDLQ(b.rdb, b.keys).List(t.Context(), pipeline.DLQFilter{})
	if err != nil || len(letters) != 2 {
		t.Fatalf("dead letters %v, %v", letters, err)
	}
	first, second := letters[0].ID, letters[1].ID
	// On a phone, as an on-call engineer reads them: each letter's id,
	// error, Retry and Drop in view without a sideways scroll, a letter
	// no taller than half the screen. At 390 px the error and the actions
	// were behind a scroll, each row a screen tall.
	b.run(chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile, chromedp.EmulatePortrait),
		chromedp.Navigate(b.url+"/ui/deadletters"),
		waitJS(`document.querySelectorAll("#dead-letters tr[data-letter]").length === 2 && document.readyState === "complete"`))
	if w := js[[]int](b, `(e => [e.scrollWidth, e.clientWidth])(document.querySelector("#dead-letters").parentElement)`); w[0] > w[1] {
		t.Errorf("at 390 px the dead letters scroll sideways: %d px in %d", w[0], w[1])
	}
	for _, part := range []string{`a[href^="/ui/deadletters/"]`, ".wrap", `button[type="submit"]`, "a.button"} {
		out := js[int](b, `(() => { const w = document.documentElement.clientWidth; return [...document.querySelectorAll("#dead-letters tr[data-letter]")].filter(tr => {
			const e = tr.querySelector(`+"`"+part+"`"+`), r = e && e.getBoundingClientRect(); return !r || r.width === 0 || r.left < 0 || r.right > w; }).length })()`)
		if out != 0 {
			t.Errorf("at 390 px %d letters' %s out of view", out, part)
		}
	}
	if h := js[[]int](b, `[...document.querySelectorAll("#dead-letters tr[data-letter]")].map(tr => Math.round(tr.getBoundingClientRect().height))`); slices.Max(h) > 844/2 {
		t.Errorf("at 390 px letters %v px tall, in a screen of 844", h)
	}
	b.run(
		clickJS(`a[href="/ui/deadletters/`+first+`"]`),
		waitJS(`document.getElementById("retry") !== null`),
		clickJS("#retry"),
		waitJS(`location.pathname === "/ui/deadletters" && document.querySelector("p.notice") !== null &&
			document.querySelectorAll("#dead-letters tr[data-letter]").length === 1`),
	)
	if got := b.deliverLen(); got != before+1 {
		t.Errorf("deliver stream holds %d entries after the retry, want %d", got, before+1)
	}
	b.run(clickJS(`tr[data-letter="`+second+`"] a.button`),
		waitJS(`document.getElementById("confirm-drop") !== null`),
		clickJS("#confirm-drop"),
		waitJS(`location.pathname === "/ui/deadletters" && document.querySelectorAll("#dead-letters tr[data-letter]").length === 0`),
	)
	if n, err := pipeline.NewDLQ(b.rdb, b.keys).Len(t.Context()); err != nil || n != 0 {
		t.Errorf("%d dead letters left (%v), want 0", n, err)
	}
	if got := b.deliverLen(); got != before+1 {
		t.Errorf("the drop re-injected an entry: %d, want %d", got, before+1)
	}
}

// TestMalformedDeadLetterOffersNoRetry: a dead letter that Retry refuses
// (pipeline.DLQ marks it Malformed: here its origin is no stage input of
// this deployment) is shown with Retry disabled and the reason beside it,
// on the list and on its own page; a well-formed one keeps its Retry. Both
// pages used to offer Retry for it, which could only end in a refusal.
func TestMalformedDeadLetterOffersNoRetry(t *testing.T) {
	t.Parallel()
	b := newHTTPBed(t)
	add := func(stream string) string {
		t.Helper()
		id, err := b.rdb.Do(t.Context(), b.rdb.B().Xadd().Key(b.keys.DLQ()).Id("*").FieldValue().
			FieldValue(pipeline.DLQStream, stream).FieldValue(pipeline.DLQID, "1-0").
			FieldValue(pipeline.DLQError, "payload rejected").
			FieldValue(pipeline.DLQFields, pipeline.EncodeDLQFields(map[string]string{pipeline.FieldCampaign: "c1"})).Build()).ToString()
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	bad, good := add("elsewhere"), add(b.keys.Stream(pipeline.StreamDeliver, 0))
	letters, err := pipeline.NewDLQ(b.rdb, b.keys).List(t.Context(), pipeline.DLQFilter{IDs: []string{bad}})
	if err != nil || len(letters) != 1 || letters[0].Malformed == "" {
		t.Fatalf("the malformed letter reads as %+v, %v", letters, err)
	}
	why := html.EscapeString(letters[0].Malformed)
	retry := func(id string) string { return `action="/ui/deadletters/` + id + `/retry"` }
	for _, path := range []string{"/ui/deadletters", "/ui/deadletters/" + bad} {
		_, body := b.get(path)
		if strings.Contains(body, retry(bad)) || !strings.Contains(body, "disabled") || !strings.Contains(body, why) {
			t.Errorf("%s offers Retry for the malformed letter, or does not say why (%q):\n%s", path, why, body)
		}
	}
	if _, body := b.get("/ui/deadletters"); !strings.Contains(body, retry(good)) {
		t.Errorf("the list offers no Retry for the well-formed letter:\n%s", body)
	}
}

// TestBadInputDeadLetterSaysARetryFailsAgain: a letter a stage marked bad
// input (pipeline.BadInput) says, in the list and on its page, that a
// retry brings it back; another letter does not. `dlq retry` warned of it,
// the console offered Retry as if it would help.
func TestBadInputDeadLetterSaysARetryFailsAgain(t *testing.T) {
	t.Parallel()
	b := newHTTPBed(t)
	add := func(bad bool) string {
		t.Helper()
		fv := b.rdb.B().Xadd().Key(b.keys.DLQ()).Id("*").FieldValue().
			FieldValue(pipeline.DLQStream, b.keys.Stream(pipeline.StreamCampaigns, 0)).FieldValue(pipeline.DLQID, "1-0").
			FieldValue(pipeline.DLQError, "field campaign: missing").
			FieldValue(pipeline.DLQFields, pipeline.EncodeDLQFields(map[string]string{"x": "y"}))
		if bad {
			fv = fv.FieldValue(pipeline.DLQBadInput, "1")
		}
		id, err := b.rdb.Do(t.Context(), fv.Build()).ToString()
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	bad, other := add(true), add(false)
	const says = "a retry fails again"
	tests := []struct {
		name, path, marker string
		want               bool
	}{
		{"list, bad input", "/ui/deadletters", `id="bad-` + bad + `"`, true},
		{"list, other", "/ui/deadletters", `id="bad-` + other + `"`, false},
		{"page, bad input", "/ui/deadletters/" + bad, `id="bad-input"`, true},
		{"page, other", "/ui/deadletters/" + other, `id="bad-input"`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, body := b.get(tt.path)
			if got := strings.Contains(body, tt.marker) && strings.Contains(body, says); got != tt.want {
				t.Errorf("%s says the retry fails again: %v, want %v:\n%s", tt.path, got, tt.want, body)
			}
		})
	}
}

// TestDeadLetterFilterSaysWhatItHides: the dead letters filtered to one
// stream say how many there are in all and how many of that stream are
// shown, and an empty filter says it is empty of that stream only. It said
// "2 dead letters in all; the oldest 0 matching are shown" above "No dead
// letters.": an empty queue, at a glance, with two waiting.
func TestDeadLetterFilterSaysWhatItHides(t *testing.T) {
	t.Parallel()
	b := newHTTPBed(t)
	b.deadLetters(2) // from deliver
	tests := []struct {
		stream string
		says   []string
		not    string
	}{
		{"", []string{"2 dead letters in all."}, "No dead letters"},
		{"deliver", []string{"2 dead letters in all streams; 2 from deliver are shown."}, "No dead letters"},
		{"dedupe", []string{"2 dead letters in all streams; none from dedupe.", "No dead letters from dedupe."}, "No dead letters."},
	}
	for _, tt := range tests {
		status, body := b.get("/ui/deadletters?stream=" + tt.stream)
		main := html.UnescapeString(body[strings.Index(body, "<main"):])
		text := strings.Join(strings.Fields(regexp.MustCompile(`<[^>]*>`).ReplaceAllString(main, " ")), " ")
		if status != 200 {
			t.Errorf("stream %q: %d", tt.stream, status)
		}
		for _, want := range tt.says {
			if !strings.Contains(text, strings.Join(strings.Fields(want), " ")) {
				t.Errorf("stream %q: the page does not say %q:\n%s", tt.stream, want, text)
			}
		}
		if strings.Contains(text, tt.not) {
			t.Errorf("stream %q: the page says %q:\n%s", tt.stream, tt.not, text)
		}
	}
}

// TestDeadLettersOfOneReceiver: two webhook receivers' groups read results;
// the pipeline page links each one's dead letters to the list filtered by
// its group, and Retry all there retries that group's alone. Filtered by
// stream only, crm's link listed analytics' letters too, and Retry all sent
// both back.
func TestDeadLettersOfOneReceiver(t *testing.T) {
	t.Parallel()
	b := newHTTPBed(t)
	for i := range 2 {
		c := "c" + strconv.Itoa(i+1)
		ev := pipeline.ResultEvent{ID: pipeline.ResultID(c, "", int64(i+1), pipeline.OutcomeSent), Campaign: c, App: app, UserID: int64(i + 1),
			Platform: "ios", Token: "ab", Outcome: pipeline.OutcomeSent, AtMs: time.Now().UnixMilli()}
		if _, err := pipeline.Emit(t.Context(), b.rdb, pipeline.Message{Stream: b.keys.Stream(pipeline.StreamResults, 0), Fields: pipeline.ResultFields(ev)}); err != nil {
			t.Fatal(err)
		}
	}
	hook := func(group string) pipeline.Options {
		return pipeline.Options{Stage: "webhook", Group: group, Stream: pipeline.StreamResults, Consumer: group + "-1"}
	}
	b.deadLettered(hook("crm"), func(pipeline.Entry) bool { return true })                                             // both
	b.deadLettered(hook("analytics"), func(e pipeline.Entry) bool { return e.Fields[pipeline.FieldCampaign] == "c1" }) // one
	tests := []struct {
		group string
		rows  int
		says  string
	}{
		{"crm", 2, "3 dead letters in all streams; 2 from results, group crm are shown."},
		{"analytics", 1, "3 dead letters in all streams; 1 from results, group analytics are shown."},
		{"", 3, "3 dead letters in all streams; 3 from results are shown."},
	}
	for _, tt := range tests {
		_, body := b.get("/ui/deadletters?stream=results&group=" + tt.group)
		if letterRows(body) != tt.rows || !strings.Contains(mainText(body), tt.says) {
			t.Errorf("group %q: %d rows, want %d; the page should say %q:\n%s", tt.group, letterRows(body), tt.rows, tt.says, mainText(body))
		}
		for _, g := range []string{"crm", "analytics"} {
			if !strings.Contains(body, `<option value="`+g+`"`) {
				t.Errorf("group %q: the filter offers no receiver group %s", tt.group, g)
			}
		}
	}
	_, page := b.get("/ui/deadletters?stream=results&group=analytics")
	if status, loc, body := b.post("/ui/deadletters/retry-all", url.Values{"csrf": {formCSRF(t, page)}, "stream": {"results"}, "group": {"analytics"}}); status != 303 {
		t.Fatalf("retry all of analytics: %d %s\n%s", status, loc, body)
	}
	if _, body := b.get("/ui/deadletters?stream=results&group=crm"); letterRows(body) != 2 || !strings.Contains(mainText(body), "2 dead letters in all streams") {
		t.Errorf("retry all of analytics left crm's 2 letters and nothing else? %s", mainText(body))
	}
	if _, body := b.get("/ui/deadletters?stream=results&group=analytics"); letterRows(body) != 0 {
		t.Errorf("analytics' letter still listed after its retry all: %s", mainText(body))
	}
	if status, _, _ := b.post("/ui/deadletters/retry-all", url.Values{"csrf": {formCSRF(t, page)}, "group": {"no such/group"}}); status != 400 {
		t.Errorf("retry all of a group that cannot be: %d, want 400", status)
	}
}

// TestDeadLettersOfOneCampaign: a campaign's page links its own dead
// letters, the list filtered by it, and Retry all there retries that
// campaign's alone and comes back to its list. The console had no way to
// list one campaign's letters: an operator whose receiver failed during a
// launch read every campaign's letters by their ids.
func TestDeadLettersOfOneCampaign(t *testing.T) {
	t.Parallel()
	b := newHTTPBed(t)
	b.create("c1", time.Time{})
	for i, c := range []string{"c1", "c2", "c1"} {
		ev := pipeline.ResultEvent{ID: pipeline.ResultID(c, "", int64(i+1), pipeline.OutcomeSent), Campaign: c, App: app, UserID: int64(i + 1),
			Platform: "ios", Token: "ab", Outcome: pipeline.OutcomeSent, AtMs: time.Now().UnixMilli()}
		if _, err := pipeline.Emit(t.Context(), b.rdb, pipeline.Message{Stream: b.keys.Stream(pipeline.StreamResults, 0), Fields: pipeline.ResultFields(ev)}); err != nil {
			t.Fatal(err)
		}
	}
	b.deadLettered(pipeline.Options{Stage: "webhook", Group: "crm", Stream: pipeline.StreamResults, Consumer: "crm-1"}, func(pipeline.Entry) bool { return true })
	_, page := b.get("/ui/campaigns/c1")
	link := regexp.MustCompile(`<a href="([^"]*)" id="dead-letters-of">`).FindStringSubmatch(page)
	if link == nil {
		t.Fatalf("the campaign's page links no dead letters of its own:\n%s", page)
	}
	_, list := b.get(html.UnescapeString(link[1]))
	// Its way back names what it shows: "Show every stream" read as
	// the streams, not the campaigns, it filtered out.
	if letterRows(list) != 2 || !strings.Contains(mainText(list), "3 dead letters in all streams; 2 from campaign c1 are shown. Show every dead letter") {
		t.Errorf("%s: %d rows, want c1's 2, saying so:\n%s", link[1], letterRows(list), mainText(list))
	}
	status, loc, body := b.post("/ui/deadletters/retry-all", url.Values{"csrf": {formCSRF(t, list)}, "campaign": {"c1"}})
	if status != 303 || loc != "/ui/deadletters?campaign=c1&done=retried-all&n=2" {
		t.Fatalf("retry all of c1: %d %s, want 303 to c1's list\n%s", status, loc, body)
	}
	// Saying how many: "Dead letters retried" did not say whether it
	// took them all.
	if _, body := b.get(loc); !strings.Contains(mainText(body), "2 dead letters retried: their entries are back in their streams.") {
		t.Errorf("after retry all: %s", mainText(body))
	}
	if _, body := b.get("/ui/deadletters"); letterRows(body) != 1 || !strings.Contains(body, `<a href="/ui/campaigns/c2" class="subject">c2</a>`) {
		t.Errorf("retry all of c1 left c2's letter and nothing else? %s", mainText(body))
	}
	if status, _, _ := b.post("/ui/deadletters/retry-all", url.Values{"csrf": {formCSRF(t, list)}, "campaign": {"no such/id"}}); status != 400 {
		t.Errorf("retry all of a campaign id that cannot be: %d, want 400", status)
	}
}

// TestNotFoundIsNoOutage: a dead letter retried or dropped already, or a
// message id mistyped, is a 404 that says so, and nothing in the API's
// log: each was logged as a warning, "Dead letter 123-0 is unavailable",
// an outage to whoever read the log.
func TestNotFoundIsNoOutage(t *testing.T) {
	t.Parallel()
	b := newHTTPBed(t)
	for _, tt := range []struct{ path, says string }{
		{"/ui/deadletters/123-0", "There is no dead letter 123-0 (retried or dropped already?)."},
		{"/ui/messages/nosuch", "There is no direct message nosuch."},
	} {
		if status, body := b.get(tt.path); status != 404 || !strings.Contains(body, tt.says) {
			t.Errorf("%s: %d, want 404 saying %q", tt.path, status, tt.says)
		}
	}
	if logged := b.logs.String(); strings.Contains(logged, "unavailable") {
		t.Errorf("a page not found was logged as an outage:\n%s", logged)
	}
}

// mainText is the words of a page's main part, tags dropped and spaces
// collapsed: what a reader of the dead letters list sees.
func mainText(body string) string {
	main := html.UnescapeString(body[strings.Index(body, "<main"):])
	return strings.Join(strings.Fields(regexp.MustCompile(`<[^>]*>`).ReplaceAllString(main, " ")), " ")
}

// letterRows is how many dead letters a list page shows.
func letterRows(body string) int { return strings.Count(body, "<tr data-letter=") }
