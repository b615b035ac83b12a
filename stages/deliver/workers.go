package deliver

import "time"

// workers runs sends on reused goroutines. A goroutine per send would grow a
// fresh stack for every HTTP/2 request (the profile showed copystack at ~9%
// of deliver's CPU); a worker that has sent once keeps its grown stack. The
// in-flight semaphore bounds how many run at once; an idle worker exits
// after workerIdle, so a stopped stage leaves none behind for long.
type workers struct {
	jobs chan func()
}

const workerIdle = 5 * time.Second

func newWorkers() *workers { return &workers{jobs: make(chan func())} }

// run starts f on an idle worker, or on a new one when none is idle.
func (w *workers) run(f func()) {
	select {
	case w.jobs <- f:
	default:
		go w.loop(f)
	}
}

func (w *workers) loop(f func()) {
	idle := time.NewTimer(workerIdle)
	defer idle.Stop()
	for {
		f()
		idle.Reset(workerIdle)
		select {
		case f = <-w.jobs:
		case <-idle.C:
			return
		}
	}
}
