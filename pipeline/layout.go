package pipeline

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/redis/rueidis"
)

// Layout is the part of the key scheme every process of a deployment must
// share: a process that computes partitions differently writes entries to
// partitions no stage reads (a campaign "splitting" forever) or reads a
// user's marks under the wrong key. The first process to start records it
// (Keys.Layout); every later one, the CLI included, compares.
func (k Keys) layout() string {
	return fmt.Sprintf("partitions=%d bucket=%d", k.Partitions, k.bucket())
}

func (k Keys) bucket() int64 {
	b, _ := k.bucketOf(0)
	return b
}

// CheckLayout records this process's partition count and bucket under its
// prefix if nothing is recorded yet (set-if-absent: concurrent first
// starts agree on one), and returns an error saying what to set when the
// recorded layout differs. With record false (short-lived commands: send,
// status, replay, dlq), a prefix with no layout while other prefixes have
// one is refused too: PUSHPIPE_PREFIX is most likely wrong, and a command
// would act on an empty deployment. Where names the server for the error.
func CheckLayout(ctx context.Context, rdb rueidis.Client, k Keys, record bool, where string) error {
	want := k.layout()
	if !record {
		got, err := rdb.Do(ctx, rdb.B().Get().Key(k.Layout()).Build()).ToString()
		switch {
		case rueidis.IsRedisNil(err):
			others, err := rdb.Do(ctx, rdb.B().Hgetall().Key(k.Layouts()).Build()).AsStrMap()
			if err != nil {
				return fmt.Errorf("read the deployments at %s: %w", where, err)
			}
			delete(others, k.Prefix)
			if len(others) > 0 {
				var list []string
				for p, l := range others {
					list = append(list, fmt.Sprintf("%q (%s)", p, l))
				}
				slices.Sort(list)
				return fmt.Errorf("no pushpipe deployment with key prefix %q at Redis %s, only %s: set PUSHPIPE_PREFIX (or --prefix) to one of those",
					k.Prefix, where, strings.Join(list, ", "))
			}
		case err != nil:
			return fmt.Errorf("read the deployment layout at %s: %w", where, err)
		default:
			return layoutMismatch(k, got, where)
		}
	}
	got, err := rdb.Do(ctx, rdb.B().Set().Key(k.Layout()).Value(want).Nx().Get().Build()).ToString()
	if rueidis.IsRedisNil(err) {
		// Recorded now. The registry only helps find the right prefix.
		return rdb.Do(ctx, rdb.B().Hset().Key(k.Layouts()).FieldValue().FieldValue(k.Prefix, want).Build()).Error()
	}
	if err != nil {
		return fmt.Errorf("record the deployment layout at %s: %w", where, err)
	}
	return layoutMismatch(k, got, where)
}

func layoutMismatch(k Keys, got, where string) error {
	if got == k.layout() {
		return nil
	}
	var parts int
	var bucket int64
	if _, err := fmt.Sscanf(got, "partitions=%d bucket=%d", &parts, &bucket); err != nil {
		return fmt.Errorf("key %s at Redis %s holds %q, not a pushpipe layout", k.Layout(), where, got)
	}
	if parts != k.Partitions {
		return fmt.Errorf("the deployment with key prefix %q at %s has %d partitions, this process was started with %d: "+
			"set PUSHPIPE_PARTITIONS=%d (or --partitions %d); a different partition count needs its own PUSHPIPE_PREFIX",
			k.Prefix, where, parts, k.Partitions, parts, parts)
	}
	return fmt.Errorf("the deployment with key prefix %q at %s maps %d user ids per bucket, this build %d: run the same pushpipe version everywhere",
		k.Prefix, where, bucket, k.bucket())
}
