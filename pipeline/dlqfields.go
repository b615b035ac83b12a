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
func EncodeDLQFields(fields map[string]string) string {
	out := make(map[string]any, len(fields))
	for f, v := range fields {
		if utf8.ValidString(v) && !strings.ContainsRune(v, utf8.RuneError) {
			out[f] = v
		} else {
			out[f] = binaryValue{Base64: base64.StdEncoding.EncodeToString([]byte(v))}
		}
	}
	b, _ := json.Marshal(out) // strings and one struct: cannot fail
	return string(b)
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
	for f, r := range raw {
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
