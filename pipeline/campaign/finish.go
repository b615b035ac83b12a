package campaign

import "time"

// staleDone is how long after the last target done the expected finish is
// still counted from it: deliver counts targets done at least every second
// while a campaign moves (stages/deliver/doneearly.go).
const staleDone = 5 * time.Second

// rates fills the send rate and, for a running campaign, the expected
// finish: the people left at the rate people are reached (Reached: the
// targets done, or of its audience while it is cut). That rate is the
// recent pace (Pace) when deliver keeps it, else the average so far: the
// targets done over the time until the last of them was (DoneMs), not
// until the last send: deliver counts targets done a while after their
// sends (at most a second later in a long round), and over a short or
// capped campaign the last send's time would stretch the rate by that lag.
// Muted people and repeats, reached while a campaign is cut, are taken to
// come at the pace targets are done, in the proportion they did so far.
//
// A campaign that made no progress for downAfter (Reader.DownAfter) has
// no finish:
// it is queued when moves says the pipeline moves other work meanwhile,
// stalled when not. moves is asked only then (it reads Redis and
// PostgreSQL: motion.moves).
func (rep *Report) rates(now time.Time, downAfter time.Duration, moves func() bool) {
	if rep.LastSendMs > rep.FirstSendMs && rep.FirstSendMs > 0 {
		secs := float64(rep.LastSendMs-rep.FirstSendMs) / 1000
		rep.SendRate = float64(rep.Sends()) / secs
		reached, of := rep.Reached()
		if (rep.State == StateRunning || rep.State == StateSplitting) && rep.Done > 0 && of > reached {
			if last := time.UnixMilli(max(rep.DoneMs, rep.LastSendMs)); now.Sub(last) >= downAfter {
				if moves() {
					rep.QueuedSinceMs = last.UnixMilli()
				} else {
					rep.StalledSinceMs = last.UnixMilli()
				}
				return
			}
			from := now
			if rep.DoneMs > rep.FirstSendMs {
				secs = float64(rep.DoneMs-rep.FirstSendMs) / 1000
				// The targets left are those left at DoneMs; from now,
				// those done since would be counted twice. A DoneMs a
				// few seconds past (deliver counts done about every
				// second while the campaign moves): from now then.
				if done := time.UnixMilli(rep.DoneMs); now.Sub(done) < staleDone {
					from = done
				}
			}
			perUser := secs / float64(reached)
			if rep.Pace > 0 {
				perUser = float64(rep.Done) / float64(reached) / rep.Pace
			}
			left := time.Duration(perUser * float64(of-reached) * float64(time.Second))
			rep.ExpectedFinishMs = from.Add(left).UnixMilli()
		}
	}
}
