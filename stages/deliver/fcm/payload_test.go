package fcm

import (
	"context"
	"encoding/json"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/pushpipe/pushpipe/stages/deliver/fakeprovider"
	"github.com/pushpipe/pushpipe/stages/deliver/push"
)

// What FCM receives for each field of the notification object (DESIGN,
// "The notification object"), through the firebase SDK: the exact
// notification, data and android parts of the message, and the APNs
// headers for iOS devices reached through FCM; one row per field.
func TestMessagePerField(t *testing.T) {
	zero, seven := 0, 7
	base := push.Notification{Title: "T", Body: "B", CollapseID: "camp-1"}
	with := func(f func(*push.Notification)) push.Notification { n := base; f(&n); return n }
	const note = `"notification":{"title":"T","body":"B"}`
	tests := []struct {
		name    string
		give    push.Notification
		message string            // notification, data, android (and apns payload) as FCM gets them
		headers map[string]string // message.apns.headers; "" = absent
		ttl     time.Duration     // the notification expires this long after its send
	}{
		{name: "title and body, normal priority", give: base,
			message: `{` + note + `,"android":{"collapse_key":"camp-1","priority":"normal","notification":{"tag":"camp-1"}}}`,
			headers: map[string]string{"apns-priority": "5", "apns-collapse-id": "camp-1", "apns-expiration": ""}},
		{name: "high priority", give: with(func(n *push.Notification) { n.HighPriority = true }),
			message: `{` + note + `,"android":{"collapse_key":"camp-1","priority":"high","notification":{"tag":"camp-1"}}}`,
			headers: map[string]string{"apns-priority": "10"}},
		{name: "badge", give: with(func(n *push.Notification) { n.Badge = &seven }),
			message: `{` + note + `,"android":{"collapse_key":"camp-1","priority":"normal","notification":{"tag":"camp-1","notification_count":7}},"apns":{"payload":{"aps":{"badge":7}}}}`},
		{name: "badge 0", give: with(func(n *push.Notification) { n.Badge = &zero }),
			message: `{` + note + `,"android":{"collapse_key":"camp-1","priority":"normal","notification":{"tag":"camp-1","notification_count":0}},"apns":{"payload":{"aps":{"badge":0}}}}`},
		{name: "sound", give: with(func(n *push.Notification) { n.Sound = "ping" }),
			message: `{` + note + `,"android":{"collapse_key":"camp-1","priority":"normal","notification":{"tag":"camp-1","sound":"ping"}},"apns":{"payload":{"aps":{"sound":"ping"}}}}`},
		{name: "image", give: with(func(n *push.Notification) { n.Image = "https://img.example/a.png" }),
			message: `{"notification":{"title":"T","body":"B","image":"https://img.example/a.png"},"android":{"collapse_key":"camp-1","priority":"normal","notification":{"tag":"camp-1"}},"apns":{"payload":{"aps":{"mutable-content":1}}}}`},
		{name: "collapse id", give: with(func(n *push.Notification) { n.CollapseID = "custom" }),
			message: `{` + note + `,"android":{"collapse_key":"custom","priority":"normal","notification":{"tag":"custom"}}}`,
			headers: map[string]string{"apns-collapse-id": "custom"}},
		{name: "data as strings", give: with(func(n *push.Notification) {
			n.Data = map[string]json.RawMessage{"k": json.RawMessage(`"v"`), "s": json.RawMessage(`"1"`), "n": json.RawMessage(`1`),
				"b": json.RawMessage(`true`), "o": json.RawMessage(`{"a":[1,"x"]}`), "z": json.RawMessage(`null`)}
		}),
			message: `{` + note + `,"data":{"k":"v","s":"1","n":"1","b":"true","o":"{\"a\":[1,\"x\"]}","z":""},"android":{"collapse_key":"camp-1","priority":"normal","notification":{"tag":"camp-1"}}}`},
		{name: "ttl", give: base,
			message: `{` + note + `,"android":{"collapse_key":"camp-1","priority":"normal","ttl":"3600s","notification":{"tag":"camp-1"}}}`,
			ttl:     time.Hour},
		{name: "silent is data-only", give: push.Notification{Silent: true, HighPriority: true, CollapseID: "camp-1", Data: map[string]json.RawMessage{"sync": json.RawMessage(`"1"`)}},
			message: `{"data":{"sync":"1"},"android":{"collapse_key":"camp-1","priority":"high"},"apns":{"payload":{"aps":{"content-available":1}}}}`,
			headers: map[string]string{"apns-push-type": "background", "apns-priority": "5"}},
		{name: "the full object", give: push.Notification{Title: "T", Subtitle: "S", Body: "B", Badge: &seven, Sound: "default",
			Image: "https://img.example/a.png", Category: "news", ThreadID: "th", CollapseID: "c", HighPriority: true,
			Data: map[string]json.RawMessage{"k": json.RawMessage(`"v"`)}},
			message: `{"notification":{"title":"T","body":"B","image":"https://img.example/a.png"},"data":{"k":"v"},` +
				`"android":{"collapse_key":"c","priority":"high","ttl":"60s","notification":{"tag":"c","sound":"default","notification_count":7}},` +
				`"apns":{"payload":{"aps":{"badge":7,"sound":"default","category":"news","thread-id":"th","mutable-content":1}}}}`,
			headers: map[string]string{"apns-priority": "10", "apns-collapse-id": "c"}, ttl: time.Minute},
	}
	fake := fakeprovider.Start(t, fakeprovider.Options{KeepRequests: true})
	s := newSender(t, fake)
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := tt.give
			n.Token = "tok-" + strconv.Itoa(i)
			if tt.ttl > 0 {
				n.Expires = time.Now().Add(tt.ttl)
			}
			if r := s.Send(context.Background(), n); r.Outcome != push.Sent {
				t.Fatalf("Send = %+v, want sent", r)
			}
			got := messageOf(t, fake, n.Token)
			headers := got.APNS.Headers
			got.APNS.Headers = nil
			if tt.ttl > 0 {
				sameTTL(t, got.Android, tt.ttl)
			}
			var want sentMessage
			if err := json.Unmarshal([]byte(tt.message), &want); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				gb, _ := json.Marshal(got)
				t.Errorf("message %s\nwant    %s", gb, tt.message)
			}
			for h, want := range tt.headers {
				if v := headers[h]; v != want {
					t.Errorf("apns header %s = %q, want %q", h, v, want)
				}
			}
			if want := strconv.FormatInt(n.Expires.Unix(), 10); tt.ttl > 0 && headers["apns-expiration"] != want {
				t.Errorf("apns-expiration %q, want %s (the expiry as it is)", headers["apns-expiration"], want)
			}
		})
	}
}

// sameTTL checks that android's ttl is what was left of ttl at the send
// (rounded up to the second, a few seconds at most gone by), and writes it
// as ttl for the comparison of the whole message.
func sameTTL(t *testing.T, android any, ttl time.Duration) {
	t.Helper()
	a, _ := android.(map[string]any)
	s, _ := a["ttl"].(string)
	got, err := time.ParseDuration(s)
	if err != nil || got > ttl || got < ttl-5*time.Second {
		t.Errorf("android ttl %q, want what is left of %v at the send", s, ttl)
		return
	}
	a["ttl"] = strconv.Itoa(int(ttl.Seconds())) + "s"
}

// sentMessage is the message of an FCM request, its token aside, as
// generic JSON values (so every key the SDK writes is compared).
type sentMessage struct {
	Notification any `json:"notification,omitempty"`
	Data         any `json:"data,omitempty"`
	Android      any `json:"android,omitempty"`
	APNS         struct {
		Headers map[string]string `json:"headers,omitempty"`
		Payload any               `json:"payload,omitempty"`
	} `json:"apns"`
}

// messageOf is the message of the one request for token.
func messageOf(t *testing.T, fake *fakeprovider.Server, token string) sentMessage {
	t.Helper()
	rs, err := fake.FullReceipts()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rs {
		if r.Token != token {
			continue
		}
		var req struct {
			Message map[string]json.RawMessage `json:"message"`
		}
		if err := json.Unmarshal([]byte(r.Body), &req); err != nil {
			t.Fatalf("body %q: %v", r.Body, err)
		}
		for k := range req.Message {
			switch k {
			case "token", "notification", "data", "android", "apns":
			default:
				t.Errorf("message has %q: %s", k, r.Body)
			}
		}
		delete(req.Message, "token")
		b, _ := json.Marshal(req.Message)
		var m sentMessage
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	t.Fatalf("no receipt for %s", token)
	return sentMessage{}
}
