package console_test

import (
	"encoding/json"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/pushpipe/pushpipe/stages/api"
	"github.com/pushpipe/pushpipe/stages/deliver/apns"
	"github.com/pushpipe/pushpipe/stages/deliver/fcm"
	"github.com/pushpipe/pushpipe/stages/deliver/push"
)

// TestPreviewIsThePayloadSent: the new-campaign form's preview shows the
// APNs payload deliver sends (apns.Payload) and the FCM notification and
// data (fcm.Payload), for the notification object the form makes: what is
// left empty is left out. It showed "title": "" for a body alone, and an
// empty FCM data object, where the server leaves them out.
func TestPreviewIsThePayloadSent(t *testing.T) {
	t.Parallel()
	b := newBed(t)
	b.signIn()
	b.run(chromedp.Navigate(b.url+"/ui/campaigns/new"), waitJS(`document.querySelector('[data-preview="apns"]').textContent !== ""`))
	tests := []struct {
		name     string
		fields   map[string]string // the form's fields by name
		category string            // the campaign's (its APNs category)
		note     string            // the notification object they make
	}{
		{"a body alone", map[string]string{"body": "Hello"}, "", `{"body": "Hello"}`},
		{"a title alone", map[string]string{"title": "Hi"}, "", `{"title": "Hi"}`},
		{"everything", map[string]string{"title": "Hi", "subtitle": "there", "body": "Hello", "badge": "3", "sound": "default",
			"image": "https://cdn.example.com/a.png", "thread_id": "t1", "data": `{"url": "https://example.com", "n": 3, "o": {"a": [1]}}`},
			"sport", `{"title": "Hi", "subtitle": "there", "body": "Hello", "badge": 3, "sound": "default",
			"image": "https://cdn.example.com/a.png", "thread_id": "t1", "data": {"url": "https://example.com", "n": 3, "o": {"a": [1]}}}`},
		{"silent", map[string]string{"silent": "1", "data": `{"sync": true}`, "thread_id": "t2"}, "", `{"silent": true, "data": {"sync": true}, "thread_id": "t2"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := b.on(t)
			fields, _ := json.Marshal(tt.fields)
			c.run(waitJS(fmt.Sprintf(`(() => { const f = document.getElementById("new-campaign"), v = %s;
				for (const n of ["title", "subtitle", "body", "badge", "sound", "image", "thread_id", "data", "category"]) f.elements[n].value = v[n] || "";
				f.elements["category"].value = %q;
				f.elements["silent"].checked = v.silent === "1";
				f.dispatchEvent(new Event("input", {bubbles: true})); return true })()`, fields, tt.category)))
			content, err := api.ParseNotification([]byte(tt.note), "", push.PriorityNormal)
			if err != nil {
				t.Fatal(err)
			}
			n, err := content.Render("c1", "", tt.category, time.Time{})
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
			wantFCM, err := fcm.Payload(n)
			if err != nil {
				t.Fatal(err)
			}
			msg := decoded(t, c.text(`pre[data-preview="fcm"]`))["message"].(map[string]any)
			got := map[string]any{}
			for _, k := range []string{"notification", "data"} {
				if v, ok := msg[k]; ok {
					got[k] = v
				}
			}
			if want := decoded(t, string(wantFCM)); !reflect.DeepEqual(got, want) {
				t.Errorf("the FCM preview's notification and data are\n%v\nwant what deliver sends\n%v", got, want)
			}
		})
	}
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
