package devices

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Limits of the device fields (DESIGN's contract).
const (
	MaxApp       = 255
	MinAPNsToken = 64 // 32 bytes in hex, what APNs issues today
	// MaxAPNsToken leaves room for Apple to lengthen tokens (it says not to
	// assume a length) without letting a token grow unbounded.
	MaxAPNsToken = 200
	// MaxFCMToken: FCM registration tokens are 140–200 characters in
	// practice, and Google documents no maximum (only that its old
	// registration ids fit 4 KB). 512 is more than twice the longest seen,
	// and keeps the largest valid batch item under 1 KB, so a full batch of
	// 10,000 fits the API's default 16 MiB body cap.
	MaxFCMToken    = 512
	MaxLocale      = 35
	MaxChannelName = 128
)

// ValidateApp: non-empty, at most 255 bytes of printable UTF-8.
func ValidateApp(app string) error {
	switch {
	case app == "":
		return fieldErr("app", "is required (the app's id, e.g. \"com.example.news\")")
	case len(app) > MaxApp:
		return fieldErr("app", "is %d bytes long; at most %d are allowed", len(app), MaxApp)
	case !utf8.ValidString(app):
		return fieldErr("app", "is not valid UTF-8")
	}
	for _, r := range app {
		if !unicode.IsPrint(r) {
			return fieldErr("app", "contains a control or non-printable character (%U)", r)
		}
	}
	return nil
}

// ValidateToken checks a token against its platform's format: APNs tokens are
// 64–200 hex characters, FCM registration tokens 1–512 characters of
// [A-Za-z0-9_:.-].
func ValidateToken(p Platform, token string) error {
	switch p {
	case IOS:
		if len(token) < MinAPNsToken || len(token) > MaxAPNsToken {
			return fieldErr("token", "an APNs (ios) token is %d–%d hex characters; got %d characters", MinAPNsToken, MaxAPNsToken, len(token))
		}
		for i := 0; i < len(token); i++ {
			if !isHex(token[i]) {
				return fieldErr("token", "an APNs (ios) token is hex; %s", Char(token, i))
			}
		}
		return nil
	case Android:
		if token == "" || len(token) > MaxFCMToken {
			return fieldErr("token", "an FCM (android) token is 1–%d characters; got %d", MaxFCMToken, len(token))
		}
		if i := badFCMChar(token); i >= 0 {
			return fieldErr("token", "an FCM (android) token has only A-Z a-z 0-9 _ : . - characters; %s", Char(token, i))
		}
		return nil
	}
	return fieldErr("platform", "must be \"ios\" or \"android\"")
}

// ValidateRegistration checks a token against the platform it comes with
// (a registration, a message's raw token), beyond its format: an APNs token
// (64 or more hex digits, which no FCM token is) given as android is an app
// that reports its platform wrong, and its device would get nothing (FCM
// refuses the token, and the refusal deletes it), nor could it be deleted
// by token (it is stored as an FCM token, in its case). Only what the API
// accepts now is checked: an event already in the stream is not refused
// for it.
func ValidateRegistration(p Platform, token string) error {
	if err := ValidateToken(p, token); err != nil {
		return err
	}
	if p == Android && ValidateToken(IOS, token) == nil {
		return fieldErr("platform", "is \"android\", but the token is an APNs token (%d hex digits, which no FCM token is): "+
			"a device of an iPhone registers as \"ios\"", len(token))
	}
	return nil
}

// CanonicalToken is the form a valid token is stored and sent in. An APNs
// token is hex, and APNs reads it either case: an app that registered a
// phone as "AB12…" in one version and "ab12…" in the next made two devices
// of it, and the phone got every notification twice. APNs tokens are
// lowercase from here on (migration 00010 lowered the stored ones); FCM
// tokens are case-sensitive and kept as they are. A token whose platform is
// not known (platform 0: a delete by token) is taken for an APNs token when
// it is one: an FCM token is never 64 or more hex digits alone.
func CanonicalToken(p Platform, token string) string {
	if p == IOS || p == 0 && ValidateToken(IOS, token) == nil {
		return strings.ToLower(token)
	}
	return token
}

// ValidateAnyToken checks a token whose platform is not known (DELETE by
// token): it must be well-formed for at least one platform.
func ValidateAnyToken(token string) error {
	if token == "" {
		return fieldErr("token", "is required")
	}
	if ValidateToken(IOS, token) == nil {
		return nil
	}
	// Said as an FCM token's rules alone, it read as if the client had said
	// android: it is neither platform's.
	const neither = "is neither an APNs (ios) token (%d–%d hex characters) nor an FCM (android) one: "
	if len(token) > MaxFCMToken {
		return fieldErr("token", neither+"an FCM token is 1–%d characters; got %d", MinAPNsToken, MaxAPNsToken, MaxFCMToken, len(token))
	}
	if i := badFCMChar(token); i >= 0 {
		return fieldErr("token", neither+"an FCM token has only A-Z a-z 0-9 _ : . - characters; %s", MinAPNsToken, MaxAPNsToken, Char(token, i))
	}
	return nil
}

// ValidateUser: user ids are positive. A JSON body without user_id reads
// as 0, so 0 is said as missing: "got 0" left the client to find out why.
func ValidateUser(u int64) error {
	if u == 0 {
		return fieldErr("user_id", "is required: the user's id, a positive integer (missing or 0)")
	}
	if u < 0 {
		return fieldErr("user_id", "must be a positive integer, got %d", u)
	}
	return nil
}

// ValidateLocale: optional, at most 35 characters of a BCP 47 tag
// (letters, digits, '-' and '_').
func ValidateLocale(l string) error {
	if len(l) > MaxLocale {
		return fieldErr("locale", "is %d characters long; at most %d are allowed (a BCP 47 tag such as \"en-US\")", len(l), MaxLocale)
	}
	for i := 0; i < len(l); i++ {
		c := l[i]
		if !(isAlnum(c) || c == '-' || c == '_') {
			return fieldErr("locale", "has only letters, digits, '-' and '_' (a BCP 47 tag such as \"en-US\"); %s", Char(l, i))
		}
	}
	return nil
}

// ValidateName checks a channel or category name: 1–128 characters of
// [A-Za-z0-9_.:-].
func ValidateName(field, name string) error {
	if name == "" || len(name) > MaxChannelName {
		return fieldErr(field, "must be 1–%d characters; got %d", MaxChannelName, len(name))
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(isAlnum(c) || c == '_' || c == '.' || c == ':' || c == '-') {
			return fieldErr(field, "has only A-Z a-z 0-9 _ . : - characters; %s", Char(name, i))
		}
	}
	return nil
}

// Char names the character at byte i of s for an error message: its place
// counted in characters from 1, as a person counts (a byte offset from 0
// said "character 3" of "café"'s fourth), and the whole character quoted,
// not its first byte read as Latin-1 (a channel "뉴스" is not refused for an
// 'ë' it does not hold), or that byte in hex where s is not UTF-8 (a path
// segment may not be).
func Char(s string, i int) string {
	at := utf8.RuneCountInString(s[:i]) + 1
	r, n := utf8.DecodeRuneInString(s[i:])
	if r == utf8.RuneError && n <= 1 {
		return fmt.Sprintf("character %d is byte 0x%02x (not UTF-8)", at, s[i])
	}
	return fmt.Sprintf("character %d is %s", at, strconv.QuoteRune(r))
}

func badFCMChar(s string) int {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(isAlnum(c) || c == '_' || c == ':' || c == '-' || c == '.') {
			return i
		}
	}
	return -1
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func isAlnum(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
}

// EchoMax is how many characters of a client's input an error repeats.
const EchoMax = 64

// Echo is s as an error message repeats it: whole up to EchoMax
// characters, else its first EchoMax and "…". Enough to recognise what was
// sent; a 10 KB id in a path came back whole in its 404 (and in every log
// line that kept it), the answer growing with whatever a client sent. It
// cuts on a character boundary, so the message stays valid UTF-8.
func Echo(s string) string {
	if utf8.RuneCountInString(s) <= EchoMax {
		return s
	}
	i, n := 0, 0
	for i = range s {
		if n == EchoMax {
			break
		}
		n++
	}
	return s[:i] + "…"
}
