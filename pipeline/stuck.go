package pipeline

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
)

// A process can be alive and still move nothing: a handler hung on a slow
// dependency or deadlocked. Its liveness beats go on (they have a goroutine
// of their own), and so does keepClaimed, which resets the idle time of the
// batch's entries every KeepEvery: XPENDING's idle never grows for them, and
// no other consumer ever claims them. Only the process knows how long its
// handler has held a batch, so it says so with each beat (aliveScript), and
// status reads the stage stuck once a running process has held one batch
// longer than its StuckAfter.

// heldBatches are the batches this process's handlers hold now, since when.
type heldBatches struct {
	mu sync.Mutex
	m  map[*Batch]time.Time
}

// hold records b as held from now; the returned func lets it go.
func (h *heldBatches) hold(b *Batch) (release func()) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.m == nil {
		h.m = map[*Batch]time.Time{}
	}
	h.m[b] = time.Now()
	return func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		delete(h.m, b)
	}
}

// oldest is the batch held longest, as aliveScript's ARGV[4] and ARGV[5]:
// held ms, and "<stuck after ms>,<partition>,<entries>,<first id>,<stream>"
// (the stream last: a key may hold a comma). "", "" when none is held.
func (h *heldBatches) oldest(now time.Time, stuckAfter time.Duration) (held, batch string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	var b *Batch
	var since time.Time
	for x, t := range h.m {
		if b == nil || t.Before(since) {
			b, since = x, t
		}
	}
	if b == nil || len(b.Entries) == 0 {
		return "", ""
	}
	return strconv.FormatInt(now.Sub(since).Milliseconds(), 10),
		fmt.Sprintf("%d,%d,%d,%s,%s", stuckAfter.Milliseconds(), b.Partition, len(b.Entries), b.Entries[0].ID, b.Stream)
}

// HeldBatch is the batch a process's handlers have held longest, as its
// last beat said.
type HeldBatch struct {
	Stream     string        `json:"stream"` // the partition's stream key
	Partition  int           `json:"partition"`
	Entry      string        `json:"entry"` // its first entry's id
	Entries    int           `json:"entries"`
	Held       time.Duration `json:"held_ns"`        // at the last beat: never more than the process measured
	StuckAfter time.Duration `json:"stuck_after_ns"` // the process's StuckAfter
}

// parseHeld decodes a busy hash value (aliveScript).
func parseHeld(v string) (HeldBatch, bool) {
	f := strings.SplitN(v, ",", 7)
	if len(f) != 7 {
		return HeldBatch{}, false
	}
	var n [5]int64
	for i := range n {
		x, err := strconv.ParseInt(f[i], 10, 64)
		if err != nil {
			return HeldBatch{}, false
		}
		n[i] = x
	}
	since, at, after := n[0], n[1], n[2]
	return HeldBatch{Stream: f[6], Partition: int(n[3]), Entries: int(n[4]), Entry: f[5],
		Held: time.Duration(max(at-since, 0)) * time.Millisecond, StuckAfter: time.Duration(after) * time.Millisecond}, true
}

// Stuck is whether p is running and has held one batch longer than its
// StuckAfter. A process that stopped beating is not stuck but not running.
func (p ProcessStatus) Stuck() bool {
	return p.Running && p.Holding != nil && p.Holding.Held >= p.Holding.StuckAfter
}

// Stuck is the group's stuck process that has held its batch longest, and
// how many of its processes are stuck.
func (t GroupTotal) Stuck() (ProcessStatus, int) {
	var worst ProcessStatus
	n := 0
	for _, p := range t.Processes {
		if !p.Stuck() {
			continue
		}
		if n == 0 || p.Holding.Held > worst.Holding.Held {
			worst = p
		}
		n++
	}
	return worst, n
}

// plainStuck says which process holds which batch, and what to do.
func (t GroupTotal) plainStuck() string {
	p, stuck := t.Stuck()
	if stuck == 0 {
		return "stuck"
	}
	h := p.Holding
	others := ""
	if stuck > 1 {
		others = fmt.Sprintf(" (and %d more of its processes)", stuck-1)
	}
	n := strconv.Itoa(h.Entries) + " entries"
	if h.Entries == 1 {
		n = "1 entry"
	}
	return fmt.Sprintf("stuck: %s%s has held %s of partition %d (%s, first %s) for %s, longer than the %s a batch may take: "+
		"the process is alive but its handler hangs (a slow dependency or a deadlock). Check that process's logs and restart it: "+
		"once it is gone, another consumer claims the entries after --claim-idle",
		p.Consumer, others, n, h.Partition, h.Stream, h.Entry, Ago(h.Held), Ago(h.StuckAfter))
}
