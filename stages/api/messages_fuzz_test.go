package api

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/pushpipe/pushpipe/pipeline/devices"
	"github.com/pushpipe/pushpipe/stages/deliver/push"
)

// FuzzMessageBody holds POST /v1/messages to the general rules (fuzzCall:
// no panic, no 5xx, a JSON answer, a 4xx saying what is wrong), and a
// message accepted answers its id.
func FuzzMessageBody(f *testing.F) {
	for _, s := range []string{
		`{"app":"news","users":[42,7,42],"notification":{"title":"t","body":"b"}}`,
		`{"id":"m-1","app":"news","users":[1],"category":"chat","priority":"normal","notification":{"title":"t","data":{"k":"v"}},"ttl_seconds":60}`,
		`{"app":"news","tokens":[{"platform":"ios","token":"` + iosToken + `"},{"platform":"android","token":"` + androidToken + `"}],"notification":{"body":"b"}}`,
		`{"app":"news","tokens":[{"platform":"web","token":"x y"}],"notification":{"body":"b"}}`,
		`{"app":"news","users":[],"tokens":[],"notification":{"title":"t"}}`,
		`{"app":"news","users":[0,-1],"notification":{"title":"t"}}`,
		`{"app":"news","users":[1],"notification":{"title":"t"},"channels":["x"]}`,
		`{"app":"news","users":[1],"notification":{"title":"t"},"send_at":"2030-01-01T00:00:00Z"}`,
		`{"app":"news","users":[1],"title":"t"}`,
		`{"id":"","app":"news","users":[1],"notification":{"title":"t"}}`,
		`{"id":"{x}\n","app":"news","users":[1],"notification":{"title":"t"}}`,
		`{"app":"news","users":[1],"notification":{"title":"t","data":{"k":"\u0000"}}}`,
		`{"app":"news","users":[1],"notification":{"title":"t","data":{"\u0000":1}}}`,
		`{"app":"news","users":[1],"notification":{"title":"t","data":"x"}}`,
		`{"app":"news","users":[1],"notification":{"silent":true,"data":{"a":[1,{"b":null}]}},"ttl_seconds":2419201}`,
		`{"app":"nobody","users":[1],"notification":{"title":"t"}}`,
		`{"app":"news","users":[1],"notification":null}`,
		`{"app":"news","users":[9223372036854775807],"notification":{"title":"t"}}{}`,
		`null`, `[]`, ``, `{`,
	} {
		f.Add([]byte(s))
	}
	h := New(secConfig(f, Config{Auth: secAuth()}, true))
	f.Fuzz(func(t *testing.T, body []byte) {
		status, out := fuzzCall(t, h, "POST", "/v1/messages", body, secAdmin)
		if status == http.StatusAccepted || status == http.StatusOK {
			if id, _ := out["id"].(string); id == "" {
				t.Fatalf("%q: %d without an id: %v", body, status, out)
			}
		}
	})
}

// FuzzSubscribersBody: POST /v1/channels/{channel}/subscribers is 204
// exactly for one well-formed body with a list, positive ids, none in both
// lists, at most MaxSubscriberBatch in all; 413 past that; else 400 saying
// why.
func FuzzSubscribersBody(f *testing.F) {
	for _, s := range []string{
		`{"add":[1,2,3],"remove":[4]}`, `{"add":[]}`, `{"remove":[]}`, `{"add":[],"remove":[]}`, `{}`,
		`{"add":null}`, `{"add":[1],"remove":[1]}`, `{"add":[0]}`, `{"remove":[-5]}`, `{"add":[1.5]}`,
		`{"add":["1"]}`, `{"add":[1e2]}`, `{"add":[9223372036854775808]}`, `{"ADD":[1]}`, `{"add":[1],"add":[2]}`,
		`{"add":[1],"x":1}`, `{"add":[1,1,1]}`, `{"add":[1]} x`, `[]`, `null`, ``, "\xff",
	} {
		f.Add([]byte(s), "news")
	}
	f.Add([]byte(`{"add":[1]}`), "a b")
	f.Add([]byte(`{"add":[1]}`), strings.Repeat("c", 129))
	f.Add([]byte(`{"add":[1]}`), "caf\xc3")
	h := New(secConfig(f, Config{Auth: secAuth()}, true))
	f.Fuzz(func(t *testing.T, body []byte, channel string) {
		if strings.ContainsAny(channel, "/?#%") || channel == "" || channel == "." || channel == ".." || !validPathBytes(channel) {
			return // another route, or not one path segment: the mux's to answer
		}
		status, out := fuzzCall(t, h, "POST", "/v1/channels/"+channel+"/subscribers", body, secAdmin)
		var req subscribersRequest
		valid := devices.ValidateName("channel", channel) == nil && strictDecode(body, &req) && (req.Add != nil || req.Remove != nil)
		n := len(req.Add) + len(req.Remove)
		adding := map[int64]bool{}
		for _, u := range req.Add {
			valid = valid && u > 0
			adding[u] = true
		}
		for _, u := range req.Remove {
			valid = valid && u > 0 && !adding[u]
		}
		want := http.StatusBadRequest
		switch {
		case devices.ValidateName("channel", channel) == nil && strictDecode(body, &req) && n > MaxSubscriberBatch:
			want = http.StatusRequestEntityTooLarge
		case valid:
			want = http.StatusNoContent
		}
		if status != want {
			t.Fatalf("%q channel %q: got %d %v, want %d", body, channel, status, out, want)
		}
	})
}

// validPathBytes: httptest.NewRequest takes the channel as it is written
// into a request line: no space, control byte or non-ASCII (a client
// escapes those, the %-escape case left out above).
func validPathBytes(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return false
		}
	}
	return true
}

// FuzzParseNotification: `pushpipe send`, the console and both create
// routes read a notification object through ParseNotification. Any bytes
// and priority are read or refused, never a panic; every problem names its
// field; what is read carries the object's values as given, and marshals
// (it is stored as JSON).
func FuzzParseNotification(f *testing.F) {
	for _, s := range []string{
		`{"title":"t","body":"b"}`,
		`{"title":"t","subtitle":"s","body":"b","badge":3,"sound":"default","image":"https://i.example/a.png","category":"c","thread_id":"th","collapse_id":"k","localized":{"ko":{"title":"한"},"pt-BR":{"body":"ó"}}}`,
		`{"silent":true,"data":{"sync":1}}`, `{"silent":true,"title":"t","badge":1}`, `{"title":" \t"}`, `{}`, `null`, ``,
		`{"title":"t","badge":-1}`, `{"title":"t","badge":2147483648}`, `{"title":"t","sound":"a/b"}`, `{"title":"t","sound":"\u0000"}`,
		`{"title":"t","image":"http://x"}`, `{"title":"t","image":"https://u:p@x/"}`, `{"title":"t","image":"HTTPS://x"}`,
		`{"title":"t","collapse_id":"a\nb"}`, `{"title":"t","localized":{"x y":{}}}`, `{"title":"t","localized":{"ko":{"title":"a"},"KO":{"title":"b"}}}`,
		`{"title":"t","localized":{"en_US":{"title":"a"}}}`, `{"title":"t\u0000"}`, `{"title":"t","data":[1]}`, `{"title":"t","data":{"image":1},"image":"https://x/"}`,
		`{"title":"t","x":1}`, `{"title":"t","title":"u"}`, "{\"title\":\"\xff\"}",
	} {
		f.Add([]byte(s), "")
	}
	f.Add([]byte(`{"title":"t"}`), "urgent")
	f.Add([]byte(`{"title":"t"}`), push.PriorityNormal)
	fields := []string{"notification", "priority"}
	f.Fuzz(func(t *testing.T, raw []byte, priority string) {
		c, err := ParseNotification(raw, priority, push.PriorityHigh)
		if err != nil {
			for _, line := range strings.Split(err.Error(), "\n") {
				named := false
				for _, n := range fields {
					named = named || strings.HasPrefix(line, n)
				}
				if !named {
					t.Fatalf("%q priority %q: problem %q names no field", raw, priority, line)
				}
			}
			return
		}
		var n notificationRequest
		if !strictDecode(raw, &n) {
			t.Fatalf("%q: read, though it is not one strict JSON object", raw)
		}
		wantPriority := priority
		if priority == "" {
			wantPriority = push.PriorityHigh
		}
		if c.Title != n.Title || c.Body != n.Body || c.Subtitle != n.Subtitle || c.Sound != n.Sound || c.Image != n.Image ||
			c.Silent != n.Silent || c.CollapseID != n.CollapseID || c.Priority != wantPriority {
			t.Fatalf("%q priority %q: read as %+v", raw, priority, c)
		}
		if !c.Silent && strings.TrimSpace(c.Title) == "" && strings.TrimSpace(c.Body) == "" {
			t.Fatalf("%q: a shown notification without text accepted", raw)
		}
		if _, err := json.Marshal(c); err != nil {
			t.Fatalf("%q: read as %+v, which does not marshal: %v", raw, c, err)
		}
	})
}
