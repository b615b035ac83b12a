package apns

import (
	"context"
	"encoding/json"
	"net/http"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/pushpipe/pushpipe/stages/deliver/fakeprovider"
	"github.com/pushpipe/pushpipe/stages/deliver/push"
)

// typedData are custom keys of every JSON type: APNs carries each as it is
// (DESIGN: "data keys at the top level"), FCM as a string.
var typedData = map[string]json.RawMessage{"k": json.RawMessage(`"v"`), "s": json.RawMessage(`"1"`), "n": json.RawMessage(`1`),
	"b": json.RawMessage(`true`), "o": json.RawMessage(`{"a":[1,"x"]}`), "z": json.RawMessage(`null`)}

// What APNs receives for each field of the notification object (DESIGN,
// "The notification object"), through apns2: the exact payload and the
// headers, one row per field.
func TestPayloadPerField(t *testing.T) {
	zero, seven := 0, 7
	expires := time.Unix(1_900_000_000, 0)
	base := push.Notification{Title: "T", Body: "B", CollapseID: "camp-1"}
	with := func(f func(*push.Notification)) push.Notification { n := base; f(&n); return n }
	tests := []struct {
		name    string
		give    push.Notification
		body    string
		headers map[string]string // "" = absent
		expires int64             // apns-expiration, 0 = absent
	}{
		{name: "title and body, normal priority", give: base,
			body:    `{"aps":{"alert":{"title":"T","body":"B"}}}`,
			headers: map[string]string{"Apns-Push-Type": "alert", "Apns-Priority": "5", "Apns-Collapse-Id": "camp-1", "Apns-Topic": "com.example.app", "Apns-Expiration": ""}},
		{name: "high priority", give: with(func(n *push.Notification) { n.HighPriority = true }),
			body:    `{"aps":{"alert":{"title":"T","body":"B"}}}`,
			headers: map[string]string{"Apns-Push-Type": "alert", "Apns-Priority": "10"}},
		{name: "subtitle", give: with(func(n *push.Notification) { n.Subtitle = "S" }),
			body: `{"aps":{"alert":{"title":"T","subtitle":"S","body":"B"}}}`},
		{name: "badge", give: with(func(n *push.Notification) { n.Badge = &seven }),
			body: `{"aps":{"alert":{"title":"T","body":"B"},"badge":7}}`},
		{name: "badge 0 clears", give: with(func(n *push.Notification) { n.Badge = &zero }),
			body: `{"aps":{"alert":{"title":"T","body":"B"},"badge":0}}`},
		{name: "sound", give: with(func(n *push.Notification) { n.Sound = "ping.caf" }),
			body: `{"aps":{"alert":{"title":"T","body":"B"},"sound":"ping.caf"}}`},
		{name: "image", give: with(func(n *push.Notification) { n.Image = "https://img.example/a.png" }),
			body: `{"aps":{"alert":{"title":"T","body":"B"},"mutable-content":1},"image":"https://img.example/a.png"}`},
		{name: "category", give: with(func(n *push.Notification) { n.Category = "news" }),
			body: `{"aps":{"alert":{"title":"T","body":"B"},"category":"news"}}`},
		{name: "thread id", give: with(func(n *push.Notification) { n.ThreadID = "th-1" }),
			body: `{"aps":{"alert":{"title":"T","body":"B"},"thread-id":"th-1"}}`},
		{name: "collapse id", give: with(func(n *push.Notification) { n.CollapseID = "custom" }),
			body: `{"aps":{"alert":{"title":"T","body":"B"}}}`, headers: map[string]string{"Apns-Collapse-Id": "custom"}},
		{name: "data at the top level, as they are", give: with(func(n *push.Notification) { n.Data = typedData }),
			body: `{"aps":{"alert":{"title":"T","body":"B"}},"k":"v","s":"1","n":1,"b":true,"o":{"a":[1,"x"]},"z":null}`},
		{name: "expiry", give: with(func(n *push.Notification) { n.Expires = expires }),
			body: `{"aps":{"alert":{"title":"T","body":"B"}}}`, expires: expires.Unix()},
		{name: "silent", give: push.Notification{Silent: true, HighPriority: true, CollapseID: "camp-1", Data: map[string]json.RawMessage{"sync": json.RawMessage(`"1"`)}},
			body:    `{"aps":{"content-available":1},"sync":"1"}`,
			headers: map[string]string{"Apns-Push-Type": "background", "Apns-Priority": "5"}},
		{name: "the full object", give: push.Notification{Title: "T", Subtitle: "S", Body: "B", Badge: &seven, Sound: "default",
			Image: "https://img.example/a.png", Category: "news", ThreadID: "th", CollapseID: "c", Expires: expires.Add(time.Minute), HighPriority: true,
			Data: map[string]json.RawMessage{"k": json.RawMessage(`"v"`)}},
			body:    `{"aps":{"alert":{"title":"T","subtitle":"S","body":"B"},"badge":7,"sound":"default","category":"news","thread-id":"th","mutable-content":1},"image":"https://img.example/a.png","k":"v"}`,
			headers: map[string]string{"Apns-Push-Type": "alert", "Apns-Priority": "10", "Apns-Collapse-Id": "c"}, expires: expires.Add(time.Minute).Unix()},
	}
	fake := fakeprovider.Start(t, fakeprovider.Options{KeepRequests: true})
	s := newSender(t, fake)
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := tt.give
			n.Token = hexToken(i)
			if r := s.Send(context.Background(), n); r.Outcome != push.Sent || r.Status != http.StatusOK {
				t.Fatalf("Send = %+v, want sent", r)
			}
			got := receiptOf(t, fake, n.Token)
			if !sameJSON(t, got.Body, tt.body) {
				t.Errorf("body %s\nwant %s", got.Body, tt.body)
			}
			for h, want := range tt.headers {
				if v := first(got.Headers, h); v != want {
					t.Errorf("header %s = %q, want %q", h, v, want)
				}
			}
			want := ""
			if tt.expires != 0 {
				want = strconv.FormatInt(tt.expires, 10)
			}
			if v := first(got.Headers, "Apns-Expiration"); v != want {
				t.Errorf("apns-expiration %q, want %q (the campaign's expiry as it is)", v, want)
			}
		})
	}
}

// receiptOf is the full receipt of the one request for token.
func receiptOf(t *testing.T, fake *fakeprovider.Server, token string) fakeprovider.Receipt {
	t.Helper()
	rs, err := fake.FullReceipts()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rs {
		if r.Token == token {
			return r
		}
	}
	t.Fatalf("no receipt for %s", token)
	return fakeprovider.Receipt{}
}

func first(h map[string][]string, k string) string {
	if v := h[k]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// sameJSON compares two JSON texts as values (key order aside).
func sameJSON(t *testing.T, got, want string) bool {
	t.Helper()
	var g, w any
	if err := json.Unmarshal([]byte(got), &g); err != nil {
		t.Fatalf("body %q is not JSON: %v", got, err)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("want %q is not JSON: %v", want, err)
	}
	return reflect.DeepEqual(g, w)
}
