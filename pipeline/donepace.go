package pipeline

import (
	"strconv"
	"strings"
	"time"
)

// DonePaceEvery is how often deliver takes a reading of a partition's
// targets done (StatDonePace): the pace read from the older of its two
// readings spans one to two of these. Long enough that a second's batch
// of marks is noise in it, short enough that a provider slowing down
// moves the expected finish within half a minute.
const DonePaceEvery = 10 * time.Second

// DoneReading is how many targets of a campaign were done in a partition
// (StatUsersDone) at Ms, unix ms of Redis's clock.
type DoneReading struct{ Ms, Done int64 }

// ParseDonePace decodes StatDonePace: its older reading, and whether it
// holds two (the older then at least DonePaceEvery old when the newer was
// taken). ok is false for a value it cannot read, or none: a deliver
// before the readings, or no target done yet.
func ParseDonePace(v string) (older DoneReading, two, ok bool) {
	f := strings.Split(v, ",")
	if len(f) != 2 && len(f) != 4 {
		return DoneReading{}, false, false
	}
	two = len(f) == 4
	if two {
		f = f[2:]
	}
	ms, err1 := strconv.ParseInt(f[0], 10, 64)
	done, err2 := strconv.ParseInt(f[1], 10, 64)
	if err1 != nil || err2 != nil {
		return DoneReading{}, false, false
	}
	return DoneReading{Ms: ms, Done: done}, two, true
}
