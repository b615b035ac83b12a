package pipeline

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"
)

// EncodeDLQFields is how a dead letter keeps its entry's original fields (the
// DLQFields value): a JSON object of strings, except that a value which is not
// valid UTF-8 — the binary id batches u and m — becomes {"base64": "..."}.
// Plain json.Marshal would replace its bytes with U+FFFD, and a retried entry
// would carry other users than it had. A value holding U+FFFD is encoded so
// too: an id batch can be valid UTF-8 and hold it (EncodeIDs of user
// 42613989409 is "\x01\xc2\x80\xef\xbf\xbd\x02"), and DecodeDLQFields
// takes a plain u or m holding it for bytes lost to json.Marshal.
//
// A field name is the object's key, which JSON keeps as text only: one
// that is not plain text (as above) becomes U+FFFD followed by its bytes in
// base64. No plain name holds U+FFFD, so such a key is always an encoded
// name. (Stages write no such names, but an entry from another producer
// may hold one, and a retry must re-inject the entry it was.)
func EncodeDLQFields(fields map[string]string) string {
	out := make(map[string]any, len(fields))
	for f, v := range fields {
		if !plainText(f) {
			f = binaryNamePrefix + base64.StdEncoding.EncodeToString([]byte(f))
		}
		if plainText(v) {
			out[f] = v
		} else {
			out[f] = binaryValue{Base64: base64.StdEncoding.EncodeToString([]byte(v))}
		}
	}
	b, _ := json.Marshal(out) // strings and one struct: cannot fail
	return string(b)
}

// plainText is whether s survives JSON as it is: valid UTF-8 without
// U+FFFD (json.Marshal writes invalid bytes as U+FFFD, so a U+FFFD read
// back may have been any bytes).
func plainText(s string) bool {
	return utf8.ValidString(s) && !strings.ContainsRune(s, utf8.RuneError)
}

// binaryNamePrefix starts the key of a field name that is not plainText.
const binaryNamePrefix = "\uFFFD"

// dlqFieldName is the field name a key of EncodeDLQFields stands for. A key
// of U+FFFD and no base64 after it is kept as it is: a name json.Marshal
// mangled (a dead letter written before names were encoded).
func dlqFieldName(key string) string {
	b64, ok := strings.CutPrefix(key, binaryNamePrefix)
	if !ok {
		return key
	}
	name, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(name) == 0 {
		return key
	}
	return string(name)
}

type binaryValue struct {
	Base64 string `json:"base64"`
}

// DecodeDLQFields reverses EncodeDLQFields. Plain JSON objects of strings
// (dead letters written before binary values were encoded) decode as they are.
func DecodeDLQFields(s string) (map[string]string, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal([]byte(s), &raw); err != nil {
		return nil, fmt.Errorf("original fields are not a JSON object: %w", err)
	}
	// On a bad field, the others are still returned (for listing and
	// filtering), with the error.
	out := make(map[string]string, len(raw))
	var bad error
	for key, r := range raw {
		f := dlqFieldName(key)
		var v string
		if err := json.Unmarshal(r, &v); err == nil {
			if strings.ContainsRune(v, utf8.RuneError) && (f == FieldUsers || f == FieldMuted) {
				bad = fmt.Errorf("original field %s lost its binary bytes to a plain JSON encoding (not EncodeDLQFields); the entry cannot be retried", f)
			}
			out[f] = v
			continue
		}
		var b binaryValue
		if err := json.Unmarshal(r, &b); err != nil {
			bad = fmt.Errorf("original field %s is neither a string nor {\"base64\"}: %w", f, err)
			continue
		}
		bs, err := base64.StdEncoding.DecodeString(b.Base64)
		if err != nil {
			bad = fmt.Errorf("original field %s: %w", f, err)
			continue
		}
		out[f] = string(bs)
	}
	return out, bad
}
