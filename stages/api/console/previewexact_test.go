package console_test

import (
	"cmp"
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/pushpipe/pushpipe/stages/api"
	"github.com/pushpipe/pushpipe/stages/deliver/apns"
	"github.com/pushpipe/pushpipe/stages/deliver/fakeprovider"
	"github.com/pushpipe/pushpipe/stages/deliver/fcm"
	"github.com/pushpipe/pushpipe/stages/deliver/push"
)

// TestPreviewIsThePayloadSent: the new-campaign form's preview shows the
// APNs payload deliver sends (apns.Payload) and the FCM message the
// firebase SDK puts on the wire, as the provider at the network edge reads
// it (a real fcm.Sender to the fake provider): its notification and data,
// and its android block (priority, TTL, collapse key, the notification's
// tag, sound and count), for the notification object the form makes: what
// is left empty is left out. It showed "title": "" for a body alone, an
// empty FCM data object, "priority": "HIGH" where the SDK writes "high",
// and no collapse key for a campaign id past APNs's 64 bytes, which goes
// as its digest (push.CollapseID).
func TestPreviewIsThePayloadSent(t *testing.T) {
	t.Parallel()
	b := newBed(t)
	fake := fakeprovider.Start(t, fakeprovider.Options{KeepRequests: true})
	android, err := fcm.New(t.Context(), fcm.Config{Project: "test-project", Endpoint: fake.URL() + "/v1", RootCAs: fake.CertPool()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(android.Close)
	b.signIn()
	b.run(chromedp.Navigate(b.url+"/ui/campaigns/new"), waitJS(`document.querySelector('[data-preview="apns"]').textContent !== ""`))
	longID := strings.Repeat("spring-sale-", 10) // 120 bytes: the API takes 128
	tests := []struct {
		name     string
		fields   map[string]string // the form's fields by name
		category string            // the campaign's (its APNs category)
		id       string            // the campaign's id (the Id field)
		ttl      int64             // seconds (the TTL field; 0: left empty, the default)
		note     string            // the notification object they make
		priority string
	}{
		{"a body alone", map[string]string{"body": "Hello"}, "", "c1", 0, `{"body": "Hello"}`, "normal"},
		{"a title alone", map[string]string{"title": "Hi"}, "", "c2", 0, `{"title": "Hi"}`, "normal"},
		{"everything", map[string]string{"title": "Hi", "subtitle": "there", "body": "Hello", "badge": "3", "sound": "default",
			"image": "https://cdn.example.com/a.png", "thread_id": "t1", "collapse_id": "score-12",
			"data": `{"url": "https://example.com", "n": 3, "f": 1.5, "b": true, "z": null, "o": {"a": [1]}}`},
			"sport", "launch-7", 3600, `{"title": "Hi", "subtitle": "there", "body": "Hello", "badge": 3, "sound": "default",
			"image": "https://cdn.example.com/a.png", "thread_id": "t1", "collapse_id": "score-12",
			"data": {"url": "https://example.com", "n": 3, "f": 1.5, "b": true, "z": null, "o": {"a": [1]}}}`, "high"},
		{"silent", map[string]string{"silent": "1", "data": `{"sync": true}`, "thread_id": "t2"}, "", "sync-1", 600,
			`{"silent": true, "data": {"sync": true}, "thread_id": "t2"}`, "high"},
		{"an id past 64 bytes", map[string]string{"title": "Sale"}, "", longID, 0, `{"title": "Sale"}`, "normal"},
		{"an id of 64 bytes", map[string]string{"title": "Sale"}, "", strings.Repeat("x", 64), 0, `{"title": "Sale"}`, "normal"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := b.on(t)
			fields, _ := json.Marshal(tt.fields)
			ttl := ""
			if tt.ttl > 0 {
				ttl = strconv.FormatInt(tt.ttl, 10)
			}
			c.run(waitJS(fmt.Sprintf(`(() => { const f = document.getElementById("new-campaign"), v = %s;
				for (const n of ["title", "subtitle", "body", "badge", "sound", "image", "thread_id", "collapse_id", "data", "category"]) f.elements[n].value = v[n] || "";
				f.elements["category"].value = %q;
				f.elements["id"].value = %q;
				f.elements["ttl_seconds"].value = %q;
				f.querySelector('input[name="priority"][value="%s"]').checked = true;
				f.elements["silent"].checked = v.silent === "1";
				f.dispatchEvent(new Event("input", {bubbles: true})); return true })()`, fields, tt.category, tt.id, ttl, tt.priority)))
			content, err := api.ParseNotification([]byte(tt.note), tt.priority, push.PriorityNormal)
			if err != nil {
				t.Fatal(err)
			}
			seconds := cmp.Or(tt.ttl, 86400)
			start := time.Now()
			n, err := content.Render(tt.id, "", tt.category, start.Add(time.Duration(seconds)*time.Second))
			if err != nil {
				t.Fatal(err)
			}
			wantAPNs, err := apns.Payload(n)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := decoded(t, c.text(`pre[data-preview="apns"]`)), decoded(t, string(wantAPNs)); !reflect.DeepEqual(got, want) {
				t.Errorf("the APNs preview is\n%v\nwant what deliver sends\n%v", got, want)
			}
			// Each case its own id: the sender renders a campaign's
			// message once (its cache is by id).
			n.Token = "token-" + tt.id
			if r := android.Send(t.Context(), n); r.Outcome != push.Sent {
				t.Fatalf("FCM send: %+v", r)
			}
			sentBy := time.Since(start)
			wire := fcmSent(t, fake, n.Token)
			got := decoded(t, c.text(`pre[data-preview="fcm"]`))["message"].(map[string]any)
			// The TTL on the wire is what is left of it at the send, in
			// whole seconds rounded up: all of it unless the send came a
			// second or more after the expiry was set.
			if a, ok := wire["android"].(map[string]any); ok {
				if left, err := time.ParseDuration(fmt.Sprint(a["ttl"])); err == nil && left < time.Duration(seconds)*time.Second &&
					left >= time.Duration(seconds)*time.Second-sentBy.Truncate(time.Second)-time.Second {
					a["ttl"] = fmt.Sprintf("%ds", seconds)
				}
			}
			// The token is each device's, the apns block iOS devices'
			// (they are sent through APNs): the preview says so.
			delete(wire, "token")
			delete(wire, "apns")
			if !reflect.DeepEqual(got, wire) {
				t.Errorf("the FCM preview is\n%v\nwant the message on the wire\n%v", got, wire)
			}
			// An id past 64 bytes is said to go as its digest.
			digest := tt.fields["collapse_id"] == "" && n.CollapseID != tt.id
			if note := c.text("#collapse-note"); digest != strings.Contains(note, "SHA-256 digest") {
				t.Errorf("collapse id %q for id %q, and the preview says %q", n.CollapseID, tt.id, note)
			}
		})
	}
}

// fcmSent is the message of the FCM request for token the fake accepted,
// as the SDK wrote it.
func fcmSent(t *testing.T, fake *fakeprovider.Server, token string) map[string]any {
	t.Helper()
	rs, err := fake.FullReceipts()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rs {
		if r.Provider == fakeprovider.ProviderFCM && r.Token == token {
			return decoded(t, r.Body)["message"].(map[string]any)
		}
	}
	t.Fatalf("no FCM request for %s among %d", token, len(rs))
	return nil
}

// decoded is a JSON object.
func decoded(t *testing.T, text string) map[string]any {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal([]byte(text), &v); err != nil {
		t.Fatalf("%v: %s", err, text)
	}
	return v
}
