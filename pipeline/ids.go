package pipeline

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
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

// AppendDecodedIDs is DecodeIDs appending into dst. It reads the string in
// place: entries are decoded on every hop, so no copy of the payload is made.
func AppendDecodedIDs(dst []int64, s string) ([]int64, error) {
	n, k := uvarint(s)
	if k <= 0 {
		return dst, fmt.Errorf("decode ids: %w", errShortIDs)
	}
	if n > MaxIDsPerEntry || n > uint64(len(s)) {
		return dst, fmt.Errorf("decode ids: count %d exceeds the entry's size", n)
	}
	s = s[k:]
	dst = slices.Grow(dst, int(n))
	var prev int64
	for i := uint64(0); i < n; i++ {
		u, k := uvarint(s)
		if k <= 0 {
			return dst, fmt.Errorf("decode ids: id %d: %w", i, errShortIDs)
		}
		s = s[k:]
		prev += int64(u>>1) ^ -int64(u&1) // zigzag, as binary.AppendVarint writes it
		dst = append(dst, prev)
	}
	if len(s) != 0 {
		return dst, fmt.Errorf("decode ids: %d trailing bytes", len(s))
	}
	return dst, nil
}

// uvarint is binary.Uvarint over a string: k is the bytes read, 0 when s is
// too short, negative on overflow.
func uvarint(s string) (uint64, int) {
	var x uint64
	var shift uint
	for i := 0; i < len(s) && i < binary.MaxVarintLen64; i++ {
		b := s[i]
		if b < 0x80 {
			if i == binary.MaxVarintLen64-1 && b > 1 {
				return 0, -(i + 1)
			}
			return x | uint64(b)<<shift, i + 1
		}
		x |= uint64(b&0x7f) << shift
		shift += 7
	}
	if len(s) >= binary.MaxVarintLen64 {
		return 0, -binary.MaxVarintLen64
	}
	return 0, 0
}
