package deliver

import "slices"

// A forced target (replay --force) is sent to every device, marked or not.
// Its round marks every device it gets an answer for, as any round does, so
// what it leaves to retry is forced device by device
// (pipeline.FieldForceDevices): forcing the retry whole would send a third
// time to the devices the provider took, and a plain retry would skip the
// ones it failed, marked by the send before the replay.

// forces reports whether device id is to be sent even if marked.
func (t target) forces(id int64) bool {
	if t.force || len(t.forced) == 0 { // one check a device on every round
		return t.force
	}
	_, ok := slices.BinarySearch(t.forced, id)
	return ok
}

// appendForced appends to ids those of retried, the devices t's round
// failed transiently, if t's round was forced for them.
func (t target) appendForced(ids []int64, retried []device) []int64 {
	if !t.force && len(t.forced) == 0 {
		return ids
	}
	for _, d := range retried {
		if t.forces(d.id) {
			ids = append(ids, d.id)
		}
	}
	return ids
}

// alsoForced is t's forced devices and ids, in a new list (t's may be its
// entry's, shared with the entry's other targets).
func (t target) alsoForced(ids []int64) []int64 {
	return ascending(append(slices.Clip(t.forced), ids...))
}

// ascending sorts ids and drops repeats, as pipeline.FieldForceDevices
// wants them.
func ascending(ids []int64) []int64 {
	slices.Sort(ids)
	return slices.Compact(ids)
}
