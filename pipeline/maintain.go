package pipeline

import (
	"context"
	"time"
)

// maintainLoop refreshes the lag and pending gauges and trims acknowledged
// entries past the retention window, for the partitions this runner serves.
func (r *Runner) maintainLoop(ctx context.Context) {
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	lastTrim := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		r.down.settle()
		r.failing.settle()
		var streams []string
		var labels [][]string
		for _, l := range r.lanes() {
			for _, p := range r.opts.Partitions {
				streams = append(streams, r.stream(l, p))
				labels = append(labels, r.series(l, p))
			}
		}
		if groups, err := StreamGroups(ctx, r.rdb, streams); err == nil {
			for i, gs := range groups {
				for _, g := range gs {
					if g.Name == r.opts.Group {
						r.metrics.Lag.WithLabelValues(labels[i]...).Set(float64(max(g.Lag, 0)))
						r.metrics.Pending.WithLabelValues(labels[i]...).Set(float64(g.Pending))
					}
				}
			}
		}
		if time.Since(lastTrim) < time.Minute {
			continue
		}
		lastTrim = time.Now()
		r.forgetErrors(lastTrim)
		if r.opts.Retention > 0 {
			for i, s := range streams {
				n, err := Trim(ctx, r.rdb, s, r.opts.Retention, time.Now())
				if err != nil {
					if !r.down.quiet(err) {
						r.log.Warn().Err(err).Str("stream", s).Msg("trim failed")
					}
					continue
				}
				r.metrics.Trimmed.WithLabelValues(labels[i]...).Add(float64(n))
			}
			// The streams the stage writes that may have no reader: their
			// writer keeps them bounded.
			for _, out := range r.opts.Outputs {
				for _, p := range r.opts.Partitions {
					s := r.keys.Stream(out, p)
					if _, err := TrimOutput(ctx, r.rdb, s, r.opts.Retention, time.Now()); err != nil && !r.down.quiet(err) {
						r.log.Warn().Err(err).Str("stream", s).Msg("trim failed")
					}
				}
			}
		}
	}
}
