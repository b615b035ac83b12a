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
// hash-table insert. A direct message's marks are fields of one hash
// instead (pipeline.MessageMarkBits says why), its done users by user id.
const chunkBits = pipeline.MarkChunkBits

// markSet is where one kind of marks (sent devices, done users) of one
// campaign lives in a partition: chunk keys, or fields of one hash.
type markSet struct {
	bits uint
	key  func(chunk int64) string // a campaign's: the chunk's bitmap key
	hash string                   // a message's: the hash; fields are chunks
}

func (m markSet) chunk(id int64) int64  { return id >> m.bits }
func (m markSet) offset(id int64) int64 { return id & (1<<m.bits - 1) }

// ref is where a chunk's bits are: a bitmap key and "", or a hash and its
// field.
func (m markSet) ref(chunk int64) (key, field string) {
	if m.hash != "" {
		return m.hash, strconv.FormatInt(chunk, 10)
	}
	return m.key(chunk), ""
}

// sentMarks are c's sent marks in partition p.
func (h *Handler) sentMarks(p int, c *campaign) markSet {
	if c.message {
		return markSet{bits: pipeline.MessageMarkBits, hash: h.keys.SentMarks(p, c.ID)}
	}
	return markSet{bits: chunkBits, key: func(chunk int64) string { return h.keys.SentChunk(p, c.ID, chunk) }}
}

// doneMarks are c's done users in partition p, indexed by doneIndex.
func (h *Handler) doneMarks(p int, c *campaign) markSet {
	if c.message {
		return markSet{bits: pipeline.MessageMarkBits, hash: h.keys.DoneMarks(p, c.ID)}
	}
	return markSet{bits: chunkBits, key: func(chunk int64) string { return h.keys.DoneChunk(p, c.ID, chunk) }}
}

// doneIndex is a user's bit among c's done users: a campaign's users of a
// partition are packed (UserOffset); a message's are its own (few, spread
// out, and not necessarily of the partition's buckets).
func (h *Handler) doneIndex(c *campaign, user int64) int64 {
	if c.message {
		return user
	}
	return h.keys.UserOffset(user)
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
// chunk, its key's index (index(key)), its field ("" for a bitmap key), the
// chunk's first id, the count, then the ids; a script finds an id's bit at
// id minus the first id. It returns args and the number of groups.
func appendGroups(args []string, ids []int64, m markSet, index func(key string) string) ([]string, int) {
	n := 0
	for i := 0; i < len(ids); {
		chunk := m.chunk(ids[i])
		j := i
		for j < len(ids) && m.chunk(ids[j]) == chunk {
			j++
		}
		key, field := m.ref(chunk)
		args = append(args, index(key), field, strconv.FormatInt(chunk<<m.bits, 10), strconv.Itoa(j-i))
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
// per run of bytes of a chunk, its key's index (index(key)), its field (""
// for a bitmap key), the chunk's first id, the run's first byte, and the run
// as a mask with the ids' bits set (most significant bit first, as Redis
// numbers bits). A script ORs the mask in with one read and one write, a
// byte per 8 ids instead of a command argument per id. It returns args and
// the number of groups.
func appendMasks(args []string, ids []int64, m markSet, index func(key string) string) ([]string, int) {
	n := 0
	var mask []byte
	for i := 0; i < len(ids); {
		chunk := m.chunk(ids[i])
		first := m.offset(ids[i]) / 8
		mask = mask[:0]
		for ; i < len(ids) && m.chunk(ids[i]) == chunk; i++ {
			off := m.offset(ids[i])
			b := off/8 - first
			if b >= maskMax || b >= int64(len(mask))+maskGap {
				break
			}
			for int64(len(mask)) <= b {
				mask = append(mask, 0)
			}
			mask[b] |= 0x80 >> (off % 8)
		}
		key, field := m.ref(chunk)
		args = append(args, index(key), field, strconv.FormatInt(chunk<<m.bits, 10), strconv.FormatInt(first, 10), string(mask))
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
