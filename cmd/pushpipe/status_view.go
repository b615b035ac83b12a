package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/pushpipe/pushpipe/bench"
	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/campaign"
)

// progressView is DESIGN's progress object, as GET /v1/campaigns/{id}
// returns it. targets, muted, duplicates and no devices count people; sent,
// failed and invalid tokens count devices.
type progressView struct {
	ID    string `json:"id"`
	Kind  string `json:"kind,omitempty"` // "message" for a direct message's
	State string `json:"state"`
	// RawTokens is a message to raw tokens: its targets are tokens, not
	// people ("2 / 2 people" for two tokens of nobody known).
	RawTokens bool `json:"raw_tokens,omitempty"`
	campaign.Counts
	Error string `json:"error,omitempty"` // why the campaign failed as a whole
	// Done counts targets that reached a terminal state: with the
	// audience, the bar's figures (campaign.Reached).
	Done     int64  `json:"users_done"`
	Audience int64  `json:"audience,omitempty"` // campaign.Report.Audience
	Note     string `json:"note,omitempty"`     // what status could not read
	// SendAt is when a scheduled campaign starts, or a campaign canceled
	// before its start was to: "scheduled, 0 / 0 people" alone did not say
	// when, nor "canceled, 0 / 0 people" which send was stopped.
	SendAt *time.Time `json:"send_at,omitempty"`
	// PastExpiry is set when, at its rate, the campaign would still be
	// sending when it expires (campaign.Report.PastExpiry): when it
	// expires, and when it would finish.
	PastExpiry *pastExpiry `json:"past_expiry,omitempty"`
	// RatePerSecond is the campaign's own cap, and ExpectedFinishMs when,
	// at its rate so far, it should finish (campaign.Report's): a capped
	// campaign's status showed neither, so its pace read as a slow
	// pipeline, and `campaigns list` alone said when it would end.
	RatePerSecond    int   `json:"rate_per_second,omitempty"`
	ExpectedFinishMs int64 `json:"expected_finish_ms,omitempty"`
	// StalledSinceMs is when a campaign that stopped moving last moved
	// (campaign.Report's): it has no expected finish then.
	StalledSinceMs int64 `json:"stalled_since_ms,omitempty"`
	// QueuedSinceMs is the same of a campaign that waits its turn behind
	// other work while the pipeline moves it (campaign.Report's).
	QueuedSinceMs int64 `json:"queued_since_ms,omitempty"`
	// Reasons is why its failed and invalid devices ended so: reason →
	// devices (withReasons).
	Reasons map[string]int64 `json:"failure_reasons,omitempty"`
	// SplitStopped is a campaign canceled while split cut it
	// (campaign.Report's): its targets are those found by then.
	SplitStopped bool `json:"split_stopped,omitempty"`
}

// notStarted is a campaign split has not taken (scheduled) or never took
// (canceled before its start): it counted nobody, and its "0 / 0 people"
// read as a campaign that reached no one.
func (p progressView) notStarted() bool {
	return p.SendAt != nil && (p.State == campaign.StateScheduled || p.State == campaign.StateCanceled)
}

// pastExpiry is a campaign's expiry and the later finish its rate gives.
type pastExpiry struct {
	ExpiresAt time.Time `json:"expires_at"`
	FinishAt  time.Time `json:"expected_finish"`
}

// fraction is the bar's value, people reached of those expected
// (campaign.Reached), with both as printed: "~" before a count of the
// audience, the targets of a campaign still being cut.
func (p progressView) fraction() (float64, string, string) {
	reached, expected := campaign.Reached(p.State, p.Counts, p.Done, p.Audience)
	if expected <= 0 {
		return 0, thousands(reached), "0"
	}
	of := thousands(expected)
	if expected != p.Targets {
		of = "~" + of
	}
	return min(float64(reached)/float64(expected), 1), thousands(reached), of
}

// unit is what the targets count, and " so far" after it while split is
// still cutting the campaign and the figure is the targets found yet
// (soFar).
func (p progressView) unit() string {
	if p.RawTokens {
		return "tokens"
	}
	if soFar(p.State, p.Counts, p.Audience) {
		return "people so far"
	}
	return "people"
}

// soFar is whether a campaign's figure of people expected is the targets
// found so far, growing as split cuts range after range: the bar's
// denominator moved under a reader who took it for the audience ("200 /
// 300", then "250 / 600"). Once split counted the audience the figure is
// that ("~", fraction), and once split is done the targets are all known.
func soFar(state string, c campaign.Counts, audience int64) bool {
	_, of := campaign.Reached(state, c, 0, audience)
	return state == campaign.StateSplitting && of == c.Targets
}

// printProgressView draws the bar (people done of targets) and the counters.
func printProgressView(w io.Writer, p progressView, tty bool) {
	frac, reached, of := p.fraction()
	fmt.Fprintf(w, "%s %s  %s\n", kindOf(p), p.ID, p.State)
	if p.Error != "" {
		fmt.Fprintf(w, "  FAILED: %s\n", p.Error)
	}
	if p.Note != "" {
		fmt.Fprintf(w, "  (%s)\n", p.Note)
	}
	if p.SendAt != nil {
		if now := time.Now(); p.State == campaign.StateCanceled {
			fmt.Fprintf(w, "  canceled before its start, %s\n", p.SendAt.Local().Format(time.DateTime))
		} else if late(*p.SendAt, now) {
			fmt.Fprintf(w, "  was due %s (%s ago) and has not started: split releases scheduled campaigns; check that it runs\n",
				p.SendAt.Local().Format(time.DateTime), now.Sub(*p.SendAt).Round(time.Second))
		} else {
			fmt.Fprintf(w, "  starts %s (in %s)\n", p.SendAt.Local().Format(time.DateTime), max(p.SendAt.Sub(now), 0).Round(time.Second))
		}
	}
	if x := p.PastExpiry; x != nil {
		fmt.Fprintf(w, "  EXPIRES %s, before it is done at this rate (%s): devices not sent by then fail as expired. "+
			"Cancel it and send it again with a higher --rate-per-second or a longer --ttl to reach them all\n",
			x.ExpiresAt.Local().Format(time.DateTime), x.FinishAt.Local().Format(time.DateTime))
	}
	switch {
	case p.notStarted() && p.State == campaign.StateScheduled:
		fmt.Fprintf(w, "  nobody counted yet: split counts its channels' subscribers once it takes it\n")
	case p.notStarted():
		fmt.Fprintf(w, "  never started: nobody was counted or sent to\n")
	default:
		fmt.Fprintf(w, "  %s %5.1f%%  %s / %s %s\n", progressBar(frac, 40, tty), 100*frac, reached, of, p.unit())
	}
	if p.SplitStopped {
		fmt.Fprintf(w, "  canceled while split was cutting it: %s counted until then, not all of its channels' subscribers\n", plural(p.Targets, "target"))
	}
	if p.State == campaign.StateSplitting {
		// Said where the figures are read: the README said it of
		// capped campaigns alone, and a campaign of millions is cut for
		// minutes, any cap or none.
		if soFar(p.State, p.Counts, p.Audience) {
			fmt.Fprintf(w, "  splitting: %s found so far; the count grows until split has cut every range\n", plural(p.Targets, "target"))
		} else {
			fmt.Fprintf(w, "  splitting: ~%s is the audience counted at the start; %s found so far\n", thousands(p.Audience), plural(p.Targets, "target"))
		}
	}
	none := "" // people done with nothing sent: why sent falls short of them
	if p.NoDevices > 0 {
		none = "  no devices " + thousands(p.NoDevices)
	}
	// A message's list is made each user once before dedupe (Normalize), so
	// its "duplicates suppressed 0" read as if a user listed twice had been
	// sent twice; GET /v1/messages/{id} has no such count either.
	dups := ""
	if p.Kind != "message" {
		dups = "  duplicates suppressed " + thousands(p.DuplicatesSuppressed)
	}
	// Mutes are a user's; a message to raw tokens has no user to mute it.
	muted := ""
	if !p.RawTokens {
		muted = "  muted " + thousands(p.Muted)
	}
	if !p.notStarted() {
		fmt.Fprintf(w, "  sent %s  failed %s  invalid tokens %s%s%s%s\n",
			thousands(p.Sent), thousands(p.Failed), thousands(p.InvalidTokens), muted, dups, none)
	}
	io.WriteString(w, reasonsLine(p.Reasons))
	if p.FirstSendMs > 0 {
		first, last := time.UnixMilli(p.FirstSendMs), time.UnixMilli(p.LastSendMs)
		rate := ""
		// Under a second, a rate is the noise of a few sends: a chat
		// message's 3 devices sent within 2ms read "1,500 sends/s".
		if d := last.Sub(first); d >= time.Second {
			rate = fmt.Sprintf("  %s sends/s", thousands(int64(float64(p.Sent)/d.Seconds())))
		}
		if p.RatePerSecond > 0 {
			rate += fmt.Sprintf(" (cap %s)", thousands(int64(p.RatePerSecond)))
		}
		fmt.Fprintf(w, "  first send %s  last send %s (%s)%s\n", first.Format("15:04:05.000"),
			last.Format("15:04:05.000"), last.Sub(first).Round(time.Millisecond), rate)
	} else if p.RatePerSecond > 0 {
		fmt.Fprintf(w, "  capped at %s sends/s\n", thousands(int64(p.RatePerSecond)))
	}
	if p.StalledSinceMs > 0 && !campaign.Final(p.State) {
		at := time.UnixMilli(p.StalledSinceMs)
		fmt.Fprintf(w, "  stalled: no progress since %s (%s ago), no finish to expect\n", at.Local().Format(time.DateTime), pipeline.Ago(time.Since(at)))
	}
	if p.QueuedSinceMs > 0 && !campaign.Final(p.State) {
		at := time.UnixMilli(p.QueuedSinceMs)
		fmt.Fprintf(w, "  queued: no progress since %s (%s ago) while the pipeline works on other campaigns ahead of it (sending them, or cutting them first); nothing is down, and no finish to expect until its turn\n",
			at.Local().Format(time.DateTime), pipeline.Ago(time.Since(at)))
	}
	if p.ExpectedFinishMs > 0 && p.PastExpiry == nil && !campaign.Final(p.State) {
		at := time.UnixMilli(p.ExpectedFinishMs)
		fmt.Fprintf(w, "  expected to finish %s (in ~%s)\n", at.Local().Format(time.DateTime), max(time.Until(at), 0).Round(time.Second))
	}
}

// bar is a fixed-width progress bar: block characters on a terminal,
// ASCII otherwise so logs and pipes stay readable.
func progressBar(frac float64, width int, tty bool) string {
	full, empty := "#", "."
	if tty {
		full, empty = "█", "░"
	}
	n := int(frac*float64(width) + 0.5)
	return "[" + strings.Repeat(full, n) + strings.Repeat(empty, width-n) + "]"
}

// thousands formats with thousands separators, as the benchmark's report.
func thousands(n int64) string { return bench.Thousands(n) }

// plural is n things, n in thousands: "1 line", "2,000 lines".
func plural(n int64, thing string) string {
	if n == 1 {
		return "1 " + thing
	}
	return thousands(n) + " " + thing + "s"
}
