package console_test

import (
	"html"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/pushpipe/pushpipe/pipeline"
)

// TestDayOneOperatorPages walks what a day-one operator does
// when a webhook receiver answers 500: the dead letters list, then the
// letter. The list's columns keep their words whole (they read "Fro m",
// "Deliv eries", "resul ts/8", the body's overflow-wrap letting the table
// squeeze them), and the letter's events read as `pushpipe dlq show`
// prints them, not as a screen of escaped binary. Then a scheduled
// campaign's page, which says when its chart starts.
func TestDayOneOperatorPages(t *testing.T) {
	t.Parallel()
	b := newBed(t)
	ev := func(user int64, outcome, reason string) pipeline.ResultEvent {
		return pipeline.ResultEvent{ID: pipeline.ResultID("", "m1", user, outcome), Message: "m1", App: app, UserID: user,
			Platform: "ios", Token: "t", Outcome: outcome, Reason: reason, AtMs: 1}
	}
	pairs := pipeline.ResultFields(ev(3, pipeline.OutcomeSent, ""), ev(7, pipeline.OutcomeFailed, "BadDeviceToken"))
	fields := map[string]string{}
	for i := 0; i+1 < len(pairs); i += 2 {
		fields[pairs[i]] = pairs[i+1]
	}
	reason := "claimed for delivery 3, past --max-deliveries 2; last error: POST http://127.0.0.1:18777/…(sha256:6fc2d051): 2 attempts, last: answered 500 Internal Server Error"
	id, err := b.rdb.Do(t.Context(), b.rdb.B().Xadd().Key(b.keys.DLQ()).Id("*").FieldValue().
		FieldValue(pipeline.DLQStream, b.keys.Stream(pipeline.StreamResults, 3)).FieldValue(pipeline.DLQID, "1-0").
		FieldValue(pipeline.DLQGroup, "webhook").FieldValue(pipeline.DLQConsumer, "vm-1").FieldValue(pipeline.DLQDeliveries, "3").
		FieldValue(pipeline.DLQError, reason).FieldValue(pipeline.DLQFields, pipeline.EncodeDLQFields(fields)).Build()).ToString()
	if err != nil {
		t.Fatal(err)
	}

	want := "2 events: user 3 ios sent; user 7 ios failed (BadDeviceToken)"
	if _, body := b.get("/ui/deadletters/" + id); !strings.Contains(body, html.EscapeString(want)) {
		t.Errorf("the letter's page does not read its events as %q:\n%s", want, body)
	}

	b.signIn()
	b.run(chromedp.Navigate(b.url+"/ui/deadletters"), waitJS(`document.querySelector("#dead-letters tbody tr[data-letter]") !== null`))
	// Every word of the headers and of the From column on one line: a word
	// whose characters' boxes sit on two lines was broken inside.
	broken := js[[]string](b, `(() => {
		const cells = [...document.querySelectorAll("#dead-letters thead th, #dead-letters tbody td:nth-child(2)")];
		const out = [];
		for (const cell of cells) {
			const walk = document.createTreeWalker(cell, NodeFilter.SHOW_TEXT);
			for (let n = walk.nextNode(); n; n = walk.nextNode()) {
				for (const m of n.data.matchAll(/\S+/g)) {
					const r = document.createRange();
					r.setStart(n, m.index);
					r.setEnd(n, m.index + m[0].length);
					const tops = new Set([...r.getClientRects()].filter(x => x.width > 0).map(x => Math.round(x.top)));
					if (tops.size > 1) out.push(m[0]);
				}
			}
		}
		return out;
	})()`)
	if len(broken) > 0 {
		t.Errorf("the dead letters table breaks these words inside: %q", broken)
	}

	// A scheduled campaign's page: its chart was an empty grid with
	// sub-second ticks; it says when it starts instead, the chart kept
	// hidden until a refresh says it started.
	at := time.Now().Add(time.Hour).Truncate(time.Second)
	b.create("sched", at)
	b.run(chromedp.Navigate(b.url+"/ui/campaigns/sched"), waitJS(`document.getElementById("sample") !== null`))
	wait := js[string](b, `(() => { const w = document.getElementById("chart-wait"); return w && w.offsetParent !== null ? w.textContent : ""; })()`)
	if want := "at " + at.UTC().Format("2006-01-02 15:04:05 UTC"); !strings.Contains(wait, want) {
		t.Errorf("the scheduled campaign's chart section says %q, want it to say it starts %s", wait, want)
	}
	if shown := js[bool](b, `(() => { const c = document.getElementById("chart"); return c !== null && c.offsetParent !== null && c.getBoundingClientRect().height > 0; })()`); shown {
		t.Error("the scheduled campaign's page shows its empty chart")
	}
}

// TestRetryAllDeadLetters: the dead letters list retries every letter at
// once, as `pushpipe dlq retry --all`: a receiver's outage left 1,682, and
// the console offered a Retry per row.
func TestRetryAllDeadLetters(t *testing.T) {
	t.Parallel()
	b := newBed(t)
	b.deadLetters(3)
	before := b.deliverLen()
	b.signIn()
	b.run(chromedp.Navigate(b.url+"/ui/deadletters"),
		waitJS(`document.querySelectorAll("#dead-letters tr[data-letter]").length === 3 && document.getElementById("retry-all") !== null`),
		clickJS("#retry-all"),
		waitJS(`location.pathname === "/ui/deadletters" && document.querySelector("p.notice") !== null &&
			document.querySelectorAll("#dead-letters tr[data-letter]").length === 0`),
	)
	if n, err := pipeline.NewDLQ(b.rdb, b.keys).Len(t.Context()); err != nil || n != 0 {
		t.Errorf("%d dead letters left (%v), want 0", n, err)
	}
	if got := b.deliverLen(); got != before+3 {
		t.Errorf("deliver stream holds %d entries after Retry all, want %d", got, before+3)
	}
	if b.text("p.notice") == "" || js[bool](b, `document.getElementById("retry-all") !== null`) {
		t.Error("after Retry all the list says nothing, or still offers it with no letter left")
	}
}
