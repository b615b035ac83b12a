package deliver

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/stages/deliver/push"
)

// marksTTL keeps a campaign's sent marks, from its last write to them, for
// as long as its notifications may still be delivered, and at least an
// hour, so a late replay or claim still finds them.
func marksTTL(c *campaign) time.Duration {
	return max(c.ttl, 0) + time.Hour
}

// markUnsent marks devs of campaign c failed with reason, unsent: their
// notification expired, or their campaign failed (StatUnsent).
func (h *Handler) markUnsent(ctx context.Context, p int, c *campaign, reason string, devs ...device) error {
	if len(devs) == 0 {
		return nil
	}
	marks := make([]markReq, len(devs))
	for i, d := range devs {
		marks[i] = markReq{p: p, c: c, d: d, outcome: push.Failed, reason: reason, unsent: true}
	}
	return h.execMarks(ctx, p, c, marks)
}

// execMarks runs markScript for devices of one campaign, grouped by counter
// and reason, with their result events when results are on.
func (h *Handler) execMarks(ctx context.Context, p int, c *campaign, marks []markReq) error {
	return h.execMarksIn(ctx, p, c, marks, nil)
}

// execMarksIn is execMarks building the events' records in a buffer of bufs
// (nil: a new one), which it gives back once the script has answered.
func (h *Handler) execMarksIn(ctx context.Context, p int, c *campaign, marks []markReq, bufs *recordBufs) error {
	keys := newScriptKeys(h.keys.Stats(p, c.ID), h.settledKey(p, c.ID), h.keys.Stream(pipeline.StreamResults, p), h.keys.Reasons(p, c.ID))
	sent := h.sentMarks(p, c)
	now := time.Now().UnixMilli()
	args := []string{strconv.FormatInt(int64(marksTTL(c)/time.Second), 10), strconv.FormatInt(now, 10), "0"}
	var records []byte
	if !h.cfg.NoResults {
		records = resultRecords(marks, bufs.get())
		args = append(args, c.resultHeader(now)...)
		args = append(args, pipeline.FieldEvents, recordsArg(records))
		args[2] = strconv.Itoa(len(args) - 3)
	}
	groups, forced := groupMarks(marks)
	for _, g := range groups {
		counter := counterOf(g.outcome)
		if g.unsent {
			counter = pipeline.StatUnsent // and failed: markScript
		}
		args = append(args, counter, g.reason, strconv.Itoa(len(g.ids)), "")
		at := len(args) - 1
		var n int
		args, n = appendMasks(args, g.ids, sent, keys.index)
		args[at] = strconv.Itoa(n)
	}
	// After the counted groups, whose answers are news by index.
	for _, g := range forced {
		args = append(args, "", "", strconv.Itoa(len(g.ids)), "")
		at := len(args) - 1
		var n int
		args, n = appendMasks(args, g.ids, forcedSentMarks(g.key), keys.index)
		args[at] = strconv.Itoa(n)
	}
	news, err := markScript.Exec(ctx, h.rdb, keys.keys, args).AsIntSlice()
	if err == nil {
		// Answered: the client has written the records. After an error it
		// may not have (a canceled call can still be queued), and the
		// buffer is left to the garbage collector.
		bufs.put(records)
	}
	if err != nil {
		if mayPass(err) {
			h.outages.seen(p) // marks written before may be lost: marksgone.go
		}
		return fmt.Errorf("mark %d devices of %s: %w", len(marks), c.ID, err)
	}
	if !h.cfg.NoResults {
		// Counted per call and group, as written: a repeated mark wrote
		// no event and counts none.
		for i, g := range groups {
			if i < len(news) {
				h.metrics.eventsWritten(g.outcome, news[i])
			}
		}
	}
	return nil
}

// markGroup is the devices of a mark call with one outcome and reason.
type markGroup struct {
	outcome push.Outcome
	reason  string  // as counted (countedReason), "" for sent
	unsent  bool    // failed with no provider request (markReq.unsent)
	ids     []int64 // ascending
}

// countedReason is how a device's failure is counted in its campaign's
// reasons (Keys.Reasons, the console's failures by reason): with the
// provider that gave it. APNs and FCM name the same failure differently
// ("Unregistered", "UNREGISTERED"), and an operator reads which provider
// refuses what, or lacks credentials. A campaign's own failure names its
// provider already (failCampaign). The result events keep the provider's
// reason as it came.
func countedReason(p push.Platform, reason string) string {
	if reason == "" {
		reason = "unknown"
	}
	if prov, _, ok := strings.Cut(reason, " "); ok && (prov == "apns" || prov == "fcm") {
		return reason
	}
	return providerOf(p) + " " + reason
}

// groupMarks groups marks by outcome and reason, in that order, each
// group's device ids sorted, and the devices that forced entries' rounds
// marked by entry (forcedsent.go), sorted too. A flush is nearly always one group (sent), and
// sorting its ids costs a fifth of sorting the marks themselves (structs of
// ~100 bytes, three comparisons each: two thirds of execMarks's CPU when it
// did, BenchmarkDeliverNull's profile).
func groupMarks(marks []markReq) ([]markGroup, []forcedGroup) {
	var (
		groups []markGroup
		forced []forcedGroup
	)
	last := -1
	for _, m := range marks {
		if m.forcedSent != "" {
			forced = addForced(forced, m.forcedSent, m.d.id)
		}
		reason := ""
		if m.outcome != push.Sent {
			reason = countedReason(m.d.platform, m.reason)
		}
		if last < 0 || groups[last].outcome != m.outcome || groups[last].reason != reason || groups[last].unsent != m.unsent {
			last = slices.IndexFunc(groups, func(g markGroup) bool {
				return g.outcome == m.outcome && g.reason == reason && g.unsent == m.unsent
			})
			if last < 0 {
				last = len(groups)
				groups = append(groups, markGroup{outcome: m.outcome, reason: reason, unsent: m.unsent})
			}
		}
		groups[last].ids = append(groups[last].ids, m.d.id)
	}
	for _, g := range groups {
		slices.Sort(g.ids)
	}
	slices.SortFunc(groups, func(a, b markGroup) int {
		return cmp.Or(cmp.Compare(a.outcome, b.outcome), cmp.Compare(a.reason, b.reason), compareBool(a.unsent, b.unsent))
	})
	for _, g := range forced {
		slices.Sort(g.ids)
	}
	return groups, forced
}

func compareBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case !a:
		return -1
	}
	return 1
}
