package api

import (
	"net/http"
	"strings"
	"testing"
)

// A device's 400 names every bad field of the item at once, one line in
// the JSON error, of a batch item too: it named the first, and a client
// fixed the app to be told of the token next.
func TestDeviceNamesEveryBadField(t *testing.T) {
	t.Parallel()
	a := newDeviceAPI(t, env.Redis.Addr, Auth{AdminToken: "op"})
	const bad = `{"app":"","platform":"ios","token":"zz","user_id":0,"locale":"en US"}`
	tests := []struct {
		method, path, give string
		want               []string // each in the error, in this order
	}{
		{"POST", "/v1/devices", bad, []string{"app: ", "; token: ", "; user_id: ", "; locale: "}},
		{"POST", "/v1/devices/batch", `[` + deviceJSON("news", "ios", iosToken, 1, "") + `,` + bad + `]`,
			[]string{"item 1: app: ", "; token: ", "; user_id: ", "; locale: "}},
		// No platform: the token is checked as any token.
		{"POST", "/v1/devices", `{"app":"news","platform":"web","token":"","user_id":1}`,
			[]string{"platform: ", "; token: is required"}},
		{"DELETE", "/v1/devices/" + strings.Repeat("a", 256) + "/" + strings.Repeat("t", 513), "", []string{"app: ", "; token: "}},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path[:min(len(tt.path), 24)], func(t *testing.T) {
			r := a.do(tt.method, tt.path, tt.give, "op")
			if r.status != http.StatusBadRequest || strings.Contains(r.error(), "\n") {
				t.Fatalf("got %d %s, want one line's 400", r.status, r.body)
			}
			rest := r.error()
			for _, w := range tt.want {
				_, after, ok := strings.Cut(rest, w)
				if !ok {
					t.Fatalf("error %q does not say %q (in order)", r.error(), w)
				}
				rest = after
			}
		})
	}
}
