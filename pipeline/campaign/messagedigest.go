package campaign

import (
	"crypto/sha256"
	"encoding/binary"
)

// recipientsDigest is what a message's row keeps of its recipients
// (campaigns.recipients_digest, migration 00014): SHA-256 over its
// normalized users ("u", then each id as 8 bytes big-endian, ascending) or
// raw tokens ("t", then each stored "platform token" with its length, in
// the order that numbers them). A retry must repeat the list exactly, and
// nothing else reads it: deliver takes users and tokens from the stream
// entries, so the row need not carry 50 ids of a chat message (~400 of its
// ~670 bytes) for a day only to be compared. The prefix keeps a users list
// and a tokens list apart whatever their bytes; the lengths keep one token
// list from reading as another.
func recipientsDigest(users []int64, tokens []string) []byte {
	h := sha256.New()
	var b [8]byte
	if tokens != nil {
		h.Write([]byte{'t'})
		for _, t := range tokens {
			h.Write(binary.BigEndian.AppendUint64(b[:0], uint64(len(t))))
			h.Write([]byte(t))
		}
		return h.Sum(nil)
	}
	h.Write([]byte{'u'})
	for _, u := range users {
		h.Write(binary.BigEndian.AppendUint64(b[:0], uint64(u)))
	}
	return h.Sum(nil)
}
