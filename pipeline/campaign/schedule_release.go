package campaign

import (
	"context"
	"errors"
	"time"

	"github.com/redis/rueidis"

	"github.com/pushpipe/pushpipe/pipeline"
)

// TEMPORARY until pipeline/delay.go is on main: scheduling goes through
// pipeline.EmitAt (due entries released by split's runner) and a cancel
// takes the entry back with pipeline.Unschedule.

var errNoDelay = errors.New("scheduled campaigns need pipeline.EmitAt (the runtime's delayed emits)")

func emitAt(ctx context.Context, rdb rueidis.Client, at time.Time, msg pipeline.Message) error {
	return errNoDelay
}

func unschedule(ctx context.Context, rdb rueidis.Client, msg pipeline.Message) error {
	return nil
}
