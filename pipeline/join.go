package pipeline

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/redis/rueidis"
)

// join creates the group on stream, beginning at id at if it is new, and
// this runner's consumer in it.
// Redis 7.0 creates a consumer only when a read or claim hands it entries,
// so a stage blocked on a quiet stream was not listed at all: status showed
// a running ingest with 0 consumers until its first device.
func (r *Runner) join(ctx context.Context, stream, at string) error {
	if err := createGroupAt(ctx, r.rdb, stream, r.opts.Group, at); err != nil {
		return err
	}
	cmd := r.rdb.B().XgroupCreateconsumer().Key(stream).Group(r.opts.Group).Consumer(r.opts.Consumer).Build()
	if err := r.rdb.Do(ctx, cmd).Error(); err != nil {
		return fmt.Errorf("create consumer %s in group %s on %s: %w", r.opts.Consumer, r.opts.Group, stream, err)
	}
	return nil
}

// CreateGroup creates a consumer group at id 0 (never "$": entries written
// before the first consumer started must not be skipped), with the stream.
func CreateGroup(ctx context.Context, c rueidis.Client, stream, group string) error {
	return createGroupAt(ctx, c, stream, group, "0")
}

// createGroupAt is CreateGroup beginning at id at ("0" if empty) when the
// group is new; an existing group is left where it is.
func createGroupAt(ctx context.Context, c rueidis.Client, stream, group, at string) error {
	if at == "" {
		at = "0"
	}
	err := c.Do(ctx, c.B().XgroupCreate().Key(stream).Group(group).Id(at).Mkstream().Build()).Error()
	if err != nil {
		if re, ok := rueidis.IsRedisErr(err); ok && re.IsBusyGroup() {
			return nil
		}
		return fmt.Errorf("create group %s on %s: %w", group, stream, err)
	}
	return nil
}

// errRetired is a group `pushpipe results retire` removed while this
// process ran.
var errRetired = errors.New("consumer group retired")

// recreate makes the group again on stream after Redis lost it (a restart
// without persistence, a deleted stream), from its start, rather than
// stall; but not a group retired on purpose (RetireGroup --force while this
// process ran): recreated, it would read every entry the stream keeps
// again, a webhook receiver getting the whole retention window POSTed
// anew. Then the process reads nothing, says so once, reports Retired (its
// /readyz answers 503) and waits to be stopped. It does not exit: under a
// Deployment (or any supervisor that restarts) an exit is a restart, over
// and over. Idle and not ready, the pod shows 0/1 and stays put (its
// /healthz still answers: no liveness restart) until its Deployment is
// deleted; a process started meanwhile stays idle too (createGroups). When
// `pushpipe results unretire` brings the group back, its next read finds
// it (unretired).
func (r *Runner) recreate(ctx context.Context, stream string) error {
	retired, err := r.rdb.Do(ctx, r.rdb.B().Hexists().Key(r.keys.Retired()).Field(r.opts.Group).Build()).AsBool()
	if err != nil {
		return err
	}
	if retired {
		r.retired.Store(true)
		if r.retiredSaid.CompareAndSwap(false, true) {
			r.log.Error().Str("group", r.opts.Group).Msg("this process's consumer group was retired (pushpipe results retire): it reads nothing more; stop it " +
				"for good (delete its Deployment); restarted, it stays idle until `pushpipe results unretire " + r.opts.Group + "`. " +
				"Meanwhile a process that runs nothing else answers 503 on /readyz (group retired)")
		}
		return errRetired
	}
	if err := r.join(ctx, stream, "0"); err != nil {
		return err
	}
	r.retired.Store(false)
	r.retiredSaid.Store(false) // retired again later, it says so again
	r.log.Warn().Str("stream", stream).Msg("consumer group was missing, recreated")
	return nil
}

// unretired notes a read that found the group: a retired group is back
// (`pushpipe results unretire`), and the runner reads it as any other.
func (r *Runner) unretired() {
	if r.retired.Load() && r.retired.CompareAndSwap(true, false) {
		r.retiredSaid.Store(false) // retired again later, it says so again
		r.log.Info().Str("group", r.opts.Group).Msg("consumer group is back (pushpipe results unretire): reading")
	}
}

func isNoGroup(err error) bool {
	re, ok := rueidis.IsRedisErr(err)
	return ok && strings.HasPrefix(re.Error(), "NOGROUP")
}
