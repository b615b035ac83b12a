package deliver

import (
	"strconv"

	"github.com/pushpipe/pushpipe/pipeline"
)

// A campaign's sent marks (a bit per device id) and done users (a bit per
// user, by its offset within the partition, pipeline.Keys.UserOffset) are
// Redis bitmaps in chunks of 2^chunkBits bits, one key each
// (Keys.SentChunk, Keys.DoneChunk), all under the partition's hash tag. A
// bit costs an eighth of a byte where a set member cost ~60 bytes and a
// hash-table insert.
const chunkBits = pipeline.MarkChunkBits

// chunkOf is the chunk an id's bit lives in.
func chunkOf(id int64) int64 { return id >> chunkBits }

// sentChunk is the key of a chunk of a campaign's sent marks in partition p.
func (h *Handler) sentChunk(p int, campaign string, chunk int64) string {
	return h.keys.SentChunk(p, campaign, chunk)
}

// doneChunk is the key of a chunk of a campaign's done users in partition p.
func (h *Handler) doneChunk(p int, campaign string, chunk int64) string {
	return h.keys.DoneChunk(p, campaign, chunk)
}

// scriptKeys collects a script's KEYS and hands out their 1-based indexes
// as arguments, each key once.
type scriptKeys struct {
	keys []string
	idx  map[string]string
}

func newScriptKeys(fixed ...string) *scriptKeys {
	return &scriptKeys{keys: fixed, idx: map[string]string{}}
}

// index is key's index in KEYS, added if new.
func (s *scriptKeys) index(key string) string {
	if i, ok := s.idx[key]; ok {
		return i
	}
	s.keys = append(s.keys, key)
	i := strconv.Itoa(len(s.keys))
	s.idx[key] = i
	return i
}

// appendGroups appends ids (sorted ascending) as the scripts' groups: per
// chunk, its key's index (key(chunk)), the count, then the ids; a script
// finds an id's bit at id mod 2^chunkBits. It returns args and the number
// of groups.
func appendGroups(args []string, ids []int64, key func(chunk int64) string) ([]string, int) {
	n := 0
	for i := 0; i < len(ids); {
		chunk := chunkOf(ids[i])
		j := i
		for j < len(ids) && chunkOf(ids[j]) == chunk {
			j++
		}
		args = append(args, key(chunk), strconv.Itoa(j-i))
		for _, id := range ids[i:j] {
			args = append(args, strconv.FormatInt(id, 10))
		}
		n++
		i = j
	}
	return args, n
}

// Mask groups cut a chunk's ids into runs of bytes: a run ends where the
// next id is more than maskGap bytes on, or the run reaches maskMax bytes.
const (
	maskGap = 32
	maskMax = 1024
)

// appendMasks appends ids (sorted ascending) as the scripts' mask groups:
// per run of bytes of a chunk, its key's index (key(chunk)), the chunk, the
// run's first byte, and the run as a mask with the ids' bits set (most
// significant bit first, as Redis numbers bits). A script ORs the mask in
// with one GETRANGE and one SETRANGE, a byte per 8 ids instead of a command
// argument per id. It returns args and the number of groups.
func appendMasks(args []string, ids []int64, key func(chunk int64) string) ([]string, int) {
	n := 0
	var mask []byte
	for i := 0; i < len(ids); {
		chunk := chunkOf(ids[i])
		first := ids[i] & (1<<chunkBits - 1) / 8
		mask = mask[:0]
		for ; i < len(ids) && chunkOf(ids[i]) == chunk; i++ {
			off := ids[i] & (1<<chunkBits - 1)
			b := off/8 - first
			if b >= maskMax || b >= int64(len(mask))+maskGap {
				break
			}
			for int64(len(mask)) <= b {
				mask = append(mask, 0)
			}
			mask[b] |= 0x80 >> (off % 8)
		}
		args = append(args, key(chunk), strconv.FormatInt(chunk, 10), strconv.FormatInt(first, 10), string(mask))
		n++
	}
	return args, n
}

// bitSet reports whether bit off of a chunk is set, given the chunk's bytes
// from byte first on (GETRANGE); Redis numbers bits from the most
// significant bit of byte 0.
func bitSet(bytes string, first int64, off int64) bool {
	i := off/8 - first
	return i >= 0 && i < int64(len(bytes)) && bytes[i]&(0x80>>(off%8)) != 0
}
