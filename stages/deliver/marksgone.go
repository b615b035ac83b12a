package deliver

import (
	"errors"
	"sync"
	"time"

	"github.com/pushpipe/pushpipe/pipeline"
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
//
// A round may also have written nothing while Redis was away: a capped
// round waiting for its permits, or one whose sends were all in flight at
// the provider, across the whole failover. Its own writes then found no
// outage, so its batch's keep is asked too (pipeline.Batch.RedisAwaySince:
// the runner keeps the batch claimed every KeepEvery, 250 ms by default,
// and notes each keep that could not reach Redis). The keep is of the
// batch's own stream, pp:{pN}:deliver (or its express lane's), so it
// reaches the master serving {pN}: the one every mark and count of the
// round is written to, all of them under {pN} (SentChunk, DoneChunk,
// Stats, Settled, Reasons, ForcedSent: pipeline.Keys). So it watches
// exactly the master whose failover can lose them, and the failover of
// another master (another partition's, a campaign's {c…} keys, a rate
// limit's) redoes no round of this partition. A slot moved meanwhile (a
// resharding) takes the stream along with the marks: the keep follows
// them. (TestFailoverDuringHeldSendsRedoesTheRound.)

// awayFrom begins watching whether Redis goes away for b's partition: the
// func it returns reports whether, since, a write of the partition's marks
// or counts (redisOutages), or a keep of b, found Redis unreachable.
func (h *Handler) awayFrom(b *pipeline.Batch) (away func() bool) {
	p, writes, at := b.Partition, h.outages.mark(b.Partition), time.Now()
	return func() bool { return h.outages.since(p, writes) || b.RedisAwaySince(at) }
}

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
