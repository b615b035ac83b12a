package webhook

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/rueidis"

	"github.com/pushpipe/pushpipe/pipeline"
)

// Failure is a receiver failing now, as its webhook processes record it
// (Keys.ReceiverFailing): `pushpipe status` showed such a receiver's group
// "running", its events pending and then dead-lettered, with nothing
// saying why but the stage's log.
type Failure struct {
	Group  string    `json:"group"`
	Since  time.Time `json:"since"`
	Failed int       `json:"failed_deliveries"`
	Err    string    `json:"last_error"`
}

// recordTimeout bounds the Redis write of a failure's start or end: it is
// made while the handlers wait on the failing tracker's lock.
const recordTimeout = 2 * time.Second

// recordFailure writes group's failure; an error is the caller's to log at
// most (the log says the failure anyway).
func recordFailure(c rueidis.Client, keys pipeline.Keys, f Failure) error {
	ctx, cancel := context.WithTimeout(context.Background(), recordTimeout)
	defer cancel()
	v := strconv.FormatInt(f.Since.UnixMilli(), 10) + "," + strconv.Itoa(f.Failed) + "," + f.Err
	return c.Do(ctx, c.B().Hset().Key(keys.ReceiverFailing()).FieldValue().FieldValue(f.Group, v).Build()).Error()
}

// clearFailure removes group's failure: its receiver accepts again.
func clearFailure(c rueidis.Client, keys pipeline.Keys, group string) error {
	ctx, cancel := context.WithTimeout(context.Background(), recordTimeout)
	defer cancel()
	return c.Do(ctx, c.B().Hdel().Key(keys.ReceiverFailing()).Field(group).Build()).Error()
}

// Failures reads the receivers failing now, by group: what status shows
// beside the groups still running (a stopped group's record is stale: its
// process died failing).
func Failures(ctx context.Context, c rueidis.Client, keys pipeline.Keys) (map[string]Failure, error) {
	m, err := c.Do(ctx, c.B().Hgetall().Key(keys.ReceiverFailing()).Build()).AsStrMap()
	if err != nil {
		return nil, fmt.Errorf("receivers failing: %w", err)
	}
	out := make(map[string]Failure, len(m))
	var errs []error
	for group, v := range m {
		since, rest, _ := strings.Cut(v, ",")
		failed, last, _ := strings.Cut(rest, ",")
		ms, err1 := strconv.ParseInt(since, 10, 64)
		n, err2 := strconv.Atoi(failed)
		if err1 != nil || err2 != nil {
			errs = append(errs, fmt.Errorf("receiver failing %s: unreadable %q", group, v))
			continue
		}
		out[group] = Failure{Group: group, Since: time.UnixMilli(ms).UTC(), Failed: n, Err: last}
	}
	return out, errors.Join(errs...)
}
