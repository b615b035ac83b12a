package resolve

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/redis/rueidis"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/prefs"
)

// probeSize is how many users' preference hashes one EXISTS probes. A user's
// hash exists only once they set preferences (pipeline/prefs; one who
// unmuted everything keeps a hash with only its version), so one EXISTS over
// a probe's keys answers "may anyone here mute anything" at the cost of a hash lookup per key in
// Redis, without a command per user. Only probes that find someone are read
// field by field.
const probeSize = 64

// muted tells, for each user, whether they muted the channel or the category
// (category "" mutes nothing). Two pipelined calls per range: the EXISTS
// probes, then one HMGET per user of the probes that found someone. All keys
// of a probe share a user partition's hash tag, so on a cluster each command
// stays in one slot and rueidis sends each node its share.
//
// The first call also asks whether each partition's preferences are in
// Redis at all (prefs.Loaded): after Redis lost its data they are not, and
// the partitions missing are loaded from PostgreSQL before reading again,
// so a muted user stays muted whatever happened to Redis.
func (h *Handler) muted(ctx context.Context, users []int64, channel, category string) ([]bool, error) {
	out, missing, err := h.readMuted(ctx, users, channel, category)
	if err != nil || len(missing) == 0 {
		return out, err
	}
	for _, p := range missing {
		n, err := prefs.Load(ctx, h.cfg.DB, h.cfg.Redis, h.cfg.Keys, p)
		if err != nil {
			return nil, err
		}
		h.cfg.Log.Info().Int("partition", p).Int("users", n).Msg("preferences loaded from PostgreSQL into Redis")
	}
	out, missing, err = h.readMuted(ctx, users, channel, category)
	if err == nil && len(missing) > 0 {
		err = fmt.Errorf("preferences of partitions %v not in Redis right after loading them", missing)
	}
	return out, err
}

// readMuted is muted from Redis alone, and the partitions whose
// preferences Redis does not hold (their answers are not to be trusted).
func (h *Handler) readMuted(ctx context.Context, users []int64, channel, category string) (out []bool, missing []int, err error) {
	out = make([]bool, len(users))
	if len(users) == 0 {
		return out, nil, nil
	}
	c, keys := h.cfg.Redis, h.cfg.Keys
	// probes: runs of users of one partition (users are ascending, and a
	// partition owns runs of keys.Bucket consecutive ids).
	type probe struct{ from, to int }
	var probes []probe
	var parts []int // the partitions of the probes
	var cmds rueidis.Commands
	names := make([]string, len(users))
	var buf []byte
	for i := 0; i < len(users); {
		p := keys.UserPartition(users[i])
		prefix, fast := h.prefsPrefix(p, users[i])
		j := i
		for j < len(users) && j-i < probeSize && keys.UserPartition(users[j]) == p {
			if fast {
				buf = strconv.AppendInt(append(buf[:0], prefix...), users[j], 10)
				names[j] = string(buf)
			} else {
				names[j] = keys.Preferences(users[j])
			}
			j++
		}
		probes = append(probes, probe{i, j})
		cmds = append(cmds, c.B().Exists().Key(names[i:j]...).Build())
		if len(parts) == 0 || parts[len(parts)-1] != p {
			parts = append(parts, p)
		}
		i = j
	}
	slices.Sort(parts)
	parts = slices.Compact(parts)
	for _, p := range parts {
		cmds = append(cmds, prefs.Loaded(c, keys, p))
	}
	var read []int
	for k, res := range c.DoMulti(ctx, cmds...) {
		n, err := res.AsInt64()
		if err != nil {
			return nil, nil, fmt.Errorf("preferences: %w", err)
		}
		if k >= len(probes) {
			if n == 0 {
				missing = append(missing, parts[k-len(probes)])
			}
			continue
		}
		if n > 0 {
			for i := probes[k].from; i < probes[k].to; i++ {
				read = append(read, i)
			}
		}
	}
	if len(read) == 0 || len(missing) > 0 {
		return out, missing, nil
	}
	fields := []string{pipeline.PrefChannel(channel)}
	if category != "" {
		fields = append(fields, pipeline.PrefCategory(category))
	}
	cmds = cmds[:0]
	for _, i := range read {
		cmds = append(cmds, c.B().Hmget().Key(names[i]).Field(fields...).Build())
	}
	for k, res := range c.DoMulti(ctx, cmds...) {
		vals, err := res.ToArray()
		if err != nil {
			return nil, nil, fmt.Errorf("preferences: %w", err)
		}
		for _, v := range vals {
			if !v.IsNil() {
				out[read[k]] = true
			}
		}
	}
	return out, nil, nil
}

// prefsPrefix is keys.Preferences(u) without u, for users of partition p:
// building a million key names is the resolve stage's hottest loop. A key
// scheme that does not end in the user id gets no shortcut (fast false).
func (h *Handler) prefsPrefix(p int, u int64) (prefix string, fast bool) {
	if pre := h.prefixes[p].Load(); pre != nil {
		return *pre, *pre != ""
	}
	full := h.cfg.Keys.Preferences(u)
	pre, ok := strings.CutSuffix(full, strconv.FormatInt(u, 10))
	if !ok {
		pre = ""
	}
	h.prefixes[p].Store(&pre)
	return pre, pre != ""
}
