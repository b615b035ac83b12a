package deliver

import (
	"sync"
	"time"
)

// A round counts its users done at its end (countSettled), and a round is a
// whole batch. Under a campaign's own cap or a slow provider a round lasts
// minutes, and a process runs many at once, each at a share of the rate: for
// most of a capped campaign's run no round had ended, so its progress showed
// ~0 % done with 14 % of its devices sent and a finish a day away. So a round
// that lasts also counts, every doneEarlyEvery, the users it has finished:
// every device of theirs marked terminal, none retried or left by a cancel
// (those never reach 0 in left). Counting is idempotent (the done bitmaps),
// so the round's end counts them again for nothing, and a crash in between
// counts nobody twice. A round shorter than the interval, the common case at
// full speed, makes no extra call.
const doneEarlyEvery = time.Second

// trackDone starts counting, per target, its devices still to be marked.
func (r *round) trackDone(pending [][]device) {
	for i, devs := range pending {
		r.left[i].Store(int32(len(devs)))
	}
}

// marked records that the marks of reqs, all of this round, are durable.
// (A round made by hand, in tests, tracks nothing.)
func (r *round) marked(reqs []markReq) {
	for _, m := range reqs {
		if m.i < len(r.left) {
			r.left[m.i].Add(-1)
		}
	}
}

// countDoneEarly counts the round's finished users every doneEarlyEvery
// until stop is called (before the round's own count at its end).
func (r *round) countDoneEarly(targets []target) (stop func()) {
	quit := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(doneEarlyEvery)
		defer t.Stop()
		var counted []bool
		for {
			select {
			case <-quit:
				return
			case <-r.wait.Done():
				return
			case <-t.C:
				if counted == nil {
					counted = make([]bool, len(targets))
				}
				r.countDone(targets, counted)
			}
		}
	})
	return func() { close(quit); wg.Wait() }
}

// countDone counts the finished users not counted yet. An error is left to
// the round's end, which counts every finished user again.
func (r *round) countDone(targets []target, counted []bool) {
	if r.away() {
		return // its marks may be lost: the batch is redone (marksgone.go)
	}
	var idx []int
	for i := range targets {
		if !counted[i] && r.left[i].Load() == 0 {
			idx = append(idx, i)
		}
	}
	if len(idx) == 0 {
		return
	}
	sub := make([]target, len(idx))
	s := newSettlement(len(idx))
	for k, i := range idx {
		sub[k], s.done[k], s.bare[k] = targets[i], 1, r.results[i].bare
	}
	if err := r.h.countSettled(r.wait, r.p, sub, s); err != nil {
		r.h.log.Debug().Err(err).Msg("users done so far not counted yet: the round's end will")
		return
	}
	for _, i := range idx {
		counted[i] = true
	}
}
