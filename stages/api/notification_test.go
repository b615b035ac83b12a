package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/pushpipe/pushpipe/pipeline/campaign"
	"github.com/pushpipe/pushpipe/stages/deliver"
	"github.com/pushpipe/pushpipe/stages/deliver/push"
)

// Every field of the notification object, wrong in type or in range: 400
// naming the field, and nothing queued.
func TestNotificationFieldsRefused(t *testing.T) {
	t.Parallel()
	a := newDeviceAPI(t, env.Redis.Addr, Auth{Insecure: true})
	tests := []struct{ name, give, want string }{
		{"title type", `"notification":{"title":1}`, `field "notification.title"`},
		{"subtitle type", `"notification":{"title":"t","subtitle":[]}`, `field "notification.subtitle"`},
		{"subtitle NUL", `"notification":{"title":"t","subtitle":"a\u0000"}`, `notification.subtitle: contains a NUL`},
		{"body type", `"notification":{"body":{}}`, `field "notification.body"`},
		{"badge type", `"notification":{"title":"t","badge":"1"}`, `field "notification.badge"`},
		{"badge fraction", `"notification":{"title":"t","badge":1.5}`, `field "notification.badge"`},
		{"badge negative", `"notification":{"title":"t","badge":-1}`, `notification.badge: must be between 0`},
		{"badge too big", `"notification":{"title":"t","badge":4294967296}`, `notification.badge`},
		{"sound type", `"notification":{"title":"t","sound":true}`, `field "notification.sound"`},
		{"sound too long", `"notification":{"title":"t","sound":"` + strings.Repeat("s", 65) + `"}`, `notification.sound: must be a sound file name`},
		{"sound path", `"notification":{"title":"t","sound":"../x.caf"}`, `notification.sound: must be a sound file name`},
		{"image type", `"notification":{"title":"t","image":1}`, `field "notification.image"`},
		{"image http", `"notification":{"title":"t","image":"http://x.example/a.png"}`, `notification.image: must be an https:// URL`},
		{"image not a URL", `"notification":{"title":"t","image":"a.png"}`, `notification.image: must be an https:// URL`},
		{"image scheme upper case", `"notification":{"title":"t","image":"HTTPS://x.example/a.png"}`, `notification.image: must be an https:// URL`},
		{"image with credentials", `"notification":{"title":"t","image":"https://u:p@x.example/a.png"}`, `notification.image: must not carry a user name or password`},
		{"image data key", `"notification":{"title":"t","image":"https://x.example/a.png","data":{"image":"x"}}`, `notification.data: key "image"`},
		{"category type", `"notification":{"title":"t","category":2}`, `field "notification.category"`},
		{"category too long", `"notification":{"title":"t","category":"` + strings.Repeat("c", 65) + `"}`, `notification.category: must be at most 64`},
		{"thread_id type", `"notification":{"title":"t","thread_id":2}`, `field "notification.thread_id"`},
		{"thread_id control", `"notification":{"title":"t","thread_id":"a\nb"}`, `notification.thread_id: must be at most 64 printable`},
		{"collapse_id too long", `"notification":{"title":"t","collapse_id":"` + strings.Repeat("c", 65) + `"}`, `notification.collapse_id: must be at most 64`},
		{"silent type", `"notification":{"title":"t","silent":"yes"}`, `field "notification.silent"`},
		{"silent with title", `"notification":{"title":"t","silent":true}`, `notification.title: a silent push shows nothing`},
		{"silent with badge", `"notification":{"silent":true,"badge":1}`, `notification.badge: a silent push shows nothing`},
		{"silent with localized", `"notification":{"silent":true,"localized":{"ko":{"title":"t"}}}`, `notification.localized: a silent push`},
		{"localized type", `"notification":{"title":"t","localized":["ko"]}`, `field "notification.localized"`},
		{"localized bad tag", `"notification":{"title":"t","localized":{"not a tag":{"title":"t"}}}`, `notification.localized.not a tag: the key must be a BCP 47`},
		{"localized underscore", `"notification":{"title":"t","localized":{"pt_BR":{"title":"t"}}}`, `notification.localized.pt_BR: the key must be a BCP 47`},
		{"localized twice", `"notification":{"title":"t","localized":{"ko":{"title":"a"},"KO":{"title":"b"}}}`, `is given twice`},
		{"localized empty", `"notification":{"title":"t","localized":{"ko":{}}}`, `notification.localized.ko: a title or a body is required`},
		// Text of white space alone shows an empty notification: a
		// template that rendered blank, refused as no text is.
		{"blank title", `"notification":{"title":"  "}`, `notification: a title or a body is required: they hold only white space`},
		{"blank title and body", `"notification":{"title":" ","body":"\n\t\u00a0"}`, `notification: a title or a body is required: they hold only white space`},
		{"localized blank", `"notification":{"title":"t","localized":{"ko":{"title":"\u3000"}}}`, `notification.localized.ko: a title or a body is required: they hold only white space`},
		{"localized unknown field", `"notification":{"title":"t","localized":{"ko":{"titel":"x"}}}`, `unknown field "notification.localized.ko.titel"`},
		{"data reserved by FCM", `"notification":{"title":"t","data":{"google.x":"1"}}`, `notification.data: key "google.x" is reserved by FCM`},
		{"data reserved by APNs", `"notification":{"title":"t","data":{"aps":"1"}}`, `notification.data: key "aps"`},
		{"priority", `"notification":{"title":"t"},"priority":"urgent"`, `priority: must be "normal" or "high"`},
		{"priority type", `"notification":{"title":"t"},"priority":10`, `field "priority"`},
		{"ttl type", `"notification":{"title":"t"},"ttl_seconds":"1"`, `field "ttl_seconds"`},
		// Every problem in the one error string, each naming its field: a
		// client that fixed the badge learnt of the sound from the next 400.
		{"two fields", `"notification":{"title":"t","badge":-1,"sound":"../x.caf"}`,
			`notification.badge: must be between 0 (clears the badge) and 2147483647, got -1; notification.sound: must be a sound file name`},
		{"priority and text", `"notification":{"title":"a\u0000","body":"b\u0000"},"priority":"urgent"`,
			`priority: must be "normal" or "high", got "urgent"; notification.title: contains a NUL character (\u0000) at byte 1, ` +
				`which cannot be stored; remove it; notification.body: contains a NUL`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := a.do("POST", "/v1/campaigns", `{"app":"a","channels":["x"],`+tt.give+`}`, "")
			if r.status != http.StatusBadRequest || !strings.Contains(r.error(), tt.want) {
				t.Fatalf("got %d %.300s, want 400 with %q", r.status, r.body, tt.want)
			}
		})
	}
	if n := a.campaignEntries(); n != 0 {
		t.Fatalf("%d campaign entries after only refused requests", n)
	}
	// One blank field beside text is no empty notification.
	r := a.do("POST", "/v1/campaigns", `{"app":"a","channels":["x"],"allow_empty":true,"notification":{"title":" ","body":"b"}}`, "")
	if r.status != http.StatusCreated {
		t.Fatalf("a blank title beside a body: got %d %.300s, want 201", r.status, r.body)
	}
}

// The 4096 bytes are checked against the largest rendered locale: a
// campaign whose default text fits but whose Korean text renders to about
// 5,000 bytes is refused, with the size and the locale.
func TestNotificationSizeOfLargestLocale(t *testing.T) {
	t.Parallel()
	a := newDeviceAPI(t, env.Redis.Addr, Auth{Insecure: true})
	big := strings.Repeat("가", 1700) // 3 bytes each: 5100 bytes
	tests := []struct{ name, give, want string }{
		{"default text", `{"title":"` + strings.Repeat("t", 2000) + `","subtitle":"` + strings.Repeat("s", 3000) + `"}`, "notification: renders to 5"},
		{"one locale", `{"title":"t","localized":{"en":{"title":"hi"},"ko":{"title":"` + big + `"}}}`, "notification.localized.ko: renders to 5"},
		{"data", `{"title":"t","data":{"blob":"` + strings.Repeat("x", 5000) + `"}}`, "notification: renders to 5"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := a.do("POST", "/v1/campaigns", `{"app":"a","channels":["x"],"notification":`+tt.give+`}`, "")
			if r.status != http.StatusBadRequest || !strings.Contains(r.error(), tt.want) || !strings.Contains(r.error(), "over the 4096") {
				t.Fatalf("got %d %.300s, want 400 with %q", r.status, r.body, tt.want)
			}
		})
	}
}

// A campaign for an app the API does not know: 422, nothing stored; one
// without an app is malformed (400), whatever apps the API knows. The 422
// gives the fix that works where this API's apps come from, and lists them
// when there are few: it said "add it to PUSHPIPE_APP_KEYS and restart"
// whatever the source, so with an apps file it did not name the file, and
// under pushpipe dev (which sets PUSHPIPE_APP_KEYS itself) it could not be
// followed. An app of the apps file without app keys is a real target:
// campaigns take the operator token.
func TestCampaignUnknownApp(t *testing.T) {
	t.Parallel()
	keyed := Auth{AdminToken: secAdmin, AppKeys: map[string]string{"news": secNews}}
	file := func(apps ...string) *AppsFile { return &AppsFile{Path: "/etc/pushpipe/apps.toml", Apps: apps} }
	tests := []struct {
		name   string
		auth   Auth
		file   *AppsFile
		dev    bool
		app    string
		status int
		says   string // what the 422 says
	}{
		{"no app, app keys configured", keyed, nil, false, "", http.StatusBadRequest, ""},
		{"app key's app", keyed, nil, false, "news", http.StatusCreated, ""},
		{"not an app key's app", keyed, nil, false, "sport", http.StatusUnprocessableEntity,
			`app "sport" is not known to this API: its apps are those of PUSHPIPE_APP_KEYS ("news"): use one of them, or add it to PUSHPIPE_APP_KEYS and restart the API`},
		{"in the apps file, no app key", Auth{AdminToken: secAdmin}, file("sport"), false, "sport", http.StatusCreated, ""},
		{"not in the apps file", keyed, file("sport", "weather"), false, "news", http.StatusUnprocessableEntity,
			`app "news" is not known to this API: its apps are those of the apps file /etc/pushpipe/apps.toml ("sport", "weather"): use one of them, or add it to that file and send SIGHUP to the API and deliver`},
		{"not in an apps file of many", keyed, file("a1", "a2", "a3", "a4", "a5", "a6"), false, "news", http.StatusUnprocessableEntity,
			`its apps are those of the apps file /etc/pushpipe/apps.toml (6 apps): use one of them`},
		{"not pushpipe dev's app", Auth{AdminToken: secAdmin, AppKeys: map[string]string{"demo": secNews}}, nil, true, "news", http.StatusUnprocessableEntity,
			`app "news" is not known to this API: pushpipe dev serves only the app it seeded ("demo"): use it`},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := newSecAPI(t, Config{Auth: tt.auth, AppsFile: tt.file, Dev: tt.dev}, true)
			r := a.call("POST", "/v1/campaigns", fmt.Sprintf(`{"id":"u%d","app":%q,"channels":["x"],"notification":{"title":"t"},"allow_empty":true}`, i, tt.app), "Bearer "+secAdmin)
			if r.status != tt.status {
				t.Fatalf("got %d %s, want %d", r.status, r.body, tt.status)
			}
			if !strings.Contains(r.error(), tt.says) {
				t.Errorf("422 %q, want it to say %q", r.error(), tt.says)
			}
		})
	}
}

// The whole object is stored as given and rendered per locale as deliver
// will; the same request again is the same campaign, a change is a 409.
func TestNotificationStored(t *testing.T) {
	t.Parallel()
	a := newDeviceAPI(t, env.Redis.Addr, Auth{Insecure: true})
	note := `{"title":"Hello","subtitle":"sub","body":"b","data":{"n":1},"badge":0,"sound":"ping.caf",
		"image":"https://img.example/a.png","category":"news","thread_id":"th","collapse_id":"cid","localized":{"ko":{"title":"안녕"}}}`
	body := `{"id":"full","app":"a","channels":["x"],"priority":"high","ttl_seconds":60,"notification":` + note + `}`
	for _, want := range []int{http.StatusCreated, http.StatusOK} {
		if r := a.do("POST", "/v1/campaigns", body, ""); r.status != want {
			t.Fatalf("got %d %s, want %d", r.status, r.body, want)
		}
	}
	if r := a.do("POST", "/v1/campaigns", strings.Replace(body, `"badge":0`, `"badge":1`, 1), ""); r.status != http.StatusConflict {
		t.Fatalf("changed badge: got %d %s, want 409", r.status, r.body)
	}
	c, err := campaign.Load(t.Context(), a.db, "full")
	if err != nil {
		t.Fatal(err)
	}
	content, notes, err := deliver.Render(c)
	if err != nil {
		t.Fatal(err)
	}
	zero := 0
	want := push.Content{Text: push.Text{Title: "Hello", Subtitle: "sub", Body: "b"}, Data: json.RawMessage(`{"n": 1}`),
		Badge: &zero, Sound: "ping.caf", Image: "https://img.example/a.png", Category: "news", ThreadID: "th",
		CollapseID: "cid", Localized: map[string]push.Text{"ko": {Title: "안녕"}}, Priority: "high"}
	if got, _ := json.Marshal(content); string(got) != string(must(json.Marshal(want))) {
		t.Errorf("stored %s\nwant   %s", got, must(json.Marshal(want)))
	}
	if len(notes) != 2 || notes["ko"].Title != "안녕" || notes[""].Title != "Hello" || notes["ko"].CollapseID != "cid" || !notes[""].HighPriority {
		t.Errorf("rendered %+v", notes)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// The largest notification the limits allow fits both routes' body caps:
// 100 locales of Korean text near the 4 KB rendered size, written as
// \uXXXX escapes (as Python's json.dumps writes them by default), about
// 720 KB of JSON. The cap once refused a quarter of this with 413 "split
// it", which a campaign cannot be.
func TestLargestNotificationFits(t *testing.T) {
	t.Parallel()
	a := newDeviceAPI(t, env.Redis.Addr, Auth{Insecure: true})
	title := strings.Repeat(`\uac00`, 1200) // 3,600 bytes rendered
	locales := make([]string, 100)
	for i := range locales {
		locales[i] = fmt.Sprintf(`"ko-x-l%02d":{"title":"%s"}`, i, title)
	}
	note := `{"title":"t","localized":{` + strings.Join(locales, ",") + `}}`
	tests := []struct {
		path, body string
		want       int
	}{
		{"/v1/campaigns", `{"app":"a","channels":["x"],"allow_empty":true,"notification":` + note + `}`, http.StatusCreated},
		{"/v1/messages", `{"app":"a","users":[1,2],"notification":` + note + `}`, http.StatusAccepted},
	}
	for _, tt := range tests {
		if len(tt.body) < 700_000 {
			t.Fatalf("the body is %d bytes: not the largest case", len(tt.body))
		}
		if r := a.do("POST", tt.path, tt.body, ""); r.status != tt.want {
			t.Errorf("POST %s of %d bytes: %d %.300s, want %d", tt.path, len(tt.body), r.status, r.body, tt.want)
		}
	}
}

// ParseNotification, which `pushpipe send` and the console's form call,
// words a malformed object as the API words it in a body: naming the field
// and what it takes, never the decoder's Go types. It said "json: cannot
// unmarshal JSON string into Go api.textRequest".
func TestParseNotificationSaysWhatIsWrong(t *testing.T) {
	tests := []struct{ name, give, want string }{
		{"localized text not an object", `{"title":"t","localized":{"ko":"속보"}}`, `notification: field "localized.ko": expected a JSON object, got string`},
		{"badge not an integer", `{"title":"t","badge":"3"}`, `notification: field "badge": expected an integer, got string`},
		{"an unknown field", `{"title":"t","colour":"red"}`, `"colour"`},
		{"not JSON", `{"title":`, `notification: bad JSON`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseNotification([]byte(tt.give), "", push.PriorityNormal)
			if err == nil || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "Go ") || strings.Contains(err.Error(), "json:") {
				t.Errorf("ParseNotification(%s): %v, want it to say %q in the API's words", tt.give, err, tt.want)
			}
		})
	}
}
