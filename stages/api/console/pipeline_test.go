package console_test

import (
	"context"
	"html"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/rs/zerolog"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
)

// TestOptionalStageSaysSo: on the pipeline page, a stage without a consumer
// group is "not started yet" unless it is optional (the webhook), which
// says so. Every make dev showed the results stream's thousands of entries
// beside "the stage has not started", for a webhook nobody had configured.
func TestOptionalStageSaysSo(t *testing.T) {
	t.Parallel()
	b := newHTTPBed(t) // no stage has run: no group anywhere
	_, body := b.get("/ui/pipeline")
	tests := []struct {
		stage string
		says  string
	}{
		{"webhook", "webhook is optional and has not run here"},
		{"deliver", "No consumer group yet: the stage has not started"},
		{"split", "No consumer group yet: the stage has not started"},
	}
	for _, tt := range tests {
		m := regexp.MustCompile(`(?s)<section class="stage" data-stage="` + tt.stage + `".*?</section>`).FindString(body)
		if m == "" {
			t.Fatalf("no section of stage %s in\n%s", tt.stage, body)
		}
		if got := html.UnescapeString(m); !strings.Contains(got, tt.says) {
			t.Errorf("stage %s does not say %q:\n%s", tt.stage, tt.says, got)
		}
	}
	if strings.Contains(regexp.MustCompile(`(?s)<section class="stage" data-stage="webhook".*?</section>`).FindString(body), "has not started") {
		t.Error("the webhook, optional, is said not to have started")
	}
}

// TestPipelineSaysWhichStagesRun: the pipeline page says of each stage
// whether it runs, from its processes' liveness beats: idle while its
// process waits on a quiet stream, not running at once after a clean stop,
// and not running with when it was last seen once a process stops beating
// (killed, hung, or cut from Redis), with the work waiting for it and what
// to do. Before, all three showed the same figures and a consumer's idle
// time, which on Redis 7.0 grows on a quiet stream as on a dead process.
// A stage whose live process's handler hangs reads stuck.
func TestPipelineSaysWhichStagesRun(t *testing.T) {
	// Not parallel: its stages' beats every 200 ms are what it reads, and
	// other tests' load would make them late.
	b := newBed(t)
	hang := make(chan struct{})
	defer close(hang)
	run := func(stage string) (stop func(), lose func()) {
		def, _ := pipeline.StageNamed(stage)
		rdb, err := pipeline.NewRedis(env.Redis.Addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(rdb.Close)
		opts := def.Options()
		opts.Consumer, opts.Block, opts.AliveEvery, opts.ShutdownTimeout = stage+"-1", 100*time.Millisecond, 200*time.Millisecond, 100*time.Millisecond
		opts.StuckAfter = 300 * time.Millisecond
		h := pipeline.HandlerFunc(func(context.Context, *pipeline.Batch) error { return nil })
		if stage == "deliver" {
			h = func(ctx context.Context, _ *pipeline.Batch) error {
				select {
				case <-hang:
				case <-ctx.Done():
				}
				return nil
			}
		}
		r := pipeline.NewRunner(rdb, b.keys, opts, h, zerolog.Nop(), nil)
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() { defer close(done); r.Run(ctx) }()
		t.Cleanup(func() { cancel(); <-done })
		pipelinetest.Eventually(t, 10*time.Second, stage+" ready", r.Ready)
		return func() { cancel(); <-done }, rdb.Close
	}
	_, _ = run("dedupe")
	_, _ = run("deliver")
	stopSplit, _ := run("split")
	_, loseResolve := run("resolve")
	stopSplit()
	loseResolve()
	if _, err := pipeline.Emit(t.Context(), b.rdb, pipeline.Message{Stream: b.keys.Stream(pipeline.StreamRanges, 1), Fields: []string{"n", "1"}},
		pipeline.Message{Stream: b.keys.Stream(pipeline.StreamDeliver, 0), Fields: []string{"n", "1"}}); err != nil {
		t.Fatal(err)
	}
	// Until resolve missed three beats and deliver held its batch past
	// StuckAfter (dedupe stays idle past both). The entry waiting for
	// resolve is either unread (lag) or read by the blocked XREADGROUP the
	// lost client had sent (pending), as the close and the XADD fall.
	var body string
	pipelinetest.Eventually(t, 30*time.Second, "resolve not running and deliver stuck", func() bool {
		_, body = b.get("/ui/pipeline")
		return strings.Contains(body, `data-stage-summary="resolve" data-state="stopped"`) &&
			strings.Contains(body, `data-stage-summary="deliver" data-state="stuck"`)
	})
	tests := []struct {
		stage string
		says  []string
	}{
		{"dedupe", []string{`<span class="state state-idle">idle</span>`, "Idle: 1 process running, nothing waiting."}},
		{"split", []string{`<span class="state state-stopped">not running</span>`, "Not running: stopped cleanly", "(split-1). Start `pushpipe split` if it should run."}},
		{"resolve", []string{`<span class="state state-stopped">not running</span>`, "Not running: last seen", "(resolve-1), then it stopped reporting: killed, crashed or hung; 1 entry waits for it. Check its logs and restart `pushpipe resolve`.",
			"resolve-1 (0, ", "not running, last seen"}},
		{"deliver", []string{`<span class="state state-stuck">stuck</span>`, "Stuck: deliver-1 has held 1 entry of partition 0 (", "Check that process's logs and restart it"}},
	}
	for _, tt := range tests {
		m := html.UnescapeString(regexp.MustCompile(`(?s)<section class="stage" data-stage="` + tt.stage + `".*?</section>`).FindString(body))
		for _, say := range tt.says {
			if !strings.Contains(m, say) {
				t.Errorf("stage %s does not say %q:\n%s", tt.stage, say, m)
			}
		}
		if tt.stage == "dedupe" && strings.Contains(m, "not running") {
			t.Errorf("the idle dedupe is said not to run:\n%s", m)
		}
	}
	if top := html.UnescapeString(regexp.MustCompile(`<p class="error" role="alert" id="stopped">.*?</p>`).FindString(body)); !strings.Contains(top, "Not running: split, resolve.") {
		t.Errorf("the page's top does not list the stopped stages: %q", top)
	}
	// At a glance: one line a stage in the summary table on top, its
	// state and the work waiting for it, as `pushpipe status` says it; its
	// partition tables folded unless it is not running or stuck.
	glance := []struct {
		stage, state, processes string
		waiting                 int    // unread (lag) and read, not acked (pending)
		pending                 string // "": either
		open                    bool
	}{
		{"ingest", "not started yet", "0", 0, "0", false},
		{"split", "not running", "0", 0, "0", true},
		{"resolve", "not running", "0", 1, "", true},
		{"dedupe", "idle", "1", 0, "0", false},
		{"deliver", "stuck", "1", 1, "1", true},
		{"webhook", "optional, not run here", "0", 0, "0", false},
	}
	for _, tt := range glance {
		row := regexp.MustCompile(`(?s)<tr data-stage-summary="` + tt.stage + `".*?</tr>`).FindString(body)
		cells := regexp.MustCompile(`(?s)<t[dh][^>]*>(.*?)</t[dh]>`).FindAllStringSubmatch(row, -1)
		text := func(i int) string {
			return html.UnescapeString(regexp.MustCompile(`<[^>]+>`).ReplaceAllString(cells[i][1], ""))
		}
		if len(cells) != 7 {
			t.Errorf("stage %s: summary row %q, want 7 cells", tt.stage, row)
			continue
		}
		lag, _ := strconv.Atoi(text(3))
		pending, _ := strconv.Atoi(text(4))
		if text(1) != tt.state || text(2) != tt.processes || lag+pending != tt.waiting || tt.pending != "" && text(4) != tt.pending {
			t.Errorf("stage %s: summary says state %q, %s processes, %s unread, %s pending; want %q, %s, %d waiting (pending %q)",
				tt.stage, text(1), text(2), text(3), text(4), tt.state, tt.processes, tt.waiting, tt.pending)
		}
		section := regexp.MustCompile(`(?s)<section class="stage" data-stage="` + tt.stage + `".*?</section>`).FindString(body)
		folds := regexp.MustCompile(`<details class="partitions"[^>]*>`).FindAllString(section, -1)
		if len(folds) == 0 {
			t.Errorf("stage %s: no folded partition table", tt.stage)
		}
		for _, f := range folds {
			if open := strings.HasSuffix(f, " open>"); open != tt.open {
				t.Errorf("stage %s: %s, want open %v", tt.stage, f, tt.open)
			}
		}
	}
	// In the browser too, refreshed in place (the screenshot shows it).
	// What the operator opens or closes stays so across the refreshes,
	// which replace the page's HTML.
	b.signIn()
	b.run(chromedp.Navigate(b.url+"/ui/pipeline"), waitJS(`document.querySelector('section[data-stage="resolve"] .liveness[data-state="stopped"]') !== null`))
	// Clicked at once, in one evaluation: a refresh between finding a
	// summary and clicking it would click one no longer in the page.
	js[bool](b, `window.swaps = 0; document.body.addEventListener("htmx:afterSwap", () => window.swaps++);
		document.querySelector('details[data-fold="dedupe/express"] > summary').click();
		document.querySelector('details[data-fold="resolve/bulk"] > summary').click(); true`)
	b.run(waitJS(`window.swaps >= 2`))
	if got := js[string](b, `["dedupe/express", "dedupe/bulk", "resolve/bulk"].map(k => document.querySelector('details[data-fold="' + k + '"]').open).join()`); got != "true,false,false" {
		t.Errorf("after two refreshes dedupe's express, dedupe's bulk and resolve's tables are open %s, want true,false,false (opened, untouched, closed)", got)
	}
}

// TestCampaignPageSaysWhatItWaitsOn: a campaign's page names the stages it
// goes through that have no running process, where it sat at "running" (or
// "splitting") with nothing to say why it did not move.
// A direct message's page does the same for the stages a message goes
// through, dedupe and deliver.
func TestCampaignPageSaysWhatItWaitsOn(t *testing.T) {
	t.Parallel()
	b := newHTTPBed(t)
	b.create("c1", time.Time{})
	b.sendMessage("dm-1", "Your order shipped", []int64{1})
	tests := []struct {
		name  string
		start []string // stages started before the page is read
		page  string
		want  string // "" for no waiting note
	}{
		{"nothing runs", nil, "/ui/campaigns/c1/live", "Waiting: split not running; resolve not running; dedupe not running; deliver not running."},
		{"nothing runs, message", nil, "/ui/messages/dm-1/live", "Waiting: dedupe not running; deliver not running. The message goes on"},
		{"deliver stopped", []string{"split", "resolve", "dedupe"}, "/ui/campaigns/c1/live", "Waiting: deliver not running."},
		{"deliver stopped, message", nil, "/ui/messages/dm-1/live", "Waiting: deliver not running. The message goes on"},
		{"all run", []string{"deliver"}, "/ui/campaigns/c1/live", ""},
		{"all run, message", nil, "/ui/messages/dm-1/live", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, st := range tt.start {
				def, _ := pipeline.StageNamed(st)
				opts := def.Options()
				opts.Block = 100 * time.Millisecond
				r := pipeline.NewRunner(b.rdb, b.keys, opts, pipeline.HandlerFunc(func(context.Context, *pipeline.Batch) error { return nil }), zerolog.Nop(), nil)
				// The stages run on for the next case: the test's context.
				ctx, cancel := context.WithCancel(b.t.Context())
				done := make(chan struct{})
				go func() { defer close(done); r.Run(ctx) }()
				b.t.Cleanup(func() { cancel(); <-done })
				pipelinetest.Eventually(t, 10*time.Second, st+" ready", r.Ready)
			}
			_, body := b.get(tt.page)
			got := html.UnescapeString(regexp.MustCompile(`<p class="error" role="status" id="waiting">.*?</p>`).FindString(body))
			if tt.want == "" && got != "" || !strings.Contains(got, tt.want) {
				t.Errorf("the live part says %q, want %q", got, tt.want)
			}
		})
	}
}
