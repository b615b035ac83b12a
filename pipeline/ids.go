package pipeline

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// MaxIDsPerEntry caps a decoded id batch so a hostile or corrupt entry cannot
// make a stage allocate without bound.
const MaxIDsPerEntry = 1 << 20

// EncodeIDs packs user ids into a compact string: a varint count, then zigzag
// varint deltas. Ranges of sorted ids cost about one or two bytes per id, so a
// 1000-id entry is ~2 KB instead of the 8 KB of fixed-width integers.
func EncodeIDs(ids []int64) string {
	return string(AppendIDs(make([]byte, 0, 2+len(ids)*2), ids))
}

// AppendIDs is EncodeIDs into a caller's buffer.
func AppendIDs(buf []byte, ids []int64) []byte {
	buf = binary.AppendUvarint(buf, uint64(len(ids)))
	var prev int64
	for _, id := range ids {
		buf = binary.AppendVarint(buf, id-prev)
		prev = id
	}
	return buf
}

var errShortIDs = errors.New("id batch truncated")

// DecodeIDs reverses EncodeIDs. It rejects truncated, oversized or trailing
// data: entries come from a stream anyone with Redis access can write to.
func DecodeIDs(s string) ([]int64, error) {
	return AppendDecodedIDs(nil, s)
}

// AppendDecodedIDs is DecodeIDs appending into dst.
func AppendDecodedIDs(dst []int64, s string) ([]int64, error) {
	b := []byte(s)
	n, k := binary.Uvarint(b)
	if k <= 0 {
		return dst, fmt.Errorf("decode ids: %w", errShortIDs)
	}
	if n > MaxIDsPerEntry || n > uint64(len(b)) {
		return dst, fmt.Errorf("decode ids: count %d exceeds the entry's size", n)
	}
	b = b[k:]
	var prev int64
	for i := uint64(0); i < n; i++ {
		d, k := binary.Varint(b)
		if k <= 0 {
			return dst, fmt.Errorf("decode ids: id %d: %w", i, errShortIDs)
		}
		b = b[k:]
		prev += d
		dst = append(dst, prev)
	}
	if len(b) != 0 {
		return dst, fmt.Errorf("decode ids: %d trailing bytes", len(b))
	}
	return dst, nil
}
