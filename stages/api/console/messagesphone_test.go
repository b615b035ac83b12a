package console_test

import (
	"testing"

	"github.com/chromedp/chromedp"
)

// TestMessagesOutcomeOnAPhone: at 390 px the direct messages list shows each
// message's outcome (targets, sent, failed) and its state without a
// sideways scroll, and the pipeline page its stages' lag, pending and dead
// letters. It showed Message, State and Targets, and Sent and
// Failed were behind a scroll a phone user did not know was there.
func TestMessagesOutcomeOnAPhone(t *testing.T) {
	t.Parallel()
	b := newBed(t)
	b.sendMessage("order-4711-shipped", "Your order shipped", []int64{1, 2})
	b.run(chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile, chromedp.EmulatePortrait))
	b.signIn()
	b.run(chromedp.Navigate(b.url+"/ui/messages"), waitJS(`document.querySelector('[data-message="order-4711-shipped"]') !== null && document.readyState === "complete"`))
	tests := []struct {
		name string
		sel  string
	}{
		{"its title", `[data-message] .title`},
		{"its state", `[data-message] .state`},
		{"Targets", `#message-list th:nth-child(3)`},
		{"its targets", `[data-message] .targets`},
		{"Sent", `#message-list th:nth-child(4)`},
		{"its sent", `[data-message] .sent`},
		{"Failed", `#message-list th:nth-child(5)`},
		{"its failed", `[data-message] .failed`},
	}
	for _, tt := range tests {
		// The first of sel shown (a state is in one of two places), and
		// whether it is within the layout viewport (clientWidth, as
		// TestPhoneWidth says why).
		in := js[bool](b, `(() => { const w = document.documentElement.clientWidth;
			return [...document.querySelectorAll(`+"`"+tt.sel+"`"+`)].some(e => { const r = e.getBoundingClientRect();
				return e.getClientRects().length > 0 && r.width > 0 && r.left >= 0 && r.right <= w; }); })()`)
		if !in {
			t.Errorf("%s is not in view at 390 px", tt.name)
		}
	}
	if w := js[[]int](b, `(e => [e.scrollWidth, e.clientWidth])(document.querySelector("#rows .scroll"))`); w[0] > w[1] {
		t.Errorf("the list scrolls sideways: %d px in %d", w[0], w[1])
	}
	// The pipeline page's glance at its stages, the same: Lag, Pending
	// and Dead letters were behind a sideways scroll.
	b.run(chromedp.Navigate(b.url+"/ui/pipeline"), waitJS(`document.querySelector('[data-stage-summary="deliver"]') !== null && document.readyState === "complete"`))
	for _, col := range []string{"lag", "pending", "dead"} {
		if !js[bool](b, `(() => { const w = document.documentElement.clientWidth, r = document.querySelector('[data-stage-summary="deliver"] .`+col+`').getBoundingClientRect();
			return r.width > 0 && r.right <= w; })()`) {
			t.Errorf("the pipeline's %s column is not in view at 390 px", col)
		}
	}
	if w := js[[]int](b, `(e => [e.scrollWidth, e.clientWidth])(document.querySelector("#stage-summary").parentElement)`); w[0] > w[1] {
		t.Errorf("the pipeline's stages scroll sideways: %d px in %d", w[0], w[1])
	}
	// A stage's partitions, opened (a stuck stage's open by
	// themselves): their figures and consumers without a sideways scroll.
	// They scrolled, the consumers (who holds what is pending) out of view.
	// Opened and measured in one evaluation: the page's refresh puts the
	// server's folds back every second.
	parts := js[[]int](b, `(() => { const w = document.documentElement.clientWidth, ds = [...document.querySelectorAll("details.partitions")];
		ds.forEach(d => d.open = true);
		return [ds.length, ds.filter(d => { const e = d.querySelector(".scroll"); return e.scrollWidth > e.clientWidth }).length,
			[...document.querySelectorAll("details.partitions tr > :last-child")].filter(e => { const r = e.getBoundingClientRect(); return r.width === 0 || r.right > w; }).length,
			[...document.querySelectorAll("details.partitions th")].filter(e => e.scrollWidth > e.clientWidth ||
				Math.round(e.getBoundingClientRect().height / parseFloat(getComputedStyle(e).lineHeight)) > 1).length] })()`)
	if parts[0] == 0 || parts[1] != 0 || parts[2] != 0 {
		t.Errorf("at 390 px of %d partition tables %d scroll sideways, and %d partitions' consumers are out of view", parts[0], parts[1], parts[2])
	}
	// Each heading a whole word on a line: "Delaye d", "Pendin g".
	if parts[3] != 0 {
		t.Errorf("at 390 px %d headings of the partition tables are broken or cut", parts[3])
	}
}
