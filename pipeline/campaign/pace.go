package campaign

import "github.com/pushpipe/pushpipe/pipeline"

// A campaign's expected finish went by its average since the first send,
// which carries everything since: a capped campaign's slow start kept it
// late for minutes, and a provider slowing down halfway moved it only as
// the new rate outweighed the old. Deliver keeps, per partition, the two
// latest readings of its targets done (pipeline.StatDonePace); the pace
// since the older one is what the campaign does now.

// partPace is what one partition holds of a campaign's recent pace.
type partPace struct {
	pace    string // pipeline.StatDonePace, "" when absent
	firstMs int64  // its first send, 0 before any
	done    int64  // its targets done
}

// recentPace is the targets done per second lately, over the partitions:
// each one's targets done since its older reading (or, until it has two,
// since its first send), over the time from then until latest, the
// campaign's last target done (StatDoneMs, the readings' clock). A
// partition whose share is over adds less as the campaign goes on; one
// that started sending under a second ago adds nothing yet (its few sends
// over a sliver of time say little, and it must not void the others'). It
// is 0, unknown, when a partition with targets done has no reading (done
// by a deliver before the readings, in a rolling upgrade) or no partition
// spans a second: the caller then keeps the average.
func recentPace(parts []partPace, latest int64) float64 {
	var pace float64
	for _, p := range parts {
		if p.done == 0 {
			continue
		}
		from, two, ok := pipeline.ParseDonePace(p.pace)
		if !ok {
			return 0
		}
		if !two && p.firstMs > 0 && p.firstMs < from.Ms {
			from = pipeline.DoneReading{Ms: p.firstMs}
		}
		span := latest - from.Ms
		if span < 1000 {
			continue
		}
		pace += float64(p.done-from.Done) * 1000 / float64(span)
	}
	return pace
}
