package campaign

import (
	"bytes"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/go-json-experiment/json/jsontext"
)

// validText checks a title or body: valid UTF-8 without NUL. PostgreSQL's
// text cannot hold a NUL ("\u0000" in JSON), and a campaign that cannot be
// stored must be refused as the client's mistake, not answered 503.
func validText(field, s string) error {
	if !utf8.ValidString(s) {
		return invalid("%s: must be valid UTF-8", field)
	}
	if i := strings.IndexByte(s, 0); i >= 0 {
		return invalid("%s: contains a NUL character (\\u0000) at byte %d, which cannot be stored; remove it", field, i)
	}
	return nil
}

// validData checks the data: one JSON object, read strictly (each key once,
// valid UTF-8, no lone surrogate: encoding/json/v2's rules, which
// PostgreSQL's jsonb shares), whose keys and strings hold no NUL (jsonb
// refuses "\u0000"). It reads tokens, never numbers: a number's size is
// jsonb's business (StoredData).
func validData(data []byte) error {
	dec := jsontext.NewDecoder(bytes.NewReader(data))
	if tok, err := dec.ReadToken(); err != nil || tok.Kind() != '{' {
		return invalid("notification.data: must be a JSON object of custom keys")
	}
	for {
		tok, err := dec.ReadToken()
		if err != nil {
			return invalid("notification.data: must be a JSON object of custom keys")
		}
		if tok.Kind() == '"' && strings.IndexByte(tok.String(), 0) >= 0 {
			return invalid("notification.data%s: contains a NUL character (\\u0000), which cannot be stored; remove it", dec.StackPointer())
		}
		if dec.StackDepth() == 0 { // the object's closing brace
			break
		}
	}
	if _, err := dec.ReadToken(); err != io.EOF {
		return invalid("notification.data: must be one JSON object, with nothing after it")
	}
	return nil
}
