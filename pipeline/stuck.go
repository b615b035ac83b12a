package pipeline

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/rueidis"
)

// A process can be alive and still move nothing: a handler hung on a slow
// dependency or deadlocked. Its liveness beats go on (they have a goroutine
// of their own), and so does keepClaimed, which resets the idle time of the
// batch's entries every KeepEvery: XPENDING's idle never grows for them, and
// no other consumer ever claims them. Only the process knows how long its
// handler has held a batch, so it says so with each beat (aliveScript), and
// status reads the stage stuck once a running process has held one batch
// longer than its StuckAfter.
//
// The other way a group moves nothing with its processes alive: entries
// pending for a consumer that is gone, on a partition none of the running
// processes serves (or whose claim loop hangs). Those entries do age, and
// XPENDING's idle finds them (readUnclaimed).

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

// oldest is the batch held longest without moving (Batch.Progress), as
// aliveScript's ARGV[4] and ARGV[5]: held ms, and
// "<stuck after ms>,<partition>,<entries>,<first id>,<stream>" (the stream
// last: a key may hold a comma). With none held, "0" and a
// batch of no entries: the beat still says the process's StuckAfter, which
// status needs for the entries nobody claims (Status).
func (h *heldBatches) oldest(now time.Time, stuckAfter time.Duration) (held, batch string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	var b *Batch
	var since time.Time
	for x, t := range h.m {
		// Held since it last moved (Batch.Progress), if it did.
		if moved := x.moved.Load(); moved > t.UnixNano() {
			t = time.Unix(0, moved)
		}
		if b == nil || t.Before(since) {
			b, since = x, t
		}
	}
	if b == nil || len(b.Entries) == 0 {
		return "0", fmt.Sprintf("%d,-1,0,,", stuckAfter.Milliseconds())
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

// holdingIn is the processes ps of a group as one logical stream's group
// sees them. A stage with an express lane has one group, one liveness and
// one held batch per process for both lanes, and the batch is of one
// lane's stream: a bulk batch hung is not the express lane stuck, whose
// messages still go out on their own handlers.
func holdingIn(ps []ProcessStatus, parts []PartitionStatus) []ProcessStatus {
	out := slices.Clone(ps)
	for i, p := range out {
		if p.Holding != nil && !slices.ContainsFunc(parts, func(x PartitionStatus) bool { return x.Key == p.Holding.Stream }) {
			out[i].Holding = nil
		}
	}
	return out
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

// StuckFor is how long the oldest entry of a stuck group has been held:
// by a stuck process, or pending unclaimed (Unclaimed).
func (t GroupTotal) StuckFor() time.Duration {
	var d time.Duration
	if p, n := t.Stuck(); n > 0 {
		d = p.Holding.Held
	}
	if t.Unclaimed != nil {
		d = max(d, t.Unclaimed.Idle)
	}
	return d
}

// UnclaimedEntry is an entry pending longer than its group's StuckAfter:
// past --claim-idle, and still no running process claimed it.
type UnclaimedEntry struct {
	Stream     string        `json:"stream"`
	Partition  int           `json:"partition"`
	ID         string        `json:"id"`
	Consumer   string        `json:"consumer"` // the consumer it is pending for
	Idle       time.Duration `json:"idle_ns"`
	Deliveries int64         `json:"deliveries"`
}

// stuckAfter is the group's threshold for entries nobody claims: the
// largest StuckAfter its running processes report (a process with a long
// --claim-idle claims late, and its entries are not stuck before), or the
// default's (2×30s) when none reports one.
func stuckAfter(ps []ProcessStatus) time.Duration {
	var d time.Duration
	for _, p := range ps {
		if p.Running {
			d = max(d, p.StuckAfter)
		}
	}
	if d == 0 {
		d = 2 * 30 * time.Second
	}
	return d
}

// parseUnclaimed decodes the first entry of an extended XPENDING reply
// (id, consumer, idle ms, deliveries); false when there is none.
func parseUnclaimed(r rueidis.RedisResult, stream string, p int) (*UnclaimedEntry, bool, error) {
	arr, err := r.ToArray()
	if err != nil {
		return nil, false, err
	}
	if len(arr) == 0 {
		return nil, false, nil
	}
	e, err := arr[0].ToArray()
	if err != nil || len(e) < 4 {
		return nil, false, fmt.Errorf("xpending %s: unexpected reply: %w", stream, err)
	}
	u := &UnclaimedEntry{Stream: stream, Partition: p}
	u.ID, _ = e[0].ToString()
	u.Consumer, _ = e[1].ToString()
	idle, _ := e[2].AsInt64()
	u.Idle = time.Duration(idle) * time.Millisecond
	u.Deliveries, _ = e[3].AsInt64()
	return u, true, nil
}

// plainStuck says which process holds which batch, or which entry nobody
// claims, and what to do.
func (t GroupTotal) plainStuck() string {
	p, stuck := t.Stuck()
	if stuck == 0 && t.Unclaimed != nil {
		u := t.Unclaimed
		if busy := t.allBusy(); busy > 0 {
			// A claim waits for a free handler (handOff), so a running
			// process's claims do hang while every handler it has is
			// held, and restarting it only lets go of that work. Each
			// beat says one held batch at most: all of them holding one
			// is as near to "every handler busy" as status can see.
			return fmt.Sprintf("stuck: entry %s of partition %d (%s) has been pending for %s %s, and no running process claims it, "+
				"but every running process (%d) holds a batch that moves: a claim waits for a free handler, so this one may only "+
				"wait behind slow work (sends at the provider's pace, or a capped campaign's). If it lasts, check the processes' logs "+
				"(pushpipe status -d shows what each holds); if %s is gone and none serves partition %d, start one that does",
				u.ID, u.Partition, u.Stream, u.Consumer, Ago(u.Idle), busy, u.Consumer, u.Partition)
		}
		return fmt.Sprintf("stuck: entry %s of partition %d (%s) has been pending for %s %s, and no running process claims it "+
			"(none serves that partition, or its claim loop hangs). If %s is gone, start a process that serves partition %d; "+
			"if it runs, check its logs and restart it",
			u.ID, u.Partition, u.Stream, u.Consumer, Ago(u.Idle), u.Consumer, u.Partition)
	}
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

// allBusy is how many processes of the group run, when each of them holds
// a batch (none stuck: Stuck is said first); 0 when one holds none.
func (t GroupTotal) allBusy() int {
	n := 0
	for _, p := range t.Processes {
		if !p.Running {
			continue
		}
		if p.Holding == nil {
			return 0
		}
		n++
	}
	return n
}

// streamGroup names a group on a logical stream.
type streamGroup struct{ stream, group string }

// readUnclaimed finds, for each group on each logical stream, the entry
// pending past the group's stuckAfter with the longest idle, in one
// pipelined round: one XPENDING IDLE ... COUNT 1 per partition key and
// group with entries pending (the first such entry by id, which for a
// partition nobody claims is the oldest). A live process keeps its own
// batches claimed, so an entry this idle is one nobody works on or claims.
func readUnclaimed(ctx context.Context, c rueidis.Client, keys Keys, streams, all []string, groups [][]GroupInfo,
	alive map[string][]ProcessStatus) (map[streamGroup]*UnclaimedEntry, error) {
	type ref struct {
		at   streamGroup
		key  string
		part int
	}
	var refs []ref
	var cmds rueidis.Commands
	for i, gs := range groups {
		for _, g := range gs {
			if g.Pending == 0 {
				continue
			}
			ms := stuckAfter(alive[g.Name]).Milliseconds()
			refs = append(refs, ref{streamGroup{streams[i/keys.Partitions], g.Name}, all[i], i % keys.Partitions})
			cmds = append(cmds, c.B().Xpending().Key(all[i]).Group(g.Name).Idle(ms).Start("-").End("+").Count(1).Build())
		}
	}
	out := map[streamGroup]*UnclaimedEntry{}
	for n, r := range c.DoMulti(ctx, cmds...) {
		u, ok, err := parseUnclaimed(r, refs[n].key, refs[n].part)
		if err != nil {
			return nil, fmt.Errorf("xpending %s %s: %w", refs[n].key, refs[n].at.group, err)
		}
		if cur := out[refs[n].at]; ok && (cur == nil || u.Idle > cur.Idle) {
			out[refs[n].at] = u
		}
	}
	return out, nil
}
