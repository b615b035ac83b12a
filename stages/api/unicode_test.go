package api

import (
	"net/http"
	"strings"
	"testing"
)

// TestRefusedCharacterIsQuotedWhole: a name, id, locale or token that
// holds a character beyond ASCII is refused naming that character, not the
// first byte of its UTF-8 read as Latin-1 ("뉴스" is not refused for an 'ë'
// it does not hold).
func TestRefusedCharacterIsQuotedWhole(t *testing.T) {
	t.Parallel()
	a := newDeviceAPI(t, env.Redis.Addr, Auth{Insecure: true})
	note := `"notification":{"title":"t"}`
	tests := []struct {
		name, method, path, body, want string
	}{
		{"campaign channel", "POST", "/v1/campaigns", `{"app":"a","channels":["뉴스"],` + note + `}`, `channels[0]: has only A-Z a-z 0-9 _ . : - characters; character 1 is '뉴'`},
		{"campaign category", "POST", "/v1/campaigns", `{"app":"a","channels":["x"],"category":"promo€",` + note + `}`, `character 6 is '€'`},
		{"campaign id", "POST", "/v1/campaigns", `{"id":"café","app":"a","channels":["x"],` + note + `}`, `id: only letters, digits, '.', '_' and '-' are allowed; character 4 is 'é'`},
		{"subscription's channel", "PUT", "/v1/channels/caf%C3%A9/subscribers/1", ``, `character 4 is 'é'`},
		{"channel not UTF-8", "PUT", "/v1/channels/caf%FF/subscribers/1", ``, `character 4 is byte 0xff (not UTF-8)`},
		{"muted category", "PUT", "/v1/users/1/preferences", `{"muted_categories":["ñ"]}`, `muted_categories[0]: has only A-Z a-z 0-9 _ . : - characters; character 1 is 'ñ'`},
		{"device locale", "POST", "/v1/devices", `{"app":"a","platform":"ios","token":"` + iosToken + `","user_id":1,"locale":"koé"}`, `character 3 is 'é'`},
		{"FCM token", "POST", "/v1/devices", `{"app":"a","platform":"android","token":"tok€n","user_id":1}`, `character 4 is '€'`},
		{"APNs token", "POST", "/v1/devices", `{"app":"a","platform":"ios","token":"` + strings.Repeat("a", 63) + `é","user_id":1}`, `character 64 is 'é'`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := a.do(tt.method, tt.path, tt.body, "")
			if r.status != http.StatusBadRequest || !strings.Contains(r.error(), tt.want) {
				t.Errorf("got %d %s, want 400 saying %q", r.status, r.body, tt.want)
			}
		})
	}
}
