package deliver

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pushpipe/pushpipe/pipeline/devices"
	"github.com/pushpipe/pushpipe/stages/deliver/fakeprovider"
	"github.com/pushpipe/pushpipe/stages/deliver/push"
)

// A campaign with localized texts, to devices of many locales on both
// platforms: each gets its exact tag's text, else its language's, else the
// default, as APNs and FCM receive it.
func TestLocalePerDevice(t *testing.T) {
	f := newFixture(t)
	fake := fakeprovider.Start(t, fakeprovider.Options{KeepRequests: true})
	tests := []struct {
		locale string
		want   string // title
	}{
		{"ko-KR", "KO"},    // language
		{"ko", "KO"},       // exact
		{"pt-BR", "PT-BR"}, // exact, not the language's
		{"pt_BR", "PT-BR"}, // Android's spelling
		{"pt-PT", "PT"},    // language
		{"en", "EN"},       // exact
		{"EN-us", "EN"},    // language, whatever the case
		{"fr-FR", "DEFAULT"},
		{"", "DEFAULT"},
	}
	var rows [][]any
	want := map[string]string{}
	for i, tt := range tests {
		u := int64(i + 1)
		ios, android := iosToken(u, 0), androidToken(u, 0)
		at := time.Now().Add(-time.Hour)
		rows = append(rows, []any{testApp, ios, u, int16(devices.IOS), tt.locale, int16(0), at},
			[]any{testApp, android, u, int16(devices.Android), tt.locale, int16(0), at})
		want[ios], want[android] = tt.want, tt.want
	}
	if _, err := f.db.CopyFrom(f.ctx, pgx.Identifier{"devices"},
		[]string{"app", "token", "user_id", "platform", "locale", "state", "event_at"}, pgx.CopyFromRows(rows)); err != nil {
		t.Fatal(err)
	}
	f.createAppCampaign("loc", testApp, `{"title":"DEFAULT","body":"b","localized":{
		"ko":{"title":"KO","body":"b"},"pt":{"title":"PT","body":"b"},"pt-BR":{"title":"PT-BR","body":"b"},"en":{"title":"EN","body":"b"}}}`)
	f.emitUsers("loc", userRange(len(tests)))
	f.startStage(Config{Senders: map[push.Platform]push.Sender{push.IOS: apnsSender(t, fake), push.Android: fcmSender(t, fake)}},
		"d1", 30*time.Second)
	f.waitDone("loc", len(tests), 30*time.Second)

	rs, err := fake.FullReceipts()
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 2*len(tests) {
		t.Fatalf("%d requests, want %d", len(rs), 2*len(tests))
	}
	for _, r := range rs {
		var title string
		switch r.Provider {
		case "apns":
			var p struct {
				Aps struct{ Alert struct{ Title string } }
			}
			if err := json.Unmarshal([]byte(r.Body), &p); err != nil {
				t.Fatal(err)
			}
			title = p.Aps.Alert.Title
		case "fcm":
			var m struct {
				Message struct{ Notification struct{ Title string } }
			}
			if err := json.Unmarshal([]byte(r.Body), &m); err != nil {
				t.Fatal(err)
			}
			title = m.Message.Notification.Title
		}
		if title != want[r.Token] {
			t.Errorf("%s device %s: title %q, want %q", r.Provider, r.Token, title, want[r.Token])
		}
	}
}

// The campaign is rendered once per locale, not per device: every device
// of a locale shares its notification's rendering key, and a campaign of
// three locales has three.
func TestRenderOncePerLocale(t *testing.T) {
	f := newFixture(t)
	f.createAppCampaign("three", testApp, `{"title":"d","localized":{"ko":{"title":"k"},"es":{"title":"e"}}}`)
	cs := newCampaigns(f.db)
	c, err := cs.get(f.ctx, "three")
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string]bool{}
	for i, locale := range []string{"ko", "ko-KR", "es", "es-MX", "", "de", "ko", "es-ES"} {
		n := c.notification(device{token: fmt.Sprint(i), locale: locale, platform: push.IOS})
		keys[n.Key] = true
		if n.App != testApp || n.Token != fmt.Sprint(i) {
			t.Errorf("device %d: app %q token %q", i, n.App, n.Token)
		}
		if strings.HasPrefix(locale, "ko") != (n.Title == "k") {
			t.Errorf("locale %q: title %q", locale, n.Title)
		}
	}
	if len(keys) != 3 {
		t.Errorf("%d rendering keys, want 3 (one per locale)", len(keys))
	}
}

// collapseID is a campaign's default collapse id, as its receipts carry it.
func collapseID(campaignID string) string { return push.CollapseID(campaignID) }
