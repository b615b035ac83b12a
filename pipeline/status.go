package pipeline

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/rueidis"
)

// ConsumerStatus is one consumer of a group on one partition.
type ConsumerStatus struct {
	Name    string        `json:"name"`
	Pending int64         `json:"pending"`
	Idle    time.Duration `json:"idle_ns"` // since it last read or claimed (Redis 7.0; 7.2+: last attempt)
}

// GroupStatus is one consumer group on one partition.
type GroupStatus struct {
	Name          string           `json:"name"`
	Lag           int64            `json:"lag"` // -1 when Redis cannot tell (see XINFO GROUPS)
	Pending       int64            `json:"pending"`
	LastDelivered string           `json:"last_delivered"`
	Consumers     []ConsumerStatus `json:"consumers"`
}

// PartitionStatus is one partition key of a stream.
type PartitionStatus struct {
	Partition int           `json:"partition"`
	Key       string        `json:"key"`
	Length    int64         `json:"length"`
	Delayed   int64         `json:"delayed"` // entries waiting to be released into it (DelayedKey)
	Groups    []GroupStatus `json:"groups"`
}

// GroupTotal is a group summed over a stream's partitions.
type GroupTotal struct {
	Name       string `json:"name"`
	Lag        int64  `json:"lag"`         // sum of the known lags
	LagUnknown int    `json:"lag_unknown"` // partitions whose lag Redis could not tell
	Pending    int64  `json:"pending"`     // sum
	Consumers  int    `json:"consumers"`   // distinct consumer names
	// MaxIdle is the most idle consumer's idle (its least idle partition).
	// Kept for --json readers only: on Redis 7.0 a consumer blocked on a
	// quiet stream ages exactly like a dead one, and a hung handler's
	// entries never age at all (keepClaimed); State says both right.
	MaxIdle time.Duration `json:"max_idle_ns"`
	// State is running, idle, stuck or stopped (StateRunning...), from the
	// processes' liveness beats and what they say they hold (alive.go,
	// stuck.go).
	State     string          `json:"state"`
	Running   int             `json:"running"`             // processes whose last beat is recent
	Processes []ProcessStatus `json:"processes,omitempty"` // every process seen in AliveForget, running first
	// Unclaimed is the entry pending longest past the group's StuckAfter
	// (stuck.go), nil when none is: with a process running, the group is
	// stuck.
	Unclaimed *UnclaimedEntry `json:"unclaimed,omitempty"`
}

// StreamStatus is a logical stream: its partitions and its groups' totals.
type StreamStatus struct {
	Name       string            `json:"name"`
	Length     int64             `json:"length"`
	Delayed    int64             `json:"delayed"` // retries and schedules waiting (delay.go)
	Groups     []GroupTotal      `json:"groups"`
	Partitions []PartitionStatus `json:"partitions"`
}

// Status reads length, groups (lag, pending, last delivered) and consumers
// (pending, idle) of every partition of the given logical streams, and
// whether each group's processes are running or stuck (alive.go,
// stuck.go), in five pipelined rounds.
func Status(ctx context.Context, c rueidis.Client, keys Keys, streams ...string) ([]StreamStatus, error) {
	var all []string
	for _, s := range streams {
		all = append(all, keys.Streams(s)...)
	}
	lengths := make(rueidis.Commands, 0, 2*len(all))
	for _, k := range all {
		lengths = append(lengths, c.B().Xlen().Key(k).Build(), c.B().Zcard().Key(DelayedKey(k)).Build())
	}
	groups, err := StreamGroups(ctx, c, all)
	if err != nil {
		return nil, fmt.Errorf("status: %w", err)
	}
	lens, delayed := make([]int64, len(all)), make([]int64, len(all))
	for n, r := range c.DoMulti(ctx, lengths...) {
		i, into := n/2, lens
		if n%2 == 1 {
			into = delayed
		}
		if into[i], err = r.AsInt64(); err != nil {
			return nil, fmt.Errorf("status: length of %s: %w", all[i], err)
		}
	}
	type ref struct{ key, group int }
	var refs []ref
	var cmds rueidis.Commands
	for i, gs := range groups {
		for j, g := range gs {
			refs = append(refs, ref{i, j})
			cmds = append(cmds, c.B().XinfoConsumers().Key(all[i]).Group(g.Name).Build())
		}
	}
	consumers := make([][][]ConsumerStatus, len(all))
	for i := range consumers {
		consumers[i] = make([][]ConsumerStatus, len(groups[i]))
	}
	for n, r := range c.DoMulti(ctx, cmds...) {
		cs, err := parseConsumers(r)
		if err != nil {
			return nil, fmt.Errorf("status: xinfo consumers %s %s: %w", all[refs[n].key], groups[refs[n].key][refs[n].group].Name, err)
		}
		consumers[refs[n].key][refs[n].group] = cs
	}

	var names []string
	for _, gs := range groups {
		for _, g := range gs {
			if !slices.Contains(names, g.Name) {
				names = append(names, g.Name)
			}
		}
	}
	alive, err := readAlive(ctx, c, keys, names)
	if err != nil {
		return nil, fmt.Errorf("status: %w", err)
	}
	unclaimed, err := readUnclaimed(ctx, c, keys, streams, all, groups, alive)
	if err != nil {
		return nil, fmt.Errorf("status: %w", err)
	}

	out := make([]StreamStatus, len(streams))
	i := 0
	for s, name := range streams {
		st := StreamStatus{Name: name}
		for p := range keys.Partitions {
			ps := PartitionStatus{Partition: p, Key: all[i], Length: lens[i], Delayed: delayed[i]}
			for j, g := range groups[i] {
				ps.Groups = append(ps.Groups, GroupStatus{Name: g.Name, Lag: g.Lag, Pending: g.Pending,
					LastDelivered: g.LastDelivered, Consumers: consumers[i][j]})
			}
			st.Length += ps.Length
			st.Delayed += ps.Delayed
			st.Partitions = append(st.Partitions, ps)
			i++
		}
		st.Groups = totals(st.Partitions)
		for g := range st.Groups {
			t := &st.Groups[g]
			t.Unclaimed = unclaimed[streamGroup{name, t.Name}]
			t.withLiveness(holdingIn(alive[t.Name], st.Partitions))
		}
		out[s] = st
	}
	return out, nil
}

func parseConsumers(r rueidis.RedisResult) ([]ConsumerStatus, error) {
	arr, err := r.ToArray()
	if err != nil {
		return nil, err
	}
	out := make([]ConsumerStatus, 0, len(arr))
	for _, m := range arr {
		fields, err := m.AsMap()
		if err != nil {
			return nil, err
		}
		var cs ConsumerStatus
		name, pending, idle := fields["name"], fields["pending"], fields["idle"]
		cs.Name, _ = name.ToString()
		cs.Pending, _ = pending.AsInt64()
		ms, _ := idle.AsInt64()
		cs.Idle = time.Duration(ms) * time.Millisecond
		out = append(out, cs)
	}
	return out, nil
}

// totals sums each group over the partitions.
func totals(parts []PartitionStatus) []GroupTotal {
	byName := map[string]*GroupTotal{}
	idle := map[string]map[string]time.Duration{} // group → consumer → least idle
	for _, ps := range parts {
		for _, g := range ps.Groups {
			t := byName[g.Name]
			if t == nil {
				t = &GroupTotal{Name: g.Name}
				byName[g.Name] = t
				idle[g.Name] = map[string]time.Duration{}
			}
			if g.Lag < 0 {
				t.LagUnknown++
			} else {
				t.Lag += g.Lag
			}
			t.Pending += g.Pending
			for _, c := range g.Consumers {
				if cur, ok := idle[g.Name][c.Name]; !ok || c.Idle < cur {
					idle[g.Name][c.Name] = c.Idle
				}
			}
		}
	}
	out := make([]GroupTotal, 0, len(byName))
	for name, t := range byName {
		t.Consumers = len(idle[name])
		for _, d := range idle[name] {
			t.MaxIdle = max(t.MaxIdle, d)
		}
		out = append(out, *t)
	}
	slices.SortFunc(out, func(a, b GroupTotal) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// RemovedConsumer is a consumer RemoveIdleConsumers deleted.
type RemovedConsumer struct {
	Stream, Group, Consumer string
	Idle                    time.Duration
}

// removeConsumerScript deletes a consumer only if it still holds no pending
// entries and has been idle at least ARGV[3] ms, checked in the same atomic
// step: XGROUP DELCONSUMER drops a consumer's pending entries from the group,
// and an entry nobody holds is never claimed again (the message loss of
// watermill-redisstream #24).
//
// KEYS[1] stream; ARGV group, consumer, min idle ms.
var removeConsumerScript = rueidis.NewLuaScript(`
local cs = redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])
for _, c in ipairs(cs) do
  local f = {}
  for i = 1, #c, 2 do f[c[i]] = c[i + 1] end
  if f['name'] == ARGV[2] then
    if f['pending'] ~= 0 or f['idle'] < tonumber(ARGV[3]) then return 0 end
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])
    return 1
  end
end
return 0
`)

// RemoveIdleConsumers deletes, on every partition of the given streams, the
// consumers idle for at least idle that hold no pending entries and whose
// process is not running (alive.go). Consumers of
// dead processes otherwise stay forever (Redis never removes them) and make
// `status` unreadable. One that holds pending entries is always kept: another
// consumer claims those entries first, and it goes on a later run.
func RemoveIdleConsumers(ctx context.Context, c rueidis.Client, keys Keys, idle time.Duration, streams ...string) ([]RemovedConsumer, error) {
	st, err := Status(ctx, c, keys, streams...)
	if err != nil {
		return nil, err
	}
	var removed []RemovedConsumer
	for _, s := range st {
		running := map[string]bool{} // group/consumer whose process beats (alive.go)
		for _, g := range s.Groups {
			for _, p := range g.Processes {
				running[g.Name+"/"+p.Consumer] = p.Running
			}
		}
		for _, ps := range s.Partitions {
			for _, g := range ps.Groups {
				for _, cs := range g.Consumers {
					// A running process blocked on a quiet stream ages
					// like a dead one on Redis 7.0: its beats say it is not.
					if cs.Pending != 0 || cs.Idle < idle || running[g.Name+"/"+cs.Name] {
						continue
					}
					ok, err := RemoveConsumerIfIdle(ctx, c, ps.Key, g.Name, cs.Name, idle)
					if err != nil {
						return removed, err
					}
					if ok {
						removed = append(removed, RemovedConsumer{Stream: ps.Key, Group: g.Name, Consumer: cs.Name, Idle: cs.Idle})
					}
				}
			}
		}
	}
	return removed, nil
}

// RemoveConsumerIfIdle deletes one consumer of a group on one stream key if,
// at that instant, it holds no pending entries and has been idle at least
// idle. It reports whether it did.
func RemoveConsumerIfIdle(ctx context.Context, c rueidis.Client, stream, group, consumer string, idle time.Duration) (bool, error) {
	n, err := removeConsumerScript.Exec(ctx, c, []string{stream},
		[]string{group, consumer, strconv.FormatInt(idle.Milliseconds(), 10)}).AsInt64()
	if err != nil {
		return false, fmt.Errorf("remove consumer %s of %s on %s: %w", consumer, group, stream, err)
	}
	return n == 1, nil
}
