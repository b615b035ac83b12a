package deliver

import (
	"errors"
	"sync/atomic"
)

// A mark a Redis master acknowledged can still be lost: in a failover its
// replica, promoted, lacks the writes it had not received (replication is
// asynchronous). A round whose marks went to the old master before the
// failover and whose users' done count went to the new one after it then
// counts those users done while their devices, reached, are neither marked
// nor counted sent: the campaign ends done with its sent count short, and
// nothing sends to them again (a resplit neither: dedupe's marks of the
// users survived). So a round during which a write of this process found
// Redis unreachable counts none of its users done, early or at its end: it
// fails, and the batch's retry reads the marks Redis holds now and sends
// again only to the devices whose marks were lost, which it marks and
// counts. (Drill g', TestDrillClusterFailoverLosingWrites.)

// redisOutages counts the writes untilRedisBack saw fail for want of Redis
// (any master: a failover of one makes every round then running start
// over, which costs it a read of its marks).
type redisOutages struct{ n atomic.Int64 }

// seen records a write that could not reach Redis.
func (o *redisOutages) seen() { o.n.Add(1) }

// mark is the count now, for since.
func (o *redisOutages) mark() int64 { return o.n.Load() }

// since reports whether a write found Redis unreachable after mark m.
func (o *redisOutages) since(m int64) bool { return o.n.Load() != m }

// errMarksUncertain fails a round during which Redis went away.
var errMarksUncertain = errors.New("marks may be lost: Redis was unreachable during the round (a restart or failover); " +
	"the batch is redone, sending only to devices Redis holds no mark of")
