package deliver

import (
	"errors"
	"sync"
)

// A mark a Redis master acknowledged can still be lost: in a failover its
// replica, promoted, lacks the writes it had not received (replication is
// asynchronous). A round whose marks went to the old master before the
// failover and whose users' done count went to the new one after it then
// counts those users done while their devices, reached, are neither marked
// nor counted sent: the campaign ends done with its sent count short, and
// nothing sends to them again (a resplit neither: dedupe's marks of the
// users survived). So a round during which a write of its partition's
// marks or counts found Redis unreachable counts none of its users done,
// early or at its end: it fails, and the batch's retry reads the marks
// Redis holds now and sends again only to the devices whose marks were
// lost, which it marks and counts. (Drill g',
// TestDrillClusterFailoverLosingWrites.)

// redisOutages counts, per partition, the writes of its marks or counts
// that found its Redis unreachable. Per partition, not per process: while
// one master is down for good, rounds of the partitions other masters
// serve still count their users.
type redisOutages struct {
	mu sync.Mutex
	n  map[int]int64
}

// seen records a write for partition p that could not reach Redis.
func (o *redisOutages) seen(p int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.n == nil {
		o.n = map[int]int64{}
	}
	o.n[p]++
}

// mark is partition p's count now, for since.
func (o *redisOutages) mark(p int) int64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.n[p]
}

// since reports whether a write for partition p found Redis unreachable
// after mark m.
func (o *redisOutages) since(p int, m int64) bool { return o.mark(p) != m }

// errMarksUncertain fails a round during which Redis went away.
var errMarksUncertain = errors.New("marks may be lost: Redis was unreachable during the round (a restart or failover); " +
	"the batch is redone, sending only to devices Redis holds no mark of")
