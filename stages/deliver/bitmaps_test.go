package deliver

import (
	"slices"
	"strconv"
	"testing"
)

// appendMasks sets exactly the ids' bits, in runs that bitSet reads back.
func TestAppendMasks(t *testing.T) {
	ids := []int64{0, 1, 7, 8, 100, 101, 5000, 65535, 65536, 65537, 3 << 16, 3<<16 + 9000}
	for i := int64(0); i < 9000; i += 3 {
		ids = append(ids, 5<<16+i) // a run longer than maskMax bytes
	}
	slices.Sort(ids)
	ids = slices.Compact(ids)
	args, n := appendMasks(nil, ids, func(chunk int64) string { return "k" + strconv.FormatInt(chunk, 10) })
	if len(args) != 4*n {
		t.Fatalf("%d args for %d groups", len(args), n)
	}
	var got []int64
	for g := 0; g < n; g++ {
		key, chunkArg, firstArg, mask := args[4*g], args[4*g+1], args[4*g+2], args[4*g+3]
		chunk, _ := strconv.ParseInt(chunkArg, 10, 64)
		first, _ := strconv.ParseInt(firstArg, 10, 64)
		if key != "k"+chunkArg || len(mask) == 0 || len(mask) > maskMax {
			t.Fatalf("group %d: key %q chunk %d mask %d bytes", g, key, chunk, len(mask))
		}
		for off := first * 8; off < (first+int64(len(mask)))*8; off++ {
			if bitSet(mask, first, off) {
				got = append(got, chunk<<chunkBits+off)
			}
		}
	}
	if !slices.Equal(got, ids) {
		t.Fatalf("masks hold %d ids, want %d: %v", len(got), len(ids), got[:min(len(got), 20)])
	}
}
