package pipeline

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
)

// ResultRecords builds the FieldEvents value of a results entry: one record
// per device, back to back, in a compact binary form. The results stream
// keeps every device's outcome, token included, for the retention window
// (12M devices of one campaign: 1.45 GB as text lines), and on the
// Redis side every byte is read from the socket, copied through the mark
// script and kept, so a byte less per event is a byte less of all of that;
// records are about half the size of the text lines they replace. A record:
//
//	flags    1 byte: outcome (bits 0-1: sent, failed, invalid), platform
//	         (bits 2-3: ios, android, named), token form (bits 4-5: bytes,
//	         lower-case hex, base64url)
//	device   zigzag varint: the device id less the previous record's
//	user     zigzag varint: the user id less the previous record's
//	platform when named: uvarint length, bytes
//	token    uvarint length in characters, then per form: the bytes; the
//	         hex digits' bytes (APNs tokens: 32 bytes, not 64); or the
//	         position of its one colon (uvarint, 0 when none, else index+1)
//	         and the other characters at 6 bits each (FCM tokens: 75
//	         bytes, not 100)
//	reason   uvarint length, bytes
//
// Ids are deltas because a mark call's devices are neighbours. Records hold
// any bytes (a reason is the provider's text), so nothing is escaped here;
// the JSON the webhook writes escapes them.
type ResultRecords struct {
	b            []byte
	device, user int64
}

// NewResultRecords returns a builder whose buffer holds capacity bytes
// before growing.
func NewResultRecords(capacity int) *ResultRecords {
	return &ResultRecords{b: make([]byte, 0, capacity)}
}

// ResultRecordsIn returns a builder that writes its records over buf from
// its start: a writer that builds a mark call's records thousands of times a
// second reuses one buffer rather than allocating each.
func ResultRecordsIn(buf []byte) *ResultRecords {
	return &ResultRecords{b: buf[:0]}
}

// ResultRecordMax is the most bytes Add writes for a device whose platform,
// token and reason have these lengths: a builder's capacity.
func ResultRecordMax(platform, token, reason int) int {
	return 1 + 4*binary.MaxVarintLen64 + platform + token + reason
}

// Token forms, bits 4-5 of a record's flags.
const (
	tokenBytes = iota
	tokenHex
	tokenBase64
)

var (
	outcomeCodes = [...]string{OutcomeSent, OutcomeFailed, OutcomeInvalid}
	// platformCodes are the platforms written as a code; any other is
	// written out (code 2).
	platformCodes = [...]string{"ios", "android"}
)

// b64Alphabet is base64url's: FCM registration tokens are made of it and
// one colon.
const b64Alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

var b64Codes = func() (c [256]byte) {
	for i := range c {
		c[i] = 0xff
	}
	for i := range len(b64Alphabet) {
		c[b64Alphabet[i]] = byte(i)
	}
	return c
}()

// Add appends a device's record. An outcome other than the three is
// written so that readers refuse the entry.
func (r *ResultRecords) Add(device, user int64, platform, outcome, token, reason string) {
	flags := byte(len(outcomeCodes)) // unknown: readers refuse it
	for i, o := range outcomeCodes {
		if o == outcome {
			flags = byte(i)
		}
	}
	pcode := len(platformCodes)
	for i, p := range platformCodes {
		if p == platform {
			pcode = i
		}
	}
	flags |= byte(pcode) << 2
	at := len(r.b)
	b := append(r.b, flags)
	b = binary.AppendVarint(b, device-r.device)
	b = binary.AppendVarint(b, user-r.user)
	r.device, r.user = device, user
	if pcode == len(platformCodes) {
		b = binary.AppendUvarint(b, uint64(len(platform)))
		b = append(b, platform...)
	}
	b = binary.AppendUvarint(b, uint64(len(token)))
	b, form := appendToken(b, token)
	b[at] |= form << 4
	b = binary.AppendUvarint(b, uint64(len(reason)))
	r.b = append(b, reason...)
}

// Bytes is the records so far.
func (r *ResultRecords) Bytes() []byte { return r.b }

// appendToken appends token in the shortest form that writes it back
// exactly (tried in turn: each gives up at its first foreign character),
// and says which. deliver writes one per device: a pass over an APNs token,
// two over an FCM one, 8 characters a step.
func appendToken(b []byte, token string) ([]byte, byte) {
	start := len(b)
	if len(token) > 0 && len(token)%2 == 0 {
		if out, ok := appendHex(b, token); ok {
			return out, tokenHex
		}
		b = b[:start]
	}
	if len(token) > 0 {
		if out, ok := appendBase64(b, token); ok {
			return out, tokenBase64
		}
		b = b[:start]
	}
	return append(b, token...), tokenBytes
}

// appendHex appends the bytes of an even number of lower-case hex digits.
func appendHex(b []byte, token string) ([]byte, bool) {
	for i := 0; i+1 < len(token); i += 2 {
		hi, lo := hexValues[token[i]], hexValues[token[i+1]]
		if (hi|lo)&0xf0 != 0 {
			return b, false
		}
		b = append(b, hi<<4|lo)
	}
	return b, true
}

// appendBase64 appends the colon's place (uvarint, 0 when none, else its
// index+1) and the token's other characters at 6 bits each, if it is
// base64url with at most one colon.
func appendBase64(b []byte, token string) ([]byte, bool) {
	colon := strings.IndexByte(token, ':')
	b = binary.AppendUvarint(b, uint64(colon+1))
	var bad byte
	if colon < 0 {
		b, bad = pack6(b, token)
	} else {
		if strings.IndexByte(token[colon+1:], ':') >= 0 {
			return b, false
		}
		// The colon's neighbours are one bit stream: join them first.
		var buf [256]byte
		chars := append(append(buf[:0], token[:colon]...), token[colon+1:]...)
		b, bad = pack6(b, chars)
	}
	return b, bad&0xc0 == 0
}

// pack6 appends s's base64url characters at 6 bits each, a bit stream most
// significant bit first whose last byte's low bits are zero, and returns
// the OR of their codes (0xff in it: s was not base64url).
func pack6[S ~string | ~[]byte](b []byte, s S) ([]byte, byte) {
	var bad byte
	i := 0
	for ; i+8 <= len(s); i += 8 {
		c0, c1, c2, c3 := b64Codes[s[i]], b64Codes[s[i+1]], b64Codes[s[i+2]], b64Codes[s[i+3]]
		c4, c5, c6, c7 := b64Codes[s[i+4]], b64Codes[s[i+5]], b64Codes[s[i+6]], b64Codes[s[i+7]]
		bad |= c0 | c1 | c2 | c3 | c4 | c5 | c6 | c7
		v := uint64(c0)<<58 | uint64(c1)<<52 | uint64(c2)<<46 | uint64(c3)<<40 |
			uint64(c4)<<34 | uint64(c5)<<28 | uint64(c6)<<22 | uint64(c7)<<16
		b = binary.BigEndian.AppendUint64(b, v)
		b = b[:len(b)-2] // 8 characters are 6 bytes
	}
	var acc uint64
	n := len(s) - i
	for ; i < len(s); i++ {
		c := b64Codes[s[i]]
		bad |= c
		acc = acc<<6 | uint64(c&63)
	}
	if n > 0 {
		size := (n*6 + 7) / 8
		acc <<= size*8 - n*6
		for k := size - 1; k >= 0; k-- {
			b = append(b, byte(acc>>(8*k)))
		}
	}
	return b, bad
}

// hexValues is a lower-case hex digit's value, 0xff for any other byte.
var hexValues = func() (v [256]byte) {
	for i := range v {
		v[i] = 0xff
	}
	for i, d := range "0123456789abcdef" {
		v[d] = byte(i)
	}
	return v
}()

// errShort is a record cut off before its end.
var errShort = errors.New("ends inside a record")

// recordReader reads the records of one entry.
type recordReader struct {
	s            string
	device, user int64
	tokens       []byte // every token decoded so far, back to back
}

// next reads a record: its device, user, platform, outcome, the token's
// end in r.tokens (it starts where the previous one ended) and reason.
func (r *recordReader) next() (device, user int64, platform, outcome string, tokenEnd int, reason string, err error) {
	if r.s == "" {
		return 0, 0, "", "", 0, "", errShort
	}
	flags := r.s[0]
	r.s = r.s[1:]
	oc, pc, form := int(flags&3), int(flags>>2&3), int(flags>>4&3)
	if oc >= len(outcomeCodes) || flags>>6 != 0 || form > tokenBase64 || pc > len(platformCodes) {
		return 0, 0, "", "", 0, "", fmt.Errorf("flags %#02x", flags)
	}
	outcome = outcomeCodes[oc]
	var dd, du int64
	if dd, err = r.varint(); err == nil {
		du, err = r.varint()
	}
	if err != nil {
		return 0, 0, "", "", 0, "", err
	}
	r.device, r.user = r.device+dd, r.user+du
	if pc < len(platformCodes) {
		platform = platformCodes[pc]
	} else if platform, err = r.bytes(); err != nil {
		return 0, 0, "", "", 0, "", err
	}
	if err := r.token(form); err != nil {
		return 0, 0, "", "", 0, "", err
	}
	if reason, err = r.bytes(); err != nil {
		return 0, 0, "", "", 0, "", err
	}
	return r.device, r.user, platform, outcome, len(r.tokens), reason, nil
}

// token decodes a token of the given form onto r.tokens.
func (r *recordReader) token(form int) error {
	n, err := r.uvarint()
	if err != nil {
		return err
	}
	switch form {
	case tokenBytes:
		if n > uint64(len(r.s)) {
			return errShort
		}
		r.tokens = append(r.tokens, r.s[:n]...)
		r.s = r.s[n:]
	case tokenHex:
		if n%2 != 0 || n/2 > uint64(len(r.s)) {
			return errShort
		}
		const digits = "0123456789abcdef"
		for i := range n / 2 {
			c := r.s[i]
			r.tokens = append(r.tokens, digits[c>>4], digits[c&15])
		}
		r.s = r.s[n/2:]
	case tokenBase64:
		colon, err := r.uvarint()
		if err != nil {
			return err
		}
		if colon > n {
			return fmt.Errorf("colon at %d of a %d-character token", colon, n)
		}
		chars := n
		if colon > 0 {
			chars--
		}
		if chars > uint64(len(r.s))*4/3+1 {
			return errShort // and chars*6 cannot overflow
		}
		size := (chars*6 + 7) / 8
		if size > uint64(len(r.s)) {
			return errShort
		}
		r.tokens = unpack6(r.tokens, r.s[:size], int(chars))
		if colon > 0 {
			at := len(r.tokens) - int(chars) + int(colon) - 1
			r.tokens = append(r.tokens, 0)
			copy(r.tokens[at+1:], r.tokens[at:])
			r.tokens[at] = ':'
		}
		r.s = r.s[size:]
	}
	return nil
}

// unpack6 appends the n base64url characters pack6 wrote as p.
func unpack6(b []byte, p string, n int) []byte {
	for ; n >= 8; n -= 8 {
		v := uint64(p[0])<<40 | uint64(p[1])<<32 | uint64(p[2])<<24 | uint64(p[3])<<16 | uint64(p[4])<<8 | uint64(p[5])
		b = append(b, b64Alphabet[v>>42&63], b64Alphabet[v>>36&63], b64Alphabet[v>>30&63], b64Alphabet[v>>24&63],
			b64Alphabet[v>>18&63], b64Alphabet[v>>12&63], b64Alphabet[v>>6&63], b64Alphabet[v&63])
		p = p[6:]
	}
	var acc uint64
	bits := 0
	for i := 0; n > 0; n-- {
		if bits < 6 {
			acc = acc<<8 | uint64(p[i])
			i++
			bits += 8
		}
		bits -= 6
		b = append(b, b64Alphabet[acc>>bits&63])
	}
	return b
}

// varint reads binary.AppendVarint's zigzag varint.
func (r *recordReader) varint() (int64, error) {
	u, err := r.uvarint()
	return int64(u>>1) ^ -int64(u&1), err
}

// uvarint reads binary.AppendUvarint's varint (binary.Uvarint, on a string).
func (r *recordReader) uvarint() (uint64, error) {
	var v uint64
	for i := 0; i < len(r.s) && i < binary.MaxVarintLen64; i++ {
		c := r.s[i]
		v |= uint64(c&0x7f) << (7 * i)
		if c < 0x80 {
			r.s = r.s[i+1:]
			return v, nil
		}
	}
	return 0, errShort
}

// bytes reads a uvarint length and that many bytes.
func (r *recordReader) bytes() (string, error) {
	n, err := r.uvarint()
	if err != nil {
		return "", err
	}
	if n > uint64(len(r.s)) {
		return "", errShort
	}
	s := r.s[:n]
	r.s = r.s[n:]
	return s, nil
}
