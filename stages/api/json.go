package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"time"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/pushpipe/pushpipe/pipeline/devices"
)

// writeJSON writes v with status. '<', '>' and '&' stay as they are: the
// answer is JSON, not HTML, and error messages quote them.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.Encode(v)
}

// writeError writes {"error": msg}: what is wrong and what to do.
func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

// unavailable answers 503 with Retry-After: the event was not accepted.
func unavailable(w http.ResponseWriter, what string, retryAfter time.Duration) {
	retryLater(w, what+" is unreachable; nothing was accepted, retry later", retryAfter)
}

// unreadable answers 503 with Retry-After for a read PostgreSQL did not
// serve: what (a user, the preferences of one) could not be read.
// unavailable's "nothing was accepted" is a write's answer, and puzzled the
// caller of a GET, who sent nothing to accept.
func unreadable(w http.ResponseWriter, what string) {
	retryLater(w, "PostgreSQL is unreachable: "+what+" could not be read; retry in a moment", time.Second)
}

// retryLater answers 503 with msg and a Retry-After.
func retryLater(w http.ResponseWriter, msg string, retryAfter time.Duration) {
	w.Header().Set("Retry-After", strconv.Itoa(max(1, int(retryAfter.Seconds()))))
	writeError(w, http.StatusServiceUnavailable, msg)
}

// haveDB answers 503 for a route that needs PostgreSQL when the server
// runs without it (an API given only Redis), and says whether it has it.
func (s *Server) haveDB(w http.ResponseWriter) bool {
	if s.cfg.DB == nil {
		unavailable(w, "PostgreSQL (not configured)", time.Second)
		return false
	}
	return true
}

// strict is how every request body is decoded: encoding/json/v2's rules
// (github.com/go-json-experiment/json is that package, which Go 1.27 ships
// as encoding/json/v2) match member names case-sensitively and refuse
// duplicate names and invalid UTF-8, where encoding/json let "APP" set
// "app", kept the last of two "app"s and turned bad bytes into U+FFFD; and
// unknown members are refused too. Each of those silently stored something
// the client did not mean.
var strict = jsonv2.RejectUnknownMembers(true)

// errTrailing is data after the body's one JSON value.
var errTrailing = errors.New("unexpected data after the JSON value: send exactly one")

// decode reads body, exactly one JSON value, into v. It writes the 400
// itself and returns false on failure. (Unmarshal, not a Decoder: a
// Decoder costs a single-device write 11 µs and 5 KB more.)
func decode(w http.ResponseWriter, body []byte, v any) bool {
	return decodeHinted(w, body, v, nil)
}

// decodeHinted is decode, with what to say of unknown fields a caller may
// mean (a campaign's field sent to /v1/messages): hints by field name.
func decodeHinted(w http.ResponseWriter, body []byte, v any, hints map[string]string) bool {
	err := jsonv2.Unmarshal(body, v, strict)
	var sem *jsonv2.SemanticError
	switch {
	case err == nil && string(bytes.TrimSpace(body)) == "null":
		// Unmarshal leaves v as it was: a client that serialized a nil
		// object would have PUT preferences that unmute everything.
		writeError(w, http.StatusBadRequest, "the body is null: send a JSON object")
	case err == nil:
		return true
	case errors.As(err, &sem) && errors.Is(sem.Err, jsonv2.ErrUnknownName) && hints[fieldName(sem.JSONPointer, 0)] != "":
		f := fieldName(sem.JSONPointer, 0)
		writeError(w, http.StatusBadRequest, fmt.Sprintf("unknown field %q: %s", devices.Echo(f), hints[f]))
	case len(bytes.TrimSpace(body)) == 0:
		writeError(w, http.StatusBadRequest, "empty body: send a JSON object")
	case trailing(body, err):
		writeError(w, http.StatusBadRequest, errTrailing.Error())
	default:
		writeError(w, http.StatusBadRequest, jsonProblem(err, 0))
	}
	return false
}

// valueError is a type's own refusal of a JSON value (an UnmarshalJSON
// method's), already saying which element and what it takes: jsonProblem
// passes it on instead of its generic "expected X, got Y".
type valueError struct{ msg string }

func (e *valueError) Error() string { return e.msg }

// trailing reports whether err is Unmarshal's refusal of data after one
// complete JSON value.
func trailing(body []byte, err error) bool {
	var syn *jsontext.SyntacticError
	return errors.As(err, &syn) && syn.JSONPointer == "" && syn.ByteOffset > 0 &&
		syn.ByteOffset < int64(len(body)) && jsontext.Value(body[:syn.ByteOffset]).IsValid()
}

// jsonProblem says what is wrong with a body that failed to decode, naming
// the field. skip drops leading elements of the error's JSON pointer (1 for
// a batch item, whose pointer starts with its index).
func jsonProblem(err error, skip int) string {
	var sem *jsonv2.SemanticError
	var syn *jsontext.SyntacticError
	var val *valueError
	switch {
	case errors.Is(err, errTrailing), errors.Is(err, errTrailingArray):
		return err.Error()
	case errors.As(err, &val):
		return val.msg // a type's own reading names the element and what it takes
	case errors.As(err, &sem) && errors.Is(sem.Err, jsonv2.ErrUnknownName):
		return unknownField(sem, skip) // unknownfield.go: the field it may be a spelling of, or where it belongs
	case errors.As(err, &sem):
		where := "the body"
		if f := fieldName(sem.JSONPointer, skip); f != "" {
			where = "field " + strconv.Quote(devices.Echo(f))
		}
		if limit := outOfRange(sem.GoType, sem.JSONKind, sem.JSONValue); limit != "" {
			return fmt.Sprintf("%s: %s is out of range: %s", where, devices.Echo(string(sem.JSONValue)), limit)
		}
		return fmt.Sprintf("%s: expected %s, got %s", where, expected(sem.GoType), got(sem.JSONKind, sem.JSONValue))
	case errors.As(err, &syn) && errors.Is(syn.Err, jsontext.ErrDuplicateName):
		return fmt.Sprintf("duplicate field %q: give each field once", devices.Echo(fieldName(syn.JSONPointer, skip)))
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "bad JSON: the body ends before its value does"
	case errors.As(err, &syn):
		return "bad JSON: " + strings.TrimPrefix(syn.Error(), "jsontext: ")
	}
	return "bad JSON: " + err.Error()
}

// outOfRange says the range of t when v, a JSON number, is an integer that
// t cannot hold (a user id past 2^63-1): "expected an integer, got number
// 9223372036854775808" told a client its integer was not one. "" otherwise.
func outOfRange(t reflect.Type, k jsontext.Kind, v jsontext.Value) string {
	if t == nil || k != '0' || len(v) > 32 || strings.ContainsAny(string(v), ".eE") {
		return ""
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		_, err := strconv.ParseInt(string(v), 10, t.Bits())
		switch {
		case !errors.Is(err, strconv.ErrRange):
		case v[0] == '-':
			return fmt.Sprintf("at least %d", int64(-1)<<(t.Bits()-1))
		default:
			return fmt.Sprintf("at most %d", int64(math.MaxInt64>>(64-t.Bits())))
		}
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		if _, err := strconv.ParseUint(string(v), 10, t.Bits()); errors.Is(err, strconv.ErrRange) {
			return fmt.Sprintf("at most %d", uint64(math.MaxUint64>>(64-t.Bits())))
		}
	}
	return ""
}

// fieldName writes a JSON pointer as the field it names:
// /notification/data → notification.data, /channels/1 → channels[1].
func fieldName(p jsontext.Pointer, skip int) string {
	var b strings.Builder
	for tok := range p.Tokens() {
		if skip > 0 {
			skip--
			continue
		}
		if _, err := strconv.ParseUint(tok, 10, 64); err == nil && b.Len() > 0 {
			b.WriteString("[" + tok + "]")
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.WriteString(tok)
	}
	return b.String()
}

// expected names a Go type as the JSON a client should send.
func expected(t reflect.Type) string {
	if t == nil {
		return "another JSON type"
	}
	switch t.Kind() {
	case reflect.Struct, reflect.Map:
		return "a JSON object"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "an integer"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a non-negative integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Bool:
		return "true or false"
	case reflect.String:
		return "a string"
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.String {
			return "a JSON array of strings"
		}
		return "a JSON array"
	}
	return t.String()
}

// got names the JSON a client sent.
func got(k jsontext.Kind, v jsontext.Value) string {
	switch k {
	case '"':
		return "string"
	case '0':
		if len(v) > 0 && len(v) <= 32 {
			return "number " + string(v)
		}
		return "number"
	case '{':
		return "object"
	case '[':
		return "array"
	case 't', 'f':
		return "boolean"
	case 'n':
		return "null"
	}
	return "another JSON type"
}
