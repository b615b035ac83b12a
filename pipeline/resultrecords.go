package pipeline

import (
	"encoding/binary"
	"errors"
	"fmt"
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
	form, colon := tokenForm(token)
	flags |= byte(pcode)<<2 | byte(form)<<4
	b := append(r.b, flags)
	b = binary.AppendVarint(b, device-r.device)
	b = binary.AppendVarint(b, user-r.user)
	r.device, r.user = device, user
	if pcode == len(platformCodes) {
		b = binary.AppendUvarint(b, uint64(len(platform)))
		b = append(b, platform...)
	}
	b = binary.AppendUvarint(b, uint64(len(token)))
	switch form {
	case tokenHex:
		for i := 0; i < len(token); i += 2 {
			b = append(b, hexValue(token[i])<<4|hexValue(token[i+1]))
		}
	case tokenBase64:
		b = binary.AppendUvarint(b, uint64(colon+1))
		var acc uint32
		bits := 0
		for i := range len(token) {
			if i == colon {
				continue
			}
			acc = acc<<6 | uint32(b64Codes[token[i]])
			if bits += 6; bits >= 8 {
				bits -= 8
				b = append(b, byte(acc>>bits))
			}
		}
		if bits > 0 {
			b = append(b, byte(acc<<(8-bits)))
		}
	default:
		b = append(b, token...)
	}
	b = binary.AppendUvarint(b, uint64(len(reason)))
	r.b = append(b, reason...)
}

// Bytes is the records so far.
func (r *ResultRecords) Bytes() []byte { return r.b }

// tokenForm is the shortest form that writes token back exactly, and for
// base64url the index of its colon (-1 when none).
func tokenForm(token string) (form, colon int) {
	hex := len(token)%2 == 0
	colon = -1
	for i := range len(token) {
		c := token[i]
		if hex && !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			hex = false
		}
		if b64Codes[c] == 0xff {
			if c != ':' || colon >= 0 {
				return tokenBytes, -1
			}
			colon = i
		}
	}
	switch {
	case hex && len(token) > 0:
		return tokenHex, -1
	case len(token) > 0:
		return tokenBase64, colon
	}
	return tokenBytes, -1
}

func hexValue(c byte) byte {
	if c <= '9' {
		return c - '0'
	}
	return c - 'a' + 10
}

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
		size := (chars*6 + 7) / 8
		if size > uint64(len(r.s)) {
			return errShort
		}
		var acc uint32
		bits, in := 0, 0
		for i := range n {
			if i+1 == colon {
				r.tokens = append(r.tokens, ':')
				continue
			}
			if bits < 6 {
				acc = acc<<8 | uint32(r.s[in])
				in++
				bits += 8
			}
			bits -= 6
			r.tokens = append(r.tokens, b64Alphabet[acc>>bits&63])
		}
		r.s = r.s[size:]
	}
	return nil
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
