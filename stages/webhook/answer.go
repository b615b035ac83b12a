package webhook

import (
	"net/url"
	"strings"
	"unicode"
)

// maxExcerpt is how much of a refusing receiver's body the error keeps, in
// runes: its one-line reason ({"error":"unknown signature"}, "database
// down"), not an HTML error page.
const maxExcerpt = 160

// excerpt is body as a failed POST's error quotes it: one line (runs of
// spaces, newlines and control characters one space), at most maxExcerpt
// runes, the start kept ("…" for the cut), and without the URL's
// credentials or path and query, which a receiver echoing the request
// would have put back in the log SafeURL keeps them out of. "" for an
// empty body. The log said "answered 500 Internal Server Error" and no
// more, though the receiver had said why.
func excerpt(body []byte, rawURL string) string {
	s := strings.Join(strings.FieldsFunc(string(body), func(r rune) bool {
		return unicode.IsSpace(r) || unicode.IsControl(r) || r == unicode.ReplacementChar
	}), " ")
	for _, secret := range urlSecrets(rawURL) {
		s = strings.ReplaceAll(s, secret, "…")
	}
	if r := []rune(s); len(r) > maxExcerpt {
		s = string(r[:maxExcerpt-1]) + "…"
	}
	return s
}

// urlSecrets are the parts of rawURL SafeURL does not show, longest
// first (a part inside another is then cut with it): the password, the
// user, the path and query as sent, and each of their parts long enough to
// be a token (a query's values, the path's segments).
func urlSecrets(rawURL string) []string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil
	}
	var out []string
	add := func(s string) {
		if len(s) >= 4 {
			out = append(out, s)
		}
	}
	if u.User != nil {
		add(u.User.Username())
		if p, ok := u.User.Password(); ok {
			add(p)
		}
	}
	if rest := u.RequestURI(); rest != "/" {
		add(rest)
		add(u.Path)
		for seg := range strings.SplitSeq(u.Path, "/") {
			add(seg)
		}
		for _, vs := range u.Query() {
			for _, v := range vs {
				add(v)
			}
		}
	}
	// Longest first: "/services/T0/B0/TOKEN" before "TOKEN".
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && len(out[j]) > len(out[j-1]); j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}
