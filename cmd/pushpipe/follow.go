package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"time"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/campaign"
)

// follow shows a campaign's or direct message's progress every interval
// until it ends, then its summary. On a terminal the bar is one line
// redrawn in place; otherwise a line is written when the count of people
// done changes, at most every ten intervals, so a CI log stays short. It
// returns an error for a campaign that failed or was canceled, and nil when
// ctx ends first (Ctrl-C: the sending goes on). A refresh that fails (Redis
// or PostgreSQL away for a moment) is shown and retried: an outage is when
// the operator most wants to keep watching.
//
// by is the command following, whose words the advice at the end uses.
func follow(ctx context.Context, src campaignSource, id string, w io.Writer, tty bool, interval time.Duration, by follower) error {
	var (
		lastDone    int64 = -1
		lastPrinted time.Time
		lastWaiting string
		waiting     string // the last waiting note read
	)
	for {
		p, err := within(ctx, refreshTimeout, func(ctx context.Context) (progressView, error) { return src.Progress(ctx, id) })
		switch {
		case ctx.Err() != nil:
			if tty {
				io.WriteString(w, "\r\x1b[K")
			}
			fmt.Fprintf(w, "stopped following %s; it goes on: pushpipe status %s\n", id, id)
			return nil
		case errors.Is(err, campaign.ErrNotFound):
			return fmt.Errorf("follow %s: %w", id, err)
		case err != nil:
			line := fmt.Sprintf("%s  progress unavailable (retrying): %v", time.Now().Format(time.TimeOnly), err)
			if tty {
				fmt.Fprintf(w, "\r\x1b[K%s", line)
			} else {
				fmt.Fprintln(w, line)
			}
		case p.State == campaign.StateDone || p.State == campaign.StateFailed || p.State == campaign.StateCanceled:
			if tty {
				io.WriteString(w, "\r\x1b[K")
			}
			printProgressView(w, p, tty)
			return ended(p, by)
		case tty:
			waiting = waitingOn(ctx, src, p, waiting)
			fmt.Fprintf(w, "\r\x1b[K%s%s", progressLine(p, tty), waiting)
		default:
			// A stage down is said when it changes, not only with the
			// people done: a campaign waiting on it does not move.
			// The note's ages ("last seen 15s ago") are left out of the
			// comparison: they changed every second, and so wrote a line a
			// second for as long as a stage was down.
			waiting = waitingOn(ctx, src, p, waiting)
			if p.Done != lastDone && time.Since(lastPrinted) >= 10*interval || withoutAges(waiting) != lastWaiting {
				fmt.Fprintln(w, progressLine(p, tty)+waiting)
				lastDone, lastPrinted, lastWaiting = p.Done, time.Now(), withoutAges(waiting)
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(interval):
		}
	}
}

// exitNothingSent is the exit status of `send --wait` for a campaign or
// message done without a single device sent to while some failed: a
// script that checks only for 0 took a provider refusing everything (bad
// credentials, an app with none) for a send that reached people.
const exitNothingSent = 3

// exitNoDevices is the exit status of `send --wait` for a campaign or
// message done without a single device sent to or tried because people
// had none of the app: `send --user 999999999 --wait` (an unknown user, a
// user of another app, one who never registered) exited 0, and a backend
// scripting it took "nobody could get it" for "sent".
const exitNoDevices = 4

// follower is the command that follows a campaign or message to its end
// (follow): advice names what its user typed. `status ID --wait` of a
// message that reached nobody said "Check --app", a flag status does not
// take, for an app its user may not have chosen (the API's caller did).
type follower int

const (
	bySend   follower = iota // send --wait: its user gave --app
	byStatus                 // status ID --wait: it was sent elsewhere
)

// exitError ends the process with its own status (main), not 1.
type exitError struct {
	code int
	err  error
}

func (e exitError) Error() string { return e.err.Error() }
func (e exitError) Unwrap() error { return e.err }

// exitCode is the process's exit status for err returned by a command:
// 0 for nil, an exitError's own, else 1.
func exitCode(err error) int {
	var ee exitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.code
	}
	return 1
}

// ended is what follow returns for p, ended: nil when done and something
// was sent, or nothing was to be; an error (exit 1) when it failed or was
// canceled; exitNothingSent when done with every device it tried failed;
// exitNoDevices when done with none tried and someone without a device.
// Some devices failing beside sends is no error: stale tokens always are.
//
// Everyone muted is exit 0: they asked not to get it, so nothing is wrong
// and nothing a script could do changes it (sending again is muted again).
// Nobody at all (a campaign whose channels emptied, or created with
// --allow-empty) is 0 too: send refuses an empty audience unless told to
// take it. People without a device are another matter: registering one
// (or fixing --app or --user) is what makes the send reach them, so a
// script must hear it. The fix is said in the words of by.
func ended(p progressView, by follower) error {
	switch {
	case p.State != campaign.StateDone:
		return fmt.Errorf("%s %s was %s", kindOf(p), p.ID, p.State)
	case p.Sent > 0:
		return nil
	case p.Failed+p.InvalidTokens > 0:
		return exitError{exitNothingSent, fmt.Errorf("%s %s is done but sent nothing: %s failed (the reasons above; pushpipe status %s)",
			kindOf(p), p.ID, plural(p.Failed+p.InvalidTokens, "device"), p.ID)}
	case p.NoDevices > 0:
		who := thousands(p.NoDevices) + " people have"
		if p.NoDevices == 1 {
			who = "1 person has"
		}
		check := "Check --app and the ids (pushpipe users show ID lists a user's devices)"
		if by == byStatus {
			check = "Check the app it was sent to (pushpipe messages list shows a message's) and the user ids " +
				"(pushpipe users show ID lists a user's devices and their apps)"
		}
		return exitError{exitNoDevices, fmt.Errorf("%s %s is done but sent nothing: %s no device of its app (an unknown user id, or one of another app). "+
			"%s; a device is registered by the app with "+
			`POST /v1/devices {"app":...,"platform":...,"token":...,"user_id":ID} (README, "The same through the HTTP API"), then send again`,
			kindOf(p), p.ID, who, check)}
	}
	return nil
}

// lastSeen is the age in a waiting note (pipeline.NotRunning).
var lastSeen = regexp.MustCompile(`, last seen [^,;]* ago`)

// withoutAges is a waiting note without its ages: which stages are down.
func withoutAges(waiting string) string { return lastSeen.ReplaceAllString(waiting, "") }

// waitingOn names the stages the campaign or message goes through that have
// no running process (pipeline.Alive), as "  (waiting: split not running,
// last seen 2m ago; pushpipe status says more)", or "". A campaign whose
// splitter was killed showed "splitting 0%" for as long as one watched.
// When the liveness cannot be read, it is last, the note read before: a
// failed read (Redis away for a moment, or the end of a --wait cut the
// read short) is not news that every stage runs again.
func waitingOn(ctx context.Context, src campaignSource, p progressView, last string) string {
	stages := []string{"split", "resolve", "dedupe", "deliver"}
	if p.Kind == "message" {
		stages = stages[2:] // a message skips split and resolve
	}
	ctx, cancel := context.WithTimeout(ctx, refreshTimeout)
	defer cancel()
	down, err := pipeline.NotRunning(ctx, src.rdb, src.keys, stages...)
	if err != nil {
		return last // the progress itself says when Redis is away
	}
	if len(down) == 0 {
		return ""
	}
	return "  (waiting: " + strings.Join(down, ", ") + "; pushpipe status says more)"
}

// progressLine is the one-line progress of p: its state, the bar and the
// people reached (progressView.fraction), then the devices sent. Each
// figure names what it counts: the bar and its percentage are people done
// (all their devices settled, counted when deliver's round ends), sent is
// devices (counted as each request returns), so "0.0%  0 / 3 people
// sent 3" read as a contradiction while a message's round was still out.
func progressLine(p progressView, tty bool) string {
	frac, reached, of := p.fraction()
	who := p.unit() + " done"
	if soFar(p.State, p.Counts, p.Audience) {
		who = "people done so far" // the targets found so far, not the done
	}
	line := fmt.Sprintf("%s %s  %-9s %s %5.1f%%  %s / %s %s  %s sent", kindOf(p), p.ID, p.State,
		progressBar(frac, 30, tty), 100*frac, reached, of, who, plural(p.Sent, "device"))
	if p.State == campaign.StateScheduled && p.SendAt != nil {
		// `send --send-at T --wait` showed "scheduled ... 0 / 0 people"
		// until T, without T. The countdown only where the line is
		// redrawn: a log's line stays as printed.
		switch now := time.Now(); {
		case late(*p.SendAt, now):
			line += "  due " + p.SendAt.Local().Format(time.DateTime) + ", not started"
		case tty:
			line += fmt.Sprintf("  starts %s (in %s)", p.SendAt.Local().Format(time.DateTime), max(p.SendAt.Sub(now), 0).Round(time.Second))
		default:
			line += "  starts " + p.SendAt.Local().Format(time.DateTime)
		}
	}
	return line
}

// kindOf names what p is the progress of.
func kindOf(p progressView) string {
	if p.Kind != "" {
		return p.Kind
	}
	return "campaign"
}
