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
	_, older, two, ok = ParseDoneReadings(v)
	return older, two, ok
}

// ParseDoneReadings is ParseDonePace with the newer reading too (the
// only one, as older, when there is one).
func ParseDoneReadings(v string) (newer, older DoneReading, two, ok bool) {
	f := strings.Split(v, ",")
	if len(f) != 2 && len(f) != 4 {
		return DoneReading{}, DoneReading{}, false, false
	}
	var r [2]DoneReading
	for i := range len(f) / 2 {
		ms, err1 := strconv.ParseInt(f[2*i], 10, 64)
		done, err2 := strconv.ParseInt(f[2*i+1], 10, 64)
		if err1 != nil || err2 != nil {
			return DoneReading{}, DoneReading{}, false, false
		}
		r[i] = DoneReading{Ms: ms, Done: done}
	}
	if len(f) == 2 {
		return r[0], r[0], false, true
	}
	return r[0], r[1], true, true
}
