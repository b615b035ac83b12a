package api

import (
	"fmt"
	"reflect"
	"strings"
	"unicode"

	jsonv2 "github.com/go-json-experiment/json"

	"github.com/pushpipe/pushpipe/pipeline/devices"
)

// unknownField says what is wrong with a member the body's object has no
// field for, and what to send instead. "(field names are case-sensitive)"
// alone left a caller who wrote "userId", "ttl" or a campaign's "title"
// beside "notification" to find the right name, or the right place, in the
// reference; the object's own fields (sem.GoType) name it: the field the
// member's name is a spelling of, else the nested object that has a field
// of that name. skip is jsonProblem's.
func unknownField(sem *jsonv2.SemanticError, skip int) string {
	path := fieldName(sem.JSONPointer, skip)
	name := sem.JSONPointer.LastToken()
	prefix, ok := strings.CutSuffix(path, name)
	fields := jsonFields(sem.GoType)
	if ok && len(name) <= maxSuggested {
		if alike := spellings(name, fields); len(alike) > 0 {
			return fmt.Sprintf("unknown field %q: did you mean %s?",
				devices.Echo(path), orList(prefix, alike))
		}
		if in := holder(sem.GoType, name); in != "" {
			return fmt.Sprintf("unknown field %q: it belongs inside %q, as in {%q:{%q:...}}",
				devices.Echo(path), prefix+in, in, name)
		}
	}
	return fmt.Sprintf("unknown field %q (field names are case-sensitive)", devices.Echo(path))
}

// maxSuggested is the longest member name compared with the fields: a
// longer one is no spelling of any.
const maxSuggested = 64

// notificationHints are the request's own fields sent inside the
// notification object (DESIGN: "priority" and "ttl_seconds" are top-level).
var notificationHints = map[string]string{
	"notification.priority":    `"priority" is a field of the request itself, beside "notification", as in {"priority":"high","notification":{...}}`,
	"notification.ttl_seconds": `"ttl_seconds" is a field of the request itself, beside "notification", as in {"ttl_seconds":3600,"notification":{...}}`,
}

// orList writes names as `"a"`, `"a" or "b"`, each after prefix.
func orList(prefix string, names []string) string {
	quoted := make([]string, len(names))
	for i, n := range names {
		quoted[i] = fmt.Sprintf("%q", prefix+n)
	}
	return strings.Join(quoted, " or ")
}

// spellings are the fields name may be a spelling of: the same letters in
// another case or with other separators (userId, User-ID: user_id); else
// those one or two edits away (a typo: chanels, titel); else those it is
// the first word of (ttl: ttl_seconds). None when more than three fit: a
// guess among many helps no one.
func spellings(name string, fields []string) []string {
	n := squash(name)
	var same, near, first []string
	best := editBudget(n) + 1
	for _, f := range fields {
		switch d := distance(n, squash(f)); {
		case d == 0:
			same = append(same, f)
		case d < best:
			best, near = d, []string{f}
		case d == best:
			near = append(near, f)
		}
		if strings.HasPrefix(f, strings.ToLower(name)+"_") {
			first = append(first, f)
		}
	}
	for _, alike := range [][]string{same, near, first} {
		if len(alike) > 0 {
			if len(alike) > 3 {
				return nil
			}
			return alike
		}
	}
	return nil
}

// editBudget is how many edits a name of n's length may be away from a
// field: none for the shortest (every two-letter name is two edits from
// every other), then one, then two.
func editBudget(n string) int {
	switch {
	case len(n) < 3:
		return 0
	case len(n) < 6:
		return 1
	}
	return 2
}

// squash lower-cases s and drops the separators '_', '-' and ' '.
func squash(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '_' || r == '-' || r == ' ' {
			return -1
		}
		return unicode.ToLower(r)
	}, s)
}

// distance is the Levenshtein distance of a and b, by byte.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// jsonFields are the JSON member names of struct type t (through
// pointers), with those of its embedded structs (campaign.Report's Counts)
// and inline members (campaignRequest's campaignSchedule), which the
// decoders and encoders flatten into it; in field order, none for another
// type. Every field of the API's types is tagged: an untagged one is not
// counted. (openapi_test.go checks the reference documents each.)
func jsonFields(t reflect.Type) []string {
	t = structType(t)
	if t == nil {
		return nil
	}
	var names []string
	for f := range t.Fields() {
		name, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
		switch {
		case name == "-":
		case name == "" && structType(f.Type) != nil && (f.Anonymous || strings.Contains(opts, "inline")):
			names = append(names, jsonFields(f.Type)...)
		case name != "":
			names = append(names, name)
		}
	}
	return names
}

// holder is the JSON name of t's field holding an object that has a field
// called name ("notification" for a campaign's "title"), or "".
func holder(t reflect.Type, name string) string {
	t = structType(t)
	if t == nil {
		return ""
	}
	for f := range t.Fields() {
		tag, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if tag == "" || tag == "-" || !f.IsExported() || structType(f.Type) == nil {
			continue
		}
		for _, inner := range jsonFields(f.Type) {
			if inner == name {
				return tag
			}
		}
	}
	return ""
}

// structType is t, or what the pointer t points to, if it is a struct.
func structType(t reflect.Type) reflect.Type {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nil || t.Kind() != reflect.Struct {
		return nil
	}
	return t
}
