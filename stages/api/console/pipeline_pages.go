package console

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/campaign"
	"github.com/pushpipe/pushpipe/pipeline/devices"
	"github.com/pushpipe/pushpipe/stages/webhook"
)

// dlqCountCap bounds how many dead letters the pipeline page reads to count
// them per stage: the page refreshes every second, and a DLQ of millions
// is counted in total only.
const dlqCountCap = 1000

// stageRow is a stage and the lanes it reads, express first
// (pipeline.StageDef.Inputs).
type stageRow struct {
	Stage string
	Lanes []laneRow
	Dead  int64 // dead letters from the stage's streams (of the first dlqCountCap)
	// Optional is a stage that runs only where configured (the webhook):
	// without a consumer group it is not "not started yet", and its
	// stream's entries wait for nobody.
	Optional bool
	// Groups are whether the stage's groups run, one each over its lanes,
	// from the processes' liveness beats (pipeline/alive.go).
	Groups []groupState
	// Gone is what the beats say of consumers whose process is not
	// running (consumer → "not running, last seen 2m ago"), for the
	// partition table, where their idle time alone looked like a quiet
	// stage's.
	Gone map[string]string
}

// stageSummary is a stage's line in the page's summary table, the
// console's `pushpipe status`: whether it runs and the work waiting for it,
// over its lanes and groups. The partition tables below it are folded
// unless the stage is unwell (Unwell): at the default 16 partitions they
// were ten screens of zeros above the one line that mattered.
type stageSummary struct {
	State      string // the worst of its groups' (worse), "" with no group at all
	Running    int    // processes beating, over its groups
	Lag        int64
	LagUnknown int
	Pending    int64
	Delayed    int64
}

// worse orders group states from the least to the most to worry about: a
// stage reads as its worst group.
var worse = map[string]int{pipeline.StateIdle: 1, pipeline.StateRunning: 2, pipeline.StateStuck: 3, pipeline.StateStopped: 4}

// Summary sums the stage's lanes and groups.
func (s stageRow) Summary() stageSummary {
	var sum stageSummary
	for _, l := range s.Lanes {
		sum.Delayed += l.Stream.Delayed
		for _, g := range l.Stream.Groups {
			sum.Lag += g.Lag
			sum.LagUnknown += g.LagUnknown
			sum.Pending += g.Pending
		}
	}
	for _, g := range s.Groups {
		sum.Running += g.Running
		if worse[g.State] > worse[sum.State] {
			sum.State = g.State
		}
	}
	return sum
}

// Unwell is a stage with a group not running or stuck: its partition
// tables open by themselves, since which partition holds what is then the
// question.
func (s stageRow) Unwell() bool {
	st := s.Summary().State
	return st == pipeline.StateStopped || st == pipeline.StateStuck
}

// groupState is whether a consumer group's processes run, in words.
type groupState struct {
	Name    string
	State   string // pipeline.StateRunning, StateIdle, StateStuck or StateStopped
	Say     string // pipeline.GroupTotal.Plain
	Running int    // processes beating
}

// laneRow is one stream a stage reads: "express" or "bulk" for a stage with
// an express lane, "" for a stage with one stream.
type laneRow struct {
	Lane   string
	Stream pipeline.StreamStatus
}

type pipelineData struct {
	Stages     []stageRow
	Stopped    []string // the groups with no running process, for the line at the top
	DLQ        int64
	DeadCapped bool // more than dlqCountCap dead letters: per-stage counts are of the oldest
	// Receivers are the webhook groups' receivers (receivers.go).
	Receivers []receiverRow
}

func (c *Console) pipelineData(ctx context.Context) (pipelineData, error) {
	var d pipelineData
	streams, err := pipeline.Status(ctx, c.cfg.Redis, c.cfg.Keys, pipeline.StageStreams()...)
	if err != nil {
		return d, err
	}
	q := pipeline.NewDLQ(c.cfg.Redis, c.cfg.Keys)
	if d.DLQ, err = q.Len(ctx); err != nil {
		return d, err
	}
	dead, err := q.List(ctx, pipeline.DLQFilter{Limit: dlqCountCap})
	if err != nil {
		return d, err
	}
	d.DeadCapped = d.DLQ > int64(len(dead))
	recv, err := webhook.ReadReceivers(ctx, c.cfg.Redis, c.cfg.Keys, streams)
	if err != nil {
		return d, err
	}
	d.Receivers = receiverRows(streams, recv, dead, time.Now())
	perStream := map[string]int64{}
	for _, l := range dead {
		perStream[l.Name]++
	}
	next := 0 // Status answers in StageStreams' order: stage by stage, express first
	for _, st := range pipeline.Stages {
		row := stageRow{Stage: st.Name, Optional: st.Optional}
		for i, in := range st.Inputs() {
			lane := ""
			if st.Express {
				lane = [...]string{"express", "bulk"}[i]
			}
			row.Lanes = append(row.Lanes, laneRow{Lane: lane, Stream: streams[next]})
			row.Dead += perStream[in]
			next++
		}
		row.Groups, row.Gone = liveness(row.Lanes)
		for _, g := range row.Groups {
			if g.State == pipeline.StateStopped {
				d.Stopped = append(d.Stopped, g.Name)
			}
		}
		d.Stages = append(d.Stages, row)
	}
	return d, nil
}

// liveness sums each group over a stage's lanes (they share its
// processes; the work waiting is the lanes' together) and says it.
func liveness(lanes []laneRow) ([]groupState, map[string]string) {
	var merged []pipeline.GroupTotal
	gone := map[string]string{}
	for _, l := range lanes {
		for _, g := range l.Stream.Groups {
			for _, p := range g.Processes {
				if !p.Running {
					gone[p.Consumer] = "not running, last seen " + pipeline.Ago(p.Ago) + " ago"
				}
			}
			i := slices.IndexFunc(merged, func(m pipeline.GroupTotal) bool { return m.Name == g.Name })
			if i < 0 {
				merged = append(merged, g)
				continue
			}
			m := &merged[i]
			lag, pending, unknown := m.Lag+g.Lag, m.Pending+g.Pending, m.LagUnknown+g.LagUnknown
			switch {
			case g.State == pipeline.StateStuck && m.State != pipeline.StateStuck:
				// One lane stuck is the stage stuck, said as that lane
				// says it: its processes hold the batch that hangs, or
				// its entries wait unclaimed (a lane's own, stuck.go).
				*m = g
			case g.State == pipeline.StateRunning && m.State != pipeline.StateStuck:
				m.State = g.State // one lane with work: the stage is working
			}
			m.Lag, m.Pending, m.LagUnknown = lag, pending, unknown
		}
	}
	out := make([]groupState, len(merged))
	for i, g := range merged {
		say := g.Plain(pipeline.StartCommand(g.Name))
		out[i] = groupState{Name: g.Name, State: g.State, Say: strings.ToUpper(say[:1]) + say[1:] + ".", Running: g.Running}
	}
	return out, gone
}

func (c *Console) pipelinePage(w http.ResponseWriter, r *http.Request, s session) {
	ctx, cancel := context.WithTimeout(r.Context(), requestTimeout)
	defer cancel()
	d, err := c.pipelineData(ctx)
	p := page{Title: "Pipeline", Nav: "pipeline", Session: s, Data: d, LiveError: true}
	if err != nil {
		p.Error = c.unavailable(r, "Pipeline status is", err, true)
	}
	c.render(w, r, http.StatusOK, "pipeline", p)
}

func (c *Console) pipelineLive(w http.ResponseWriter, r *http.Request, s session) {
	ctx, cancel := context.WithTimeout(r.Context(), requestTimeout)
	defer cancel()
	d, err := c.pipelineData(ctx)
	p := page{Session: s, Data: d}
	if err != nil {
		p.Error = c.unavailable(r, "Pipeline status is", err, true)
	}
	c.fragment(w, "pipeline", "live", p)
}

// deadLetterPage is how many dead letters the list shows.
const deadLetterPage = 100

type deadLettersData struct {
	Letters []pipeline.DeadLetter
	Total   int64
	Stream  string
	Streams []string
	// Group filters by the consumer group that gave up (a webhook
	// receiver's: the pipeline page links each receiver's letters here).
	// Filtered by stream alone, one receiver's row led to every
	// receiver's letters, and Retry all sent them all back.
	Group     string
	Receivers []string // the webhook groups to pick from (and Group)
	// Campaign filters by the campaign or direct message the entry was
	// for: a campaign's page (and a message's) links its own letters here.
	// Without it, an operator looking at a campaign whose receiver failed
	// found its letters among every other campaign's, by reading ids.
	Campaign string
	Limit    int // the most the list shows (deadLetterPage)
	// Records are the campaigns and messages the letters are of, by id,
	// to name and link each as the rest of the console does; none while
	// PostgreSQL is down (the letters are Redis's, and still listed).
	Records map[string]campaign.Campaign
	// NamesUnavailable says why the letters are named by id (Records
	// could not be read), so an operator reads ids as an outage, not as
	// campaigns without titles.
	NamesUnavailable string
}

// subject is a dead letter's campaign or message as the list names it.
type subject struct {
	Name, Href string
	Message    bool
}

// Subject is the campaign or direct message letter d is of: named by its
// title, else its body, else its id, and linked to its own page. The
// list named it by its id, and linked a message's to /ui/campaigns/, a
// page that has no direct messages.
func (d deadLettersData) Subject(l pipeline.DeadLetter) subject {
	id := l.Campaign()
	if id == "" {
		return subject{}
	}
	rec, ok := d.Records[id]
	// Without its record (purged, or PostgreSQL down), a results entry
	// still says which kind it is of.
	msg := rec.Kind == campaign.KindMessage || !ok && l.Fields[pipeline.FieldMessage] != ""
	s := subject{Name: devices.Echo(cmp.Or(rec.Title, rec.Body, id)), Href: "/ui/campaigns/" + url.PathEscape(id), Message: msg}
	if msg {
		s.Href = "/ui/messages/" + url.PathEscape(id)
	}
	return s
}

// From says what the filter keeps, as the page's sentences put it: "results",
// "group crm", "results, group crm, campaign launch-1"; "" for every letter.
func (d deadLettersData) From() string {
	from := d.Stream
	if d.Group != "" {
		from = strings.TrimPrefix(from+", group "+d.Group, ", ")
	}
	if d.Campaign != "" {
		from = strings.TrimPrefix(from+", campaign "+d.Campaign, ", ")
	}
	return from
}

// deadLettersOf is the dead letters page of campaign (or message) id: the
// link from its page.
func deadLettersOf(id string) string { return "/ui/deadletters?campaign=" + url.QueryEscape(id) }

func (c *Console) deadLettersPage(w http.ResponseWriter, r *http.Request, s session) {
	ctx, cancel := context.WithTimeout(r.Context(), requestTimeout)
	defer cancel()
	q := pipeline.NewDLQ(c.cfg.Redis, c.cfg.Keys)
	d := deadLettersData{Stream: r.URL.Query().Get("stream"), Group: r.URL.Query().Get("group"),
		Campaign: strings.TrimSpace(r.URL.Query().Get("campaign")), Limit: deadLetterPage}
	d.Streams = pipeline.StageStreams()
	p := page{Title: "Dead letters", Nav: "deadletters", Session: s, Notice: notice(r)}
	var err error
	if d.Total, err = q.Len(ctx); err == nil {
		d.Letters, err = q.List(ctx, pipeline.DLQFilter{Stream: d.Stream, Group: d.Group, Campaign: d.Campaign, Limit: deadLetterPage})
	}
	if err == nil {
		_, d.Receivers, err = q.Groups(ctx)
		if d.Group != "" && !slices.Contains(d.Receivers, d.Group) {
			// A stage's, or a retired receiver's whose letters stay.
			d.Receivers = append(d.Receivers, d.Group)
		}
	}
	if err != nil {
		p.Error = c.unavailable(r, "The dead letters are", err, false)
	} else if ids := letterSubjects(d.Letters); len(ids) > 0 {
		// Without the names the list still serves: ids, as before. Waited
		// for briefly: the letters are Redis's, and a PostgreSQL that hangs
		// (a failover) held this page for the whole requestTimeout, at the
		// time on-call needs it most.
		nctx, ncancel := context.WithTimeout(ctx, namesPatience)
		d.Records, err = c.cfg.Campaigns.Records(nctx, ids)
		ncancel()
		if err != nil {
			say := "PostgreSQL failed"
			if errors.Is(err, context.DeadlineExceeded) {
				say = fmt.Sprintf("PostgreSQL did not answer within %s", namesPatience)
			} else if u, ok := campaign.Unreachable(err); ok {
				say = u
			}
			d.NamesUnavailable = "The campaigns' and messages' names are unavailable (" + say + "): the letters are named by their ids. " +
				c.failed(r, err, "console: dead letters' names unavailable")
		}
	}
	p.Data = d
	c.render(w, r, http.StatusOK, "deadletters", p)
}

// namesPatience bounds the dead letters list's read of their campaigns'
// names: a read by primary key answers in milliseconds.
const namesPatience = time.Second

// letterSubjects are the campaign and message ids of letters, once each.
func letterSubjects(letters []pipeline.DeadLetter) []string {
	var ids []string
	for _, l := range letters {
		if id := l.Campaign(); id != "" && !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	return ids
}

// letter loads the dead letter of the path, or renders why not.
func (c *Console) letter(w http.ResponseWriter, r *http.Request, s session) (pipeline.DeadLetter, bool) {
	ctx, cancel := context.WithTimeout(r.Context(), requestTimeout)
	defer cancel()
	id := r.PathValue("id")
	d, err := pipeline.NewDLQ(c.cfg.Redis, c.cfg.Keys).Show(ctx, id)
	if err != nil {
		say := devices.Echo(id) // as typed, cut
		// A letter retried or dropped is no outage: it was logged as
		// "Dead letter … is unavailable", a warning for each click on an
		// old link.
		status, msg := http.StatusNotFound, "There is no dead letter "+say+" (retried or dropped already?)."
		if !errors.Is(err, pipeline.ErrNoDeadLetter) {
			status, msg = http.StatusServiceUnavailable, c.unavailable(r, "Dead letter "+say+" is", err, false)
		}
		c.fail(w, r, status, page{Title: "Dead letter", Nav: "deadletters", Session: s, Error: msg})
		return d, false
	}
	return d, true
}

func (c *Console) deadLetterPage(w http.ResponseWriter, r *http.Request, s session) {
	if d, ok := c.letter(w, r, s); ok {
		c.render(w, r, http.StatusOK, "deadletter", page{Title: "Dead letter " + d.ID, Nav: "deadletters", Session: s, Data: d})
	}
}

func (c *Console) dropPage(w http.ResponseWriter, r *http.Request, s session) {
	if d, ok := c.letter(w, r, s); ok {
		c.render(w, r, http.StatusOK, "drop", page{Title: "Drop " + d.ID, Nav: "deadletters", Session: s, Data: d})
	}
}

func (c *Console) retryDeadLetter(w http.ResponseWriter, r *http.Request, s session) {
	c.dlqAction(w, r, s, "retried", (*pipeline.DLQ).Retry)
}

func (c *Console) dropDeadLetter(w http.ResponseWriter, r *http.Request, s session) {
	c.dlqAction(w, r, s, "dropped", (*pipeline.DLQ).Drop)
}

// dlqAction retries or drops one dead letter through pipeline.DLQ, the code
// behind `pushpipe dlq retry|drop`.
func (c *Console) dlqAction(w http.ResponseWriter, r *http.Request, s session, done string,
	act func(*pipeline.DLQ, context.Context, pipeline.DLQFilter) (pipeline.DLQResult, error)) {
	d, ok := c.letter(w, r, s)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), requestTimeout)
	defer cancel()
	res, err := act(pipeline.NewDLQ(c.cfg.Redis, c.cfg.Keys), ctx, pipeline.DLQFilter{IDs: []string{d.ID}})
	if err == nil {
		// Redis refused this letter alone (its re-injection): a server
		// failed as much as above, and its words are no advice either.
		err = res.Errs[d.ID]
	}
	if err != nil {
		// Redis failed: its words go to the log, not the page.
		c.render(w, r, http.StatusServiceUnavailable, "deadletter", page{Title: "Dead letter " + d.ID, Nav: "deadletters", Session: s, Data: d,
			Error: "Not " + done + ": " + culprit(err) + ". Try again in a moment. " + c.failed(r, err, "console: dead letter "+d.ID+" not "+done)})
		return
	}
	if why := res.Failed[d.ID]; why != "" {
		// The DLQ's own reason (retired group, malformed entry): what to do.
		c.render(w, r, http.StatusConflict, "deadletter", page{Title: "Dead letter " + d.ID, Nav: "deadletters", Session: s, Data: d,
			Error: "Not " + done + ": " + why})
		return
	}
	http.Redirect(w, r, "/ui/deadletters?done="+done, http.StatusSeeOther)
}
