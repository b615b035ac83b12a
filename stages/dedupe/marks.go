package dedupe

import (
	"strconv"
)

// Users are marked per bucket of 1024 consecutive ids (see dedupeScript):
// the bucket is id >> bucketBits, the user's bit is id & (bucketSize-1).
const (
	bucketBits  = 10
	bucketSize  = 1 << bucketBits
	bitmapBytes = bucketSize / 8 // 128: a bucket's bitmap
	// listMax is the most users a bucket keeps as a list of 2-byte offsets:
	// at 64 the list would be as long as the bitmap.
	listMax = bitmapBytes/2 - 1
)

// appendFragments appends, per bucket of ids, the script's (field, fragment)
// pairs to args and returns them with the number of buckets. ids must be
// positive and strictly ascending (checkIDs).
func appendFragments(args []string, ids []int64) ([]string, int) {
	n := 0
	for i := 0; i < len(ids); {
		bucket := ids[i] >> bucketBits
		j := i
		for j < len(ids) && ids[j]>>bucketBits == bucket {
			j++
		}
		args = append(args, strconv.FormatInt(bucket, 10), fragment(ids[i:j]))
		n++
		i = j
	}
	return args, n
}

// fragment is one bucket's ids as a list of offsets (few ids) or a bitmap.
func fragment(ids []int64) string {
	if len(ids) <= listMax {
		b := make([]byte, 0, 2*len(ids))
		for _, id := range ids {
			off := id & (bucketSize - 1)
			b = append(b, byte(off>>8), byte(off))
		}
		return string(b)
	}
	var b [bitmapBytes]byte
	for _, id := range ids {
		off := id & (bucketSize - 1)
		b[off/8] |= 1 << (off % 8)
	}
	return string(b[:])
}
