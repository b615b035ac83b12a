package pipeline

import (
	"context"
	"errors"
	"time"

	"github.com/redis/rueidis"
	"github.com/rs/zerolog"
)

// ResultsOf reads the result events of one campaign or direct message (id)
// written from from on, in the order written, until it has want of them
// (its devices that reached an outcome: sent + failed + invalid), has read
// readCap events in all, or has read what results held when it started.
// complete says it found want; a failed device's later events (a retry
// that sent it) are read as well. It is the console's list of what became of
// each device of a direct message: written within moments of the message,
// its events are found by reading from its creation, where a lookup by
// campaign in the whole stream (a day of every campaign's events) would
// read millions. readCap bounds a message that waited behind a large
// campaign, whose events fill the stream in between.
func ResultsOf(ctx context.Context, c rueidis.Client, keys Keys, id string, from time.Time, want, readCap int) (evs []ResultEvent, complete bool, err error) {
	if want <= 0 {
		return nil, true, nil
	}
	read, failed := 0, false
	err = TailResults(ctx, c, keys, TimeBound(from), false, zerolog.Nop(), func(ev ResultEvent) error {
		read++
		if ev.Campaign == id || ev.Message == id {
			evs = append(evs, ev)
			failed = failed || ev.Outcome == OutcomeFailed
		}
		// A failed device may be sent later (`pushpipe dlq retry`): its
		// two events count as one outcome in want, and stopping at want
		// would leave the device failed. Once a failure is found, it reads
		// on as far as it reads.
		if (len(evs) >= want && !failed) || read >= readCap {
			return errEnough
		}
		return nil
	}, nil)
	if errors.Is(err, errEnough) {
		err = nil
	}
	return evs, len(evs) >= want, err
}

// errEnough ends ResultsOf's tail: a condition, not a failure.
var errEnough = errors.New("enough events read")
