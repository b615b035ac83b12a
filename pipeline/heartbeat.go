package pipeline

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/redis/rueidis"
)

// keepScript resets the idle time of the entries still pending for this
// consumer (XCLAIM to itself with min-idle 0, JUSTID so the delivery count
// stays), so no other consumer's XAUTOCLAIM takes over a batch that is merely
// slow. Entries another consumer already claimed are left alone: a plain
// XCLAIM would steal them back and both would handle them. Returns how many
// were kept.
//
// KEYS[1] input stream. ARGV: group, consumer, id1..idn in stream order.
var keepScript = rueidis.NewLuaScript(`
local group, consumer, n = ARGV[1], ARGV[2], #ARGV - 2
if n <= 0 then return 0 end
local want, owned = {}, {}
for i = 3, #ARGV do want[ARGV[i]] = true end
-- one XPENDING over the span, filtered to this consumer, usually finds all
for _, e in ipairs(redis.call('XPENDING', KEYS[1], group, ARGV[3], ARGV[#ARGV], 2 * n + 64, consumer)) do
  if want[e[1]] then owned[#owned + 1] = e[1]; want[e[1]] = nil end
end
if #owned < n then
  -- the span held more of our entries than the count: check the rest one by one
  for i = 3, #ARGV do
    if want[ARGV[i]] then
      local p = redis.call('XPENDING', KEYS[1], group, ARGV[i], ARGV[i], 1)
      if #p > 0 and p[1][2] == consumer then owned[#owned + 1] = ARGV[i] end
    end
  end
end
for s = 1, #owned, 1000 do
  local args = {KEYS[1], group, consumer, 0}
  for i = s, math.min(s + 999, #owned) do args[#args + 1] = owned[i] end
  args[#args + 1] = 'JUSTID'
  redis.call('XCLAIM', unpack(args))
end
return #owned
`)

// keepClaimed keeps b's entries claimed by this consumer every third of
// ClaimIdle from the moment the batch is read until the returned stop is
// called (process is done with it, or it is never handed to a worker). A
// live consumer keeps its work, however slow a handler or however long the
// batch waited for a free worker; only a dead or hung process's entries go
// idle and are claimed by another consumer.
func (r *Runner) keepClaimed(b *Batch) (stop func()) {
	ids := make([]string, len(b.Entries))
	for i, e := range b.Entries {
		ids[i] = e.ID
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(r.opts.ClaimIdle / 3)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if err := r.keep(ctx, b.Stream, ids); err != nil && ctx.Err() == nil {
				r.log.Warn().Err(err).Str("stream", b.Stream).Msg("could not keep the batch claimed")
			}
		}
	})
	var once sync.Once
	return func() { once.Do(func() { cancel(); wg.Wait() }) }
}

func (r *Runner) keep(ctx context.Context, stream string, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	args := make([]string, 0, 2+len(ids))
	args = append(args, r.opts.Group, r.opts.Consumer)
	args = append(args, ids...)
	if err := keepScript.Exec(ctx, r.rdb, []string{stream}, args).Error(); err != nil {
		return fmt.Errorf("keep %s claimed: %w", stream, err)
	}
	return nil
}

// handOff gives a read or claimed batch to a free worker, keeping it claimed
// while it waits and while it is processed. False if ctx ended first; the
// entries then stay pending, go idle and are claimed later.
func (r *Runner) handOff(ctx context.Context, work chan<- *Batch, b *Batch) bool {
	b.release = r.keepClaimed(b)
	select {
	case work <- b:
		return true
	case <-ctx.Done():
		b.release()
		return false
	}
}
