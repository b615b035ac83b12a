package pipeline

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/rueidis"
)

// DefaultAliveEvery is how often a stage process records that it is alive
// (Options.AliveEvery).
const DefaultAliveEvery = 5 * time.Second

// AliveForget is how long a process that stopped reporting stays listed:
// an operator reading status the morning after the deliverers died still
// sees when they were last seen.
const AliveForget = 24 * time.Hour

// aliveStale is how long after its last beat a process still counts as
// running: three beats, so one late beat (a busy box, a Redis failover)
// never reads as a stopped stage.
func aliveStale(every time.Duration) time.Duration { return aliveBeats * every }

const aliveBeats = 3

// DownAfter is how long a stage beating at the default interval goes
// without a beat before status reads it not running (aliveStale). Work
// that made no progress for as long has stopped by the same rule: a
// campaign none of whose targets was done for DownAfter promises no
// finish. It has stalled (campaign.Report.StalledSinceMs) unless the
// pipeline moves other work meanwhile: the stages it waits on work
// (Working), and another campaign progressed, or each stage holding its
// work, all ahead of deliver, moved other work within DownAfter
// (moved.go). Then it waits its turn (QueuedSinceMs).
const DownAfter = aliveBeats * DefaultAliveEvery

// aliveScript records that a consumer is alive, or that it stopped cleanly,
// in its group's liveness hash (Keys.Alive): field the consumer, value
// "<unix ms>,<beat interval ms>" or "<unix ms>,stopped". The time is Redis's
// (TIME), as is the reader's, so skewed clocks between hosts never make a
// live process look stale. It forgets the fields older than ARGV[3] ms, and
// the key expires that long after the group's last beat.
//
// With the same beat it records the batch the consumer's handlers have held
// longest in the group's busy hash (Keys.Busy, stuck.go), "<since ms>,<beat
// ms>,<ARGV[5]>", since in Redis's time too (now minus the held ms the
// process measured); a clean stop clears it. And when the process last
// moved work (moved.go) in the group's moved hash (Keys.Moved), "<moved
// ms>,<beat ms>": moved in Redis's time the same way (now minus the ms
// since, "0" when it has not yet), beat the time this beat wrote in the
// liveness hash. A clean stop leaves it: only running processes' motion
// is read. A new hash, not a third part of the liveness value: older
// readers parse that value (parseAlive). Older writers never write it; one
// that took over a consumer name a newer one beat under (a rollback of a
// pod that keeps its name) leaves a field whose beat is not the liveness
// hash's, which the reader takes as no report (Motions).
//
// Why a hash of beats and not XINFO CONSUMERS: on Redis 7.0 a consumer's
// idle time is not reset by a read that returns nothing, so a stage blocked
// on a quiet stream looked exactly like a killed or SIGSTOPped one.
//
// KEYS[1] the liveness hash, KEYS[2] the busy hash, KEYS[3] the moved
// hash. ARGV: consumer, interval ms or "stopped", forget ms, held ms (""
// for none), the held batch (heldBatches.oldest), ms since the process
// last moved work ("" to leave it as it is, "never" before the first).
var aliveScript = rueidis.NewLuaScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local forget = tonumber(ARGV[3])
redis.call('HSET', KEYS[1], ARGV[1], string.format('%.0f', now) .. ',' .. ARGV[2])
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  local last = tonumber(string.match(all[i + 1], '^(%d+)'))
  if last == nil or now - last > forget then
    redis.call('HDEL', KEYS[1], all[i])
    redis.call('HDEL', KEYS[2], all[i])
    redis.call('HDEL', KEYS[3], all[i])
  end
end
redis.call('PEXPIRE', KEYS[1], forget)
if ARGV[6] ~= '' then
  local moved = '0'
  if ARGV[6] ~= 'never' then
    moved = string.format('%.0f', now - tonumber(ARGV[6]))
  end
  redis.call('HSET', KEYS[3], ARGV[1], moved .. ',' .. string.format('%.0f', now))
  redis.call('PEXPIRE', KEYS[3], forget)
end
if ARGV[4] == '' then
  redis.call('HDEL', KEYS[2], ARGV[1])
else
  redis.call('HSET', KEYS[2], ARGV[1], string.format('%.0f', now - tonumber(ARGV[4])) .. ',' .. string.format('%.0f', now) .. ',' .. ARGV[5])
  redis.call('PEXPIRE', KEYS[2], forget)
end
return 1
`)

// aliveLoop records this consumer alive in its group's liveness hash every
// AliveEvery until ctx is done (Run records the first beat before it reads).
// One script call every few seconds per process, whatever the traffic:
// nothing on the read or commit path. A failed beat is retried on the next
// tick; three in a row make the process read as stopped, which is what it
// is to the rest of the pipeline too (Redis unreachable).
func (r *Runner) aliveLoop(ctx context.Context) {
	every(ctx, r.opts.AliveEvery, func() bool { r.alive(ctx); return true })
}

func (r *Runner) alive(ctx context.Context) {
	held, batch := r.held.oldest(time.Now(), r.opts.StuckAfter)
	if err := r.beat(ctx, strconv.FormatInt(r.opts.AliveEvery.Milliseconds(), 10), held, batch, r.movedAgo(time.Now())); err != nil && ctx.Err() == nil {
		r.log.Debug().Err(err).Msg("could not record this process as alive")
	}
}

// markStopped records a clean shutdown, so status says at once that the
// process stopped instead of waiting for its beats to go stale. A crash
// never gets here: its last beat goes stale after aliveStale.
func (r *Runner) markStopped() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := r.beat(ctx, "stopped", "", "", ""); err != nil {
		r.log.Debug().Err(err).Msg("could not record this process as stopped; it reads stopped once its beats go stale")
	}
}

func (r *Runner) beat(ctx context.Context, state, held, batch, moved string) error {
	err := aliveScript.Exec(ctx, r.rdb, []string{r.keys.Alive(r.opts.Group), r.keys.Busy(r.opts.Group), r.keys.Moved(r.opts.Group)},
		[]string{r.opts.Consumer, state, strconv.FormatInt(AliveForget.Milliseconds(), 10), held, batch, moved}).Error()
	if err != nil {
		return fmt.Errorf("alive %s: %w", r.opts.Group, err)
	}
	return nil
}

// ProcessStatus is one process of a group (its consumer name) as its
// liveness beats recorded it.
type ProcessStatus struct {
	Consumer string        `json:"consumer"`
	LastSeen time.Time     `json:"last_seen"`
	Ago      time.Duration `json:"ago_ns"`            // LastSeen's age when status was read
	Running  bool          `json:"running"`           // its last beat is less than three beats old
	Stopped  bool          `json:"stopped,omitempty"` // it shut down cleanly (not a crash or a hang)
	// Holding is the batch its handlers have held longest, as of its last
	// beat; nil when they hold none (stuck.go).
	Holding *HeldBatch `json:"holding,omitempty"`
	// StuckAfter is the process's Options.StuckAfter, 0 from a process
	// that does not report it.
	StuckAfter time.Duration `json:"stuck_after_ns,omitempty"`
}

// Group states (GroupTotal.State).
const (
	StateRunning = "running" // a process of the group is alive and there is work
	StateIdle    = "idle"    // a process is alive, and nothing waits for it
	StateStopped = "stopped" // no process of the group is alive
	StateStuck   = "stuck"   // a process is alive, and its handler has held one batch longer than StuckAfter (stuck.go)
)

// NotRunning says, of groups, each that has no running process, as "split
// not running, last seen 2m ago" (or "split not running" when none reported
// in AliveForget), in the order given: what a campaign's progress waits on.
func NotRunning(ctx context.Context, c rueidis.Client, keys Keys, groups ...string) ([]string, error) {
	alive, err := readAlive(ctx, c, keys, groups)
	if err != nil {
		return nil, err
	}
	var down []string
	for _, g := range groups {
		t := GroupTotal{Name: g, Lag: -1} // Lag: not idle, whatever the work
		t.withLiveness(alive[g])
		if t.State != StateStopped {
			continue
		}
		if last, seen := t.LastSeen(); seen {
			down = append(down, g+" not running, last seen "+Ago(last.Ago)+" ago")
		} else {
			down = append(down, g+" not running")
		}
	}
	return down, nil
}

// Working reports whether every one of groups has a running process and
// none of their running processes is stuck by its own beats (it has held
// one batch longer than its StuckAfter: stuck.go), from one pipelined read
// of their liveness, as NotRunning. Work put on their streams is then
// being taken and handled; how fast is not its to say (a deliver sending
// at the provider's pace works). Entries pending with nobody claiming
// them, the other way status calls a group stuck, take every partition's
// XPENDING: status reads those, a campaign's progress does not.
func Working(ctx context.Context, c rueidis.Client, keys Keys, groups ...string) (bool, error) {
	alive, err := readAlive(ctx, c, keys, groups)
	if err != nil {
		return false, err
	}
	for _, g := range groups {
		t := GroupTotal{Name: g, Lag: -1} // Lag: not idle, whatever the work
		t.withLiveness(alive[g])
		if t.State == StateStopped || t.State == StateStuck {
			return false, nil
		}
	}
	return true, nil
}

// readAlive reads the liveness and busy hashes of groups, and Redis's
// time, in one pipelined round.
func readAlive(ctx context.Context, c rueidis.Client, keys Keys, groups []string) (map[string][]ProcessStatus, error) {
	alive, _, _, err := readLiveness(ctx, c, keys, groups, false)
	return alive, err
}

// readLiveness is readAlive, with Redis's time, and with the groups'
// moved hashes (Keys.Moved: consumer → value) when withMoved.
func readLiveness(ctx context.Context, c rueidis.Client, keys Keys, groups []string, withMoved bool) (
	alive map[string][]ProcessStatus, moved map[string]map[string]string, now time.Time, err error) {
	per := 2
	if withMoved {
		per = 3
	}
	cmds := make(rueidis.Commands, 0, 1+per*len(groups))
	cmds = append(cmds, c.B().Time().Build())
	for _, g := range groups {
		cmds = append(cmds, c.B().Hgetall().Key(keys.Alive(g)).Build(), c.B().Hgetall().Key(keys.Busy(g)).Build())
		if withMoved {
			cmds = append(cmds, c.B().Hgetall().Key(keys.Moved(g)).Build())
		}
	}
	res := c.DoMulti(ctx, cmds...)
	now, err = RedisTime(res[0])
	if err != nil {
		return nil, nil, now, err
	}
	alive = make(map[string][]ProcessStatus, len(groups))
	moved = make(map[string]map[string]string, len(groups))
	for i, g := range groups {
		at := 1 + per*i
		m, err := res[at].AsStrMap()
		if err != nil {
			return nil, nil, now, fmt.Errorf("liveness of %s: %w", g, err)
		}
		busy, err := res[at+1].AsStrMap()
		if err != nil {
			return nil, nil, now, fmt.Errorf("busy of %s: %w", g, err)
		}
		alive[g] = parseAlive(m, busy, now)
		if withMoved {
			if moved[g], err = res[at+2].AsStrMap(); err != nil {
				return nil, nil, now, fmt.Errorf("motion of %s: %w", g, err)
			}
		}
	}
	return alive, moved, now, nil
}

// RedisTime reads the answer to TIME: Redis's clock, which stream entry
// ids and liveness beats are in, whatever the reader's host says.
func RedisTime(r rueidis.RedisResult) (time.Time, error) {
	t, err := r.AsStrSlice()
	if err != nil || len(t) != 2 {
		return time.Time{}, fmt.Errorf("time: %v %w", t, err)
	}
	sec, err1 := strconv.ParseInt(t[0], 10, 64)
	usec, err2 := strconv.ParseInt(t[1], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return time.Time{}, fmt.Errorf("time: %w", err)
	}
	return time.Unix(sec, usec*1000), nil
}

// parseAlive decodes a liveness hash and its busy hash (aliveScript) as
// of now.
func parseAlive(m, busy map[string]string, now time.Time) []ProcessStatus {
	ps := make([]ProcessStatus, 0, len(m))
	for consumer, v := range m {
		ms, state, ok := strings.Cut(v, ",")
		last, err := strconv.ParseInt(ms, 10, 64)
		if !ok || err != nil {
			continue // not ours to judge: skip rather than fail the whole status
		}
		p := ProcessStatus{Consumer: consumer, LastSeen: time.UnixMilli(last).UTC()}
		p.Ago = max(now.Sub(p.LastSeen), 0)
		if state == "stopped" {
			p.Stopped = true
		} else if every, err := strconv.ParseInt(state, 10, 64); err == nil {
			p.Running = p.Ago <= aliveStale(time.Duration(every)*time.Millisecond)
		}
		if h, ok := parseHeld(busy[consumer]); ok {
			p.StuckAfter = h.StuckAfter
			if h.Entries > 0 {
				p.Holding = &h
			}
		}
		ps = append(ps, p)
	}
	slices.SortFunc(ps, func(a, b ProcessStatus) int {
		if a.Running != b.Running {
			if a.Running {
				return -1
			}
			return 1
		}
		return b.LastSeen.Compare(a.LastSeen)
	})
	return ps
}

// withLiveness fills the liveness of a group total from its processes.
func (t *GroupTotal) withLiveness(ps []ProcessStatus) {
	t.Processes = ps
	t.Running = 0
	for _, p := range ps {
		if p.Running {
			t.Running++
		}
	}
	_, stuck := t.Stuck()
	switch {
	case t.Running == 0:
		t.State = StateStopped
	case stuck > 0 || t.Unclaimed != nil:
		// Before running and idle: its entries count as pending, and the
		// other processes may be working, but this is what waits.
		t.State = StateStuck
	case t.Lag == 0 && t.LagUnknown == 0 && t.Pending == 0:
		t.State = StateIdle
	default:
		t.State = StateRunning
	}
}

// LastSeen is the most recent beat of any of the group's processes, zero
// when none reported within AliveForget.
func (t GroupTotal) LastSeen() (ProcessStatus, bool) {
	if len(t.Processes) == 0 {
		return ProcessStatus{}, false
	}
	last := t.Processes[0]
	for _, p := range t.Processes[1:] {
		if p.LastSeen.After(last.LastSeen) {
			last = p
		}
	}
	return last, true
}

// Plain says a group's state to an operator in one sentence, with what to
// do when it is stopped; start is the command that runs the group
// (StartCommand).
func (t GroupTotal) Plain(start string) string {
	switch t.State {
	case StateRunning:
		return fmt.Sprintf("running: %s working", processes(t.Running))
	case StateIdle:
		return fmt.Sprintf("idle: %s running, nothing waiting", processes(t.Running))
	case StateStuck:
		return t.plainStuck()
	}
	waiting := ""
	switch {
	case t.Lag+t.Pending == 1:
		waiting = "; 1 entry waits for it"
	case t.Lag+t.Pending > 1:
		waiting = "; " + separated(t.Lag+t.Pending) + " entries wait for it"
	case t.LagUnknown > 0:
		waiting = "; entries may wait for it"
	}
	last, ok := t.LastSeen()
	switch {
	case !ok:
		return fmt.Sprintf("not running: no process reported in the last %s%s. Start `%s`%s", Ago(AliveForget), waiting, start, retire(t.Name))
	case last.Stopped:
		return fmt.Sprintf("not running: stopped cleanly %s ago (%s)%s. Start `%s` if it should run%s", Ago(last.Ago), last.Consumer, waiting, start, retire(t.Name))
	default:
		return fmt.Sprintf("not running: last seen %s ago (%s), then it stopped reporting: killed, crashed or hung%s. "+
			"Check its logs and restart `%s`", Ago(last.Ago), t.lastProcesses(last), waiting, start)
	}
}

// lastProcesses names the processes that stopped reporting last (a fleet
// SIGSTOPped or lost at once): up to three, then how many more.
func (t GroupTotal) lastProcesses(last ProcessStatus) string {
	var names []string
	for _, p := range t.Processes {
		if !p.Stopped && last.LastSeen.Sub(p.LastSeen) < aliveStale(DefaultAliveEvery) {
			names = append(names, p.Consumer)
		}
	}
	if len(names) <= 1 {
		return last.Consumer
	}
	n, more := len(names), ""
	if n > 3 {
		names, more = names[:3], fmt.Sprintf(" and %d more", n-3)
	}
	return fmt.Sprintf("%d processes: %s%s", n, strings.Join(names, ", "), more)
}

// retire is what to do with a webhook receiver's group (the webhook stage's
// own, or any group that is not a stage's) when that receiver is retired for good: results is trimmed
// only below what every group read, so its group keeps every event.
func retire(group string) string {
	if def, ok := StageNamed(group); ok && !def.Optional {
		return "" // a stage every deployment runs; the webhook's own group is a receiver's
	}
	return "; or, if this receiver is retired for good, `pushpipe results retire " + group + "`: results are kept for it until then"
}

// StartCommand is the command that runs the processes of group: the stage
// of that name, or a webhook receiver (a group of its own on results).
func StartCommand(group string) string {
	if _, ok := StageNamed(group); ok {
		return "pushpipe " + group
	}
	return "pushpipe webhook --group " + group
}

func processes(n int) string {
	if n == 1 {
		return "1 process"
	}
	return strconv.Itoa(n) + " processes"
}

// Ago is a duration as an operator reads it: 40s, 2m, 3h10m.
func Ago(d time.Duration) string {
	switch {
	case d < time.Minute:
		return d.Round(time.Second).String()
	case d < time.Hour:
		return strconv.Itoa(int(d/time.Minute)) + "m"
	default:
		h, m := int(d/time.Hour), int(d%time.Hour/time.Minute)
		if m == 0 {
			return strconv.Itoa(h) + "h"
		}
		return fmt.Sprintf("%dh%dm", h, m)
	}
}

// separated is n with thousands separators, as status prints its figures.
func separated(n int64) string {
	s := strconv.FormatInt(n, 10)
	for i := len(s) - 3; i > 0 && s[i-1] != '-'; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
