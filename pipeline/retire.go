package pipeline

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/rueidis"
)

// A webhook receiver is a consumer group on results, and a group outlives its
// processes: streams are trimmed only below what every group has read, so a
// receiver retired for good kept every result event from then on in Redis,
// until Redis ran out of memory. RetireGroup removes such a group.

// ErrGroupRunning is RetireGroup refusing a group one of whose processes
// reports running.
var ErrGroupRunning = errors.New("a process of the group is running")

// Retired is what RetireGroup removed: the group's partitions, and the
// entries it had not read or acknowledged, which no longer hold the trimmer.
type Retired struct {
	Partitions int
	Unread     int64 // lag where Redis knows it, plus pending
	// StillRunning is a process of the group reporting running as it
	// went (--force): it reads nothing more and must be stopped for good.
	StillRunning bool
}

// RetireGroup destroys group on every partition of the logical stream, with
// its pending entries and its consumers. A stage's own group is refused:
// retiring it would leave its stream unread (but the webhook's, an optional
// stage whose default group is one receiver's). So is a group a running
// process reports for (ErrGroupRunning) unless force: that process finds
// its group gone and, the group marked retired (Keys.Retired), reads
// nothing more rather than recreate it (Runner.recreate). A group found
// nowhere is an error naming the stream's groups.
func RetireGroup(ctx context.Context, c rueidis.Client, keys Keys, stream, group string, force bool) (Retired, error) {
	if def, ok := StageNamed(group); ok && def.Stream == stream && !def.Optional {
		return Retired{}, fmt.Errorf("%s is the %s stage's own group: it would leave %s unread", group, group, stream)
	}
	down, err := NotRunning(ctx, c, keys, group)
	if err != nil {
		return Retired{}, err
	}
	running := len(down) == 0
	if running && !force {
		return Retired{}, fmt.Errorf("retire %s: %w (pushpipe status shows it): stop it first, or give --force", group, ErrGroupRunning)
	}
	streams := keys.Streams(stream)
	groups, err := StreamGroups(ctx, c, streams)
	if err != nil {
		return Retired{}, err
	}
	var names []string
	for _, gs := range groups {
		for _, g := range gs {
			if !slices.Contains(names, g.Name) {
				names = append(names, g.Name)
			}
		}
	}
	if !slices.Contains(names, group) {
		slices.Sort(names)
		return Retired{}, fmt.Errorf("no group %s reads %s (its groups: %s)", group, stream, cmp.Or(strings.Join(names, ", "), "none"))
	}
	// Said before the group goes: a process of it still running (--force)
	// finds the group missing, and would recreate it from the oldest
	// entry, POSTing every event results keeps again, unless it knows.
	mark := c.B().Hset().Key(keys.Retired()).FieldValue().FieldValue(group, strconv.FormatInt(time.Now().UnixMilli(), 10)).Build()
	if err := c.Do(ctx, mark).Error(); err != nil {
		return Retired{}, fmt.Errorf("retire %s: %w", group, err)
	}
	r := Retired{StillRunning: running}
	for i, gs := range groups {
		for _, g := range gs {
			if g.Name != group {
				continue
			}
			if err := c.Do(ctx, c.B().XgroupDestroy().Key(streams[i]).Group(group).Build()).Error(); err != nil {
				return r, fmt.Errorf("retire %s on %s: %w", group, streams[i], err)
			}
			r.Partitions++
			r.Unread += max(g.Lag, 0) + g.Pending
		}
	}
	return r, nil
}

// RetiredStillRunning are the groups RetireGroup --force removed while a
// process of theirs ran, and whose process still reports running: it reads
// nothing and answers not ready, waiting to be stopped for good
// (Runner.recreate), and only `pushpipe status` can name it, the group
// being gone from the streams it lists.
func RetiredStillRunning(ctx context.Context, c rueidis.Client, keys Keys) ([]string, error) {
	groups, err := c.Do(ctx, c.B().Hkeys().Key(keys.Retired()).Build()).AsStrSlice()
	if err != nil {
		return nil, fmt.Errorf("retired groups: %w", err)
	}
	if len(groups) == 0 {
		return nil, nil
	}
	alive, err := readAlive(ctx, c, keys, groups)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, g := range groups {
		t := GroupTotal{Name: g, Lag: -1}
		t.withLiveness(alive[g])
		if t.State != StateStopped {
			out = append(out, g)
		}
	}
	slices.Sort(out)
	return out, nil
}

// ErrNotRetired is UnretireGroup given a group RetireGroup did not retire.
var ErrNotRetired = errors.New("not retired")

// UnretireGroup brings a retired group back on every partition of the
// logical stream, from at: "$" for the entries written from now on, "0"
// for every entry the stream keeps. The groups are made before the mark
// goes, in one pipelined call, so a process of the group idle meanwhile
// (Runner.createGroups, Runner.recreate) finds them where they were put
// and reads on from there (Runner.unretired), rather than recreate them
// from the oldest entry. A group never retired is ErrNotRetired, naming the
// retired ones: a mistyped name would otherwise have made a new group,
// holding results for a receiver that does not exist.
func UnretireGroup(ctx context.Context, c rueidis.Client, keys Keys, stream, group, at string) (partitions int, err error) {
	retired, err := c.Do(ctx, c.B().Hkeys().Key(keys.Retired()).Build()).AsStrSlice()
	if err != nil {
		return 0, fmt.Errorf("unretire %s: %w", group, err)
	}
	if !slices.Contains(retired, group) {
		slices.Sort(retired)
		return 0, fmt.Errorf("%s is %w (retired groups: %s)", group, ErrNotRetired, cmp.Or(strings.Join(retired, ", "), "none"))
	}
	streams := keys.Streams(stream)
	cmds := make(rueidis.Commands, len(streams))
	for i, s := range streams {
		cmds[i] = c.B().XgroupCreate().Key(s).Group(group).Id(at).Mkstream().Build()
	}
	for i, res := range c.DoMulti(ctx, cmds...) {
		if err := res.Error(); err != nil {
			// A process started before this group was retired may have
			// recreated it on a partition meanwhile: it is there.
			if re, ok := rueidis.IsRedisErr(err); !ok || !re.IsBusyGroup() {
				return 0, fmt.Errorf("unretire %s on %s: %w", group, streams[i], err)
			}
		}
	}
	if err := c.Do(ctx, c.B().Hdel().Key(keys.Retired()).Field(group).Build()).Error(); err != nil {
		return 0, fmt.Errorf("unretire %s: %w", group, err)
	}
	return len(streams), nil
}
