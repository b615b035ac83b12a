package bench

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/pushpipe/pushpipe/pipeline/campaign"
)

// Watch samples a running campaign every 250 ms until it is done, draws the
// progress, and (with Chaos) kills and restarts stage processes meanwhile.
type Watch struct {
	Run      *Running
	Campaign string
	Expected Truth
	Progress io.Writer // nil: no progress display
	// Lines, if set, gets a plain progress line every LinesEvery (logs,
	// pipes: no redrawing).
	Lines      io.Writer
	LinesEvery time.Duration
	Timeout    time.Duration
	Stall      time.Duration
	Chaos      *Chaos

	Samples  []Sample
	Complete bool
	lastLine time.Time
}

// SampleEvery is the sampling period.
const SampleEvery = 250 * time.Millisecond

// Wait returns when the campaign is done (every target terminal and the
// pipeline quiet), when it stalls or times out (Complete stays false), or
// when ctx ends.
func (w *Watch) Wait(ctx context.Context, t0 time.Time) error {
	s := &sampler{rdb: w.Run.rdb, keys: w.Run.Keys, campaign: w.Campaign, pids: w.Run.PIDs,
		trees: map[string]bool{"postgres": true}}
	chaosCtx, stopChaos := context.WithCancel(ctx)
	var wg sync.WaitGroup
	if w.Chaos != nil {
		wg.Go(func() { w.Chaos.run(chaosCtx, w.Run) })
	}
	defer func() { stopChaos(); wg.Wait() }()

	tick := time.NewTicker(SampleEvery)
	defer tick.Stop()
	deadline := t0.Add(w.Timeout)
	lastMove, lastKey := time.Now(), ""
	quietFor := 0
	for {
		smp, err := s.sample(ctx)
		if err == nil {
			w.Samples = append(w.Samples, smp)
			w.draw(smp, t0, false)
			if key := progressKey(smp); key != lastKey {
				lastKey, lastMove = key, time.Now()
			}
			if smp.Quiet() && w.done(ctx) {
				quietFor++
			} else {
				quietFor = 0
			}
			if quietFor >= 2 {
				w.Complete = true
				w.draw(smp, t0, true)
				return nil
			}
		}
		if time.Now().After(deadline) || time.Since(lastMove) > w.Stall {
			if len(w.Samples) > 0 {
				w.draw(w.Samples[len(w.Samples)-1], t0, true)
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// done asks the campaign package whether every target reached a terminal
// state.
func (w *Watch) done(ctx context.Context) bool {
	rep, err := campaign.Progress(ctx, w.Run.rdb, w.Run.db, w.Run.Keys, w.Campaign)
	return err == nil && rep.State == campaign.StateDone
}

// progressKey changes whenever any stage made progress.
func progressKey(s Sample) string {
	var b strings.Builder
	for _, st := range StageStreams {
		ss := s.Streams[st.Stage]
		fmt.Fprintf(&b, "%d/%d/%d ", ss.Length, ss.Lag, ss.Pending)
	}
	c := s.Campaign
	fmt.Fprintf(&b, "%d %d %d %d", c.Targets, c.Sent, c.UsersDone, c.Retries)
	return b.String()
}

// Kills lists the chaos kills so far.
func (w *Watch) Kills() []Kill {
	if w.Chaos == nil {
		return nil
	}
	return w.Chaos.Kills()
}

// draw redraws one status line in place (a terminal is assumed), or
// writes a plain line now and then.
func (w *Watch) draw(s Sample, t0 time.Time, final bool) {
	out, prefix, suffix := w.Progress, "\r\x1b[2K", ""
	if w.Progress == nil {
		if w.Lines == nil || (!final && s.At.Sub(w.lastLine) < w.LinesEvery) {
			return
		}
		w.lastLine = s.At
		out, prefix, suffix = w.Lines, "", "\n"
	}
	c := s.Campaign
	frac := 0.0
	if w.Expected.Devices > 0 {
		frac = min(float64(c.Sent+c.Failed+c.Invalid)/float64(w.Expected.Devices), 1)
	}
	const width = 30
	n := int(frac*width + 0.5)
	full, empty := "█", "░"
	if w.Progress == nil {
		full, empty = "#", "."
	}
	bar := "[" + strings.Repeat(full, n) + strings.Repeat(empty, width-n) + "]"
	var lags []string
	for _, st := range StageStreams[:campaignStages] {
		ss := s.Streams[st.Stage]
		lags = append(lags, fmt.Sprintf("%s %d", st.Stage, ss.Lag+ss.Pending))
	}
	line := fmt.Sprintf("%s%s %5.1f%%  %s/%s devices  %5.1fs  backlog: %s",
		prefix, bar, 100*frac, human(c.Sent), human(w.Expected.Devices), s.At.Sub(t0).Seconds(), strings.Join(lags, ", "))
	if w.Chaos != nil {
		line += fmt.Sprintf("  kills %d", len(w.Chaos.Kills()))
	}
	if final && suffix == "" {
		suffix = "\n"
	}
	io.WriteString(out, line+suffix)
}

// human formats a count briefly: 950, 12.3k, 4.56M.
func human(n int64) string {
	switch {
	case n >= 1_000_000:
		return fmt.Sprintf("%.2fM", float64(n)/1e6)
	case n >= 10_000:
		return fmt.Sprintf("%.1fk", float64(n)/1e3)
	default:
		return fmt.Sprint(n)
	}
}

// Chaos SIGKILLs a random stage process every Every and starts it again at
// once with the same command line.
type Chaos struct {
	Every time.Duration
	Roles []string

	mu    sync.Mutex
	kills []Kill
}

// Kill is one chaos kill.
type Kill struct {
	AtMs     int64  `json:"at_ms"` // since the chaos started
	Process  string `json:"process"`
	Role     string `json:"role"`
	PID      int    `json:"pid"`
	InFlight int64  `json:"in_flight"` // a deliverer's provider requests in flight just before (-1 unknown)
	Err      string `json:"error,omitempty"`
}

func (c *Chaos) run(ctx context.Context, r *Running) {
	start := time.Now()
	t := time.NewTicker(c.Every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		victims := r.Fleet.Stages(c.Roles...)
		if len(victims) == 0 {
			continue
		}
		p := victims[rand.IntN(len(victims))]
		k := Kill{AtMs: time.Since(start).Milliseconds(), Process: p.Name, Role: p.Role, PID: p.PID(), InFlight: -1}
		if p.Role == "deliver" || p.Role == "all" {
			if n, err := InFlightOf(ctx, p); err == nil {
				k.InFlight = n
			}
		}
		if err := p.Kill(); err != nil {
			k.Err = err.Error()
		} else if err := p.Start(); err != nil {
			k.Err = err.Error()
		}
		c.mu.Lock()
		c.kills = append(c.kills, k)
		c.mu.Unlock()
	}
}

// Kills lists the kills so far.
func (c *Chaos) Kills() []Kill {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Kill(nil), c.kills...)
}
