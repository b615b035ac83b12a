package campaign

import "github.com/pushpipe/pushpipe/pipeline"

// A campaign's expected finish went by its average since the first send,
// which carries everything since: a capped campaign's slow start kept it
// late for minutes, and a provider slowing down halfway moved it only as
// the new rate outweighed the old. Deliver keeps, per partition, the two
// latest readings of its targets done (pipeline.StatDonePace); the pace
// since the latest of the partitions' older readings is what the campaign
// does now.
//
// Each partition's own pace since its own older reading, summed, was not:
// a partition takes a reading only as it counts targets done, so one that
// did nothing since (its share over, or its entries waiting for a slot
// behind the others') kept the targets of its last burst, over a span that
// grew only with the clock. After a provider slowed to 4 sends a second,
// the bursts of the partitions waiting their turn summed to more than
// that for twenty seconds, with readings taken every second.

// partPace is what one partition holds of a campaign's recent pace.
type partPace struct {
	pace    string // pipeline.StatDonePace, "" when absent
	firstMs int64  // its first send, 0 before any
	lastMs  int64  // its last target done (pipeline.StatDoneMs), 0 before any
	done    int64  // its targets done
}

// recentPace is the targets done per second lately, over the partitions:
// those done since start, over the time from start until latest, the
// campaign's last target done (StatDoneMs, the readings' clock). start is
// the latest of the partitions' older readings, so the pace spans one to
// two DonePaceEvery; a partition's targets done at start are read off its
// readings and its last target done, as done at an even pace between them
// (none since the last). A partition idle since start adds nothing.
//
// Until a partition holds two readings, a young campaign's, each partition
// adds its own: its targets done since its older reading (or its first send),
// over the time from then until latest. A partition whose share is over
// adds less as the campaign goes on; one that started sending under a
// second ago adds nothing yet (its few sends over a sliver of time say
// little, and it must not void the others').
//
// It is 0, unknown, when a partition with targets done has no reading (done
// by a deliver before the readings, in a rolling upgrade) or no partition
// spans a second: the caller then keeps the average.
func recentPace(parts []partPace, latest int64) float64 {
	curves := make([][]pipeline.DoneReading, 0, len(parts))
	var start int64 // the latest older reading of a partition with two; 0 while none has
	for _, p := range parts {
		if p.done == 0 {
			continue
		}
		newer, older, two, ok := pipeline.ParseDoneReadings(p.pace)
		if !ok {
			return 0
		}
		// What the partition's targets done were at the times it says:
		// from its older reading (or its first send, done none), through
		// its newer one, to its last target done.
		curve := []pipeline.DoneReading{older}
		if !two && p.firstMs > 0 && p.firstMs < older.Ms {
			curve[0] = pipeline.DoneReading{Ms: p.firstMs}
		}
		if two {
			curve = append(curve, newer)
			start = max(start, older.Ms)
		}
		if last := curve[len(curve)-1]; p.done > last.Done {
			curve = append(curve, pipeline.DoneReading{Ms: max(p.lastMs, last.Ms), Done: p.done})
		}
		curves = append(curves, curve)
	}
	if start > 0 && latest-start >= 1000 {
		var done int64
		for _, c := range curves {
			done += c[len(c)-1].Done - doneAt(c, start)
		}
		return float64(done) * 1000 / float64(latest-start)
	}
	var pace float64
	for _, c := range curves {
		span := latest - c[0].Ms
		if span < 1000 {
			continue
		}
		pace += float64(c[len(c)-1].Done-c[0].Done) * 1000 / float64(span)
	}
	return pace
}

// doneAt reads a partition's targets done at ms off its curve (readings
// in time order), as done at an even pace between two of them: its first
// one's before it, its last one's after.
func doneAt(curve []pipeline.DoneReading, ms int64) int64 {
	if ms <= curve[0].Ms {
		return curve[0].Done
	}
	for i := 1; i < len(curve); i++ {
		a, b := curve[i-1], curve[i]
		if ms < b.Ms {
			return a.Done + (b.Done-a.Done)*(ms-a.Ms)/(b.Ms-a.Ms)
		}
	}
	return curve[len(curve)-1].Done
}
