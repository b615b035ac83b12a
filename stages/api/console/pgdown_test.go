package console_test

import (
	"fmt"
	"html"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/rs/zerolog"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/campaign"
	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
	"github.com/pushpipe/pushpipe/stages/api"
)

// TestLaunchWithPostgresDown: a campaign's page watched while PostgreSQL
// stops (a failover, a restart) keeps its bar and counts, live from Redis,
// under a notice saying the record is unavailable; the notice goes once
// PostgreSQL is back. The page used to show "Campaign … is unavailable" in
// place of the figures while the sends went on. The list, which pages
// PostgreSQL's table, says it is PostgreSQL that is unreachable.
//
// PostgreSQL is a server of the test's own, stopped for real (the shared
// one serves the other tests), under the bed's Redis and sessions.
func TestLaunchWithPostgresDown(t *testing.T) {
	t.Parallel()
	// Its own server, database and API, made before the bed: cleanups run
	// last first, so they close after the bed has checked its tab and
	// closed it. Closed before, they failed the page's last refreshes (a
	// refused connection, a 503), which the bed counts as the page's
	// errors, on a loaded machine.
	pg := pipelinetest.PostgresT(t)
	_, db := pipelinetest.MigratedT(t, pg)
	srv := httptest.NewUnstartedServer(nil)
	t.Cleanup(srv.Close)
	b := newBed(t)
	srv.Config.Handler = api.New(api.Config{Redis: b.rdb, DB: db, Keys: b.keys, Log: zerolog.Nop(),
		Auth: api.Auth{AdminToken: adminToken, AppKeys: map[string]string{app: appKey}}})
	srv.Start()
	b.url, b.db = srv.URL, db

	if _, _, err := campaign.Create(t.Context(), b.rdb, db, b.keys, campaign.Campaign{ID: "launch-1", App: app, Channels: []string{"ch0"}, Title: "Launch"}); err != nil {
		t.Fatal(err)
	}
	// Halfway, as the stages leave it: 4 people, 2 done, 3 devices sent.
	now := time.Now().UnixMilli()
	for _, r := range b.rdb.DoMulti(t.Context(),
		b.rdb.B().Hset().Key(b.keys.Campaign("launch-1")).FieldValue().FieldValue(pipeline.CampaignSplitDone, "1").
			FieldValue(pipeline.CampaignRangesTotal, "1").Build(),
		b.rdb.B().Hset().Key(b.keys.RangeUsers("launch-1")).FieldValue().FieldValue("ch0/0.0", "4").Build(),
		b.rdb.B().Hset().Key(b.keys.Stats(0, "launch-1")).FieldValue().FieldValue(pipeline.StatIn, "4").
			FieldValue(pipeline.StatTargets, "4").FieldValue(pipeline.StatUsersDone, "2").FieldValue(pipeline.StatSent, "3").
			FieldValue(pipeline.StatFirstMs, strconv.FormatInt(now-2000, 10)).FieldValue(pipeline.StatLastMs, strconv.FormatInt(now, 10)).
			FieldValue(pipeline.StatDoneMs, strconv.FormatInt(now, 10)).Build(),
	) {
		if err := r.Error(); err != nil {
			t.Fatal(err)
		}
	}
	b.signIn()
	b.run(chromedp.Navigate(b.url+"/ui/campaigns/launch-1"), waitJS(`document.getElementById("state") !== null`))
	if err := pg.Stop(); err != nil {
		t.Fatal(err)
	}
	b.within(30*time.Second, waitJS(fmt.Sprintf(`(() => { const n = document.getElementById("record-unavailable");
		return n !== null && n.textContent === %q && document.getElementById("state").textContent === "running" &&
			document.querySelector("#live progress").value === 500 && document.querySelector("#live dd.sent").textContent === "3" &&
			document.querySelector("#live [role=alert]") === null && document.getElementById("cancel") === null })()`, campaign.RecordUnavailable)))

	_, body := b.get("/ui/campaigns")
	if want := "The campaign list is unavailable: PostgreSQL is unreachable."; !strings.Contains(html.UnescapeString(body), want) {
		t.Errorf("the list with PostgreSQL down does not say %q:\n%s", want, body)
	}

	if err := pg.Start(); err != nil {
		t.Fatal(err)
	}
	// The cancel it did not offer while it could not cancel is back.
	b.within(30*time.Second, waitJS(`document.getElementById("record-unavailable") === null && document.getElementById("state").textContent === "running" &&
		document.getElementById("cancel") !== null`))
}
