package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// SignatureHeader carries a POST's signatures: "t=UNIX,v1=HEX[,v1=HEX...]",
// HEX being HMAC-SHA256(secret, "t.body"), one v1 per secret, so a receiver
// holding any of the secrets accepts the POST while they are rotated.
const SignatureHeader = "Pushpipe-Signature"

// Sign returns the header value for body sent at t, signed with every secret.
func Sign(secrets [][]byte, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	var b strings.Builder
	b.WriteString("t=" + ts)
	for _, s := range secrets {
		b.WriteString(",v1=" + sign(s, ts, body))
	}
	return b.String()
}

func sign(secret []byte, ts string, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

// Verify checks a Pushpipe-Signature header against body with one secret:
// some v1 must match, and t must be within tolerance of now (a replayed POST
// is refused). It is what a Go receiver calls (the README's example).
//
// The header holds one t, as Sign writes it: decimal digits, no sign or
// leading zero. Two t= were read as the last, and "+5" or "05" as 5: no
// forgery (the HMAC covers t as written), but a header that says two
// times, or one two ways, is not what pushpipe sends, so it is refused
// rather than read one way here and another by a receiver in another
// language. Parts other than t and v1 are skipped: a later scheme may
// add its own beside v1.
func Verify(header string, secret, body []byte, now time.Time, tolerance time.Duration) error {
	var ts string
	var sigs []string
	times := 0
	for _, part := range strings.Split(header, ",") {
		k, v, _ := strings.Cut(part, "=")
		switch k {
		case "t":
			ts, times = v, times+1
		case "v1":
			sigs = append(sigs, v)
		}
	}
	if times > 1 {
		return fmt.Errorf("signature header has %d timestamps t=, want one", times)
	}
	t, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || strconv.FormatInt(t, 10) != ts {
		return fmt.Errorf("signature header has no timestamp t= of decimal digits")
	}
	if d := now.Sub(time.Unix(t, 0)); d > tolerance || d < -tolerance {
		return fmt.Errorf("signature timestamp is %s away from now, more than %s", d.Round(time.Second), tolerance)
	}
	want := sign(secret, ts, body)
	for _, s := range sigs {
		if hmac.Equal([]byte(s), []byte(want)) {
			return nil
		}
	}
	return errors.New("no v1 signature matches the secret")
}
