package api

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	jsonv2 "github.com/go-json-experiment/json"

	"github.com/pushpipe/pushpipe/pipeline/devices"
)

// The HTTP fuzz targets send arbitrary bodies through the real Server (auth,
// body cap, rate limit, handler, Redis) and check each answer against an
// independent reading of the same body: no panic, no 5xx, a JSON answer, and
// 2xx exactly when the body is one well-formed, valid value.

// fuzzCall serves one request in process and returns the status and the
// decoded JSON answer (nil for an empty body).
func fuzzCall(t *testing.T, h http.Handler, method, path string, body []byte, bearer string) (int, map[string]any) {
	t.Helper()
	req := httptest.NewRequest(method, path, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+bearer)
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code >= 500 && rec.Code != http.StatusNotImplemented { // 501: a handler not built yet
		t.Fatalf("%s %s %q: %d %s", method, path, body, rec.Code, rec.Body)
	}
	if rec.Body.Len() == 0 {
		return rec.Code, nil
	}
	var out map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
		t.Fatalf("%s %s: answer %d is not a JSON object: %q", method, path, rec.Code, rec.Body)
	}
	if rec.Code >= 400 {
		if msg, _ := out["error"].(string); msg == "" {
			t.Fatalf("%s %s: answer %d without an error message: %q", method, path, rec.Code, rec.Body)
		}
	}
	return rec.Code, out
}

// strictDecode is the contract's reading of a body: exactly one JSON value of
// v's shape, valid UTF-8, field names matched case-sensitively, no field
// twice, no unknown field, nothing after it. It is encoding/json/v2's
// one-shot Unmarshal; the server decodes through its own decoder loop.
func strictDecode(body []byte, v any) bool {
	return jsonv2.Unmarshal(body, v, jsonv2.RejectUnknownMembers(true)) == nil
}

func fuzzDeviceSeeds() []string {
	return []string{
		deviceJSON("news", "ios", iosToken, 42, "en-GB"),
		deviceJSON("news", "android", androidToken, 1, ""),
		deviceJSON("sport", "ios", iosToken, 42, ""),
		`{"app":"news","platform":"ios","token":"` + iosToken + `","user_id":42,"locale":"en","x":1}`,
		`{"app":"news","platform":"ios","token":"` + iosToken + `","user_id":42}{}`,
		`{"APP":"news","Platform":"ios","TOKEN":"` + iosToken + `","user_id":1e2}`,
		`{"app":"news","platform":"ios","token":"` + iosToken + `","user_id":-1}`,
		`{"app":"news","platform":"ios","token":"` + iosToken + `","user_id":9223372036854775808}`,
		`{"app":"\u0000","platform":"web","token":"","user_id":"1"}`,
		`{"app":"news","app":"sport","platform":"ios","token":"` + iosToken + `","user_id":42}`,
		`{"app":"news","platform":"ios","token":"` + iosToken + `","user_id":42,"locale":"\udc00"}`,
		"{\"app\":\"news\xc0\",\"platform\":\"ios\",\"token\":\"" + iosToken + "\",\"user_id\":42}",
		`null`, `[]`, `"x"`, ``, `{`, "\xff",
	}
}

func FuzzDeviceBody(f *testing.F) {
	for _, s := range fuzzDeviceSeeds() {
		f.Add([]byte(s), false)
		f.Add([]byte(s), true)
	}
	h := New(secConfig(f, Config{Auth: secAuth(), DeviceWriteRate: 1e9}, false))
	f.Fuzz(func(t *testing.T, body []byte, asApp bool) {
		bearer := secAdmin
		if asApp {
			bearer = secNews
		}
		status, out := fuzzCall(t, h, "POST", "/v1/devices", body, bearer)
		var req deviceRequest
		valid := strictDecode(body, &req)
		if valid {
			_, err := req.event()
			valid = err == nil
		}
		want := http.StatusBadRequest
		switch {
		case len(body) > deviceBody:
			want = http.StatusRequestEntityTooLarge
		case valid && asApp && req.App != "news":
			want = http.StatusForbidden
		case valid:
			want = http.StatusAccepted
		}
		if status != want {
			t.Fatalf("%q (app key %v): got %d %v, want %d", body, asApp, status, out, want)
		}
		if status == http.StatusAccepted && out["accepted"] != 1.0 {
			t.Fatalf("%q: 202 %v", body, out)
		}
	})
}

func FuzzDeviceBatchBody(f *testing.F) {
	for _, s := range fuzzDeviceSeeds() {
		f.Add([]byte("["+s+"]"), true)
		f.Add([]byte("["+s+","+s+"]"), false)
	}
	f.Add([]byte(devicesJSON("news", 3, 0)), true)
	f.Add([]byte(devicesJSON("news", 2, 0)+" "), false)
	f.Add([]byte(`[]`), true)
	f.Add([]byte(`[1,`), true)
	f.Add([]byte(`[[],{}]`), false)
	f.Add([]byte(` [ ] [`), false)
	h := New(secConfig(f, Config{Auth: secAuth(), DeviceWriteRate: 1e9}, false))
	f.Fuzz(func(t *testing.T, body []byte, asApp bool) {
		bearer := secAdmin
		if asApp {
			bearer = secNews
		}
		status, out := fuzzCall(t, h, "POST", "/v1/devices/batch", body, bearer)
		var reqs []deviceRequest
		valid := strictDecode(body, &reqs) && len(reqs) >= 1
		foreign := false
		if valid {
			if len(reqs) > MaxDeviceBatch {
				// Too many items is refused as a whole, before any is checked.
				if status != http.StatusRequestEntityTooLarge {
					t.Fatalf("batch of %d items: got %d %v, want 413", len(reqs), status, out)
				}
				return
			}
			for i := range reqs {
				if _, err := reqs[i].event(); err != nil {
					valid = false
					break
				}
				foreign = foreign || asApp && reqs[i].App != "news"
			}
		}
		want := http.StatusBadRequest
		switch {
		case valid && foreign:
			want = http.StatusForbidden
		case valid:
			want = http.StatusAccepted
		}
		if status != want {
			t.Fatalf("%q (app key %v): got %d %v, want %d", body, asApp, status, out, want)
		}
		if status == http.StatusAccepted {
			if out["accepted"] != float64(len(reqs)) {
				t.Fatalf("%q: %d devices, answer %v", body, len(reqs), out)
			}
			if n := countItems(body); n != len(reqs) {
				t.Fatalf("%q: the rate limit counted %d devices, the batch has %d", body, n, len(reqs))
			}
		}
	})
}

func FuzzPreferencesBody(f *testing.F) {
	for _, s := range []string{
		`{"muted_channels":["promo","news"],"muted_categories":["sale"]}`,
		`{}`, `{"muted_channels":null}`, `{"muted_channels":[""]}`, `{"muted_channels":["a b"]}`,
		`{"muted_channels":[1]}`, `{"muted_channels":[]}{}`, `{"muted":[]}`, `[]`, ``,
		`{"muted_channels":["` + strings.Repeat("x", 129) + `"]}`,
	} {
		f.Add([]byte(s), int64(7))
	}
	f.Add([]byte(`{}`), int64(-1))
	h := New(secConfig(f, Config{Auth: secAuth()}, true)) // preferences are stored in PostgreSQL
	f.Fuzz(func(t *testing.T, body []byte, user int64) {
		status, out := fuzzCall(t, h, "PUT", "/v1/users/"+strconv.FormatInt(user, 10)+"/preferences", body, secAdmin)
		var req preferencesRequest
		valid := user > 0 && strictDecode(body, &req) &&
			len(req.MutedChannels) <= maxMuted && len(req.MutedCategories) <= maxMuted
		for _, names := range [][]string{req.MutedChannels, req.MutedCategories} {
			for _, n := range names {
				valid = valid && devices.ValidateName("name", n) == nil
			}
		}
		want := http.StatusBadRequest
		if valid {
			want = http.StatusNoContent
		}
		if status != want {
			t.Fatalf("%q user %d: got %d %v, want %d", body, user, status, out, want)
		}
	})
}

// FuzzCampaignBody holds POST /v1/campaigns to the general rules only (no
// panic, no 5xx, JSON answers); the campaign rules are the fan-out stage's.
func FuzzCampaignBody(f *testing.F) {
	for _, s := range []string{
		`{"app":"news","channels":["breaking"],"notification":{"title":"t","body":"b"}}`,
		`{"id":"c-1","app":"news","channels":["a","a"],"category":"sale","notification":{"title":"t","body":"b","data":{"k":"v","n":1}},"ttl_seconds":60}`,
		`{"app":"news","channels":[],"notification":{}}`,
		`{"app":"news","channels":["x"],"notification":{"data":[]}}`,
		`{"id":"{x}","app":"news","channels":["x"],"notification":{"title":"t"},"ttl_seconds":-1}`,
		`{"app":"news","channels":["x"],"notification":{"title":"t"},"extra":1}`,
		`{"app":"news"}{}`, `[]`, ``, `{"ttl_seconds":1e400}`,
		// The whole notification object (subtitle, badge, sound, image,
		// thread, collapse id, silent, localized) and its priority.
		`{"app":"news","channels":["x"],"priority":"high","notification":{"title":"t","subtitle":"s","body":"b","badge":0,"sound":"default","image":"https://i.example/a.png","category":"c","thread_id":"th","collapse_id":"k","localized":{"ko":{"title":"한"},"pt-BR":{"body":"ó"}}}}`,
		`{"app":"news","channels":["x"],"notification":{"silent":true,"data":{"sync":1}}}`,
		`{"app":"news","channels":["x"],"notification":{"silent":true,"title":"t","badge":-1,"image":"http://x","localized":{"x y":{}}}}`,
		`{"app":"sport","channels":["x"],"priority":"urgent","notification":{"title":"t","localized":{"ko":{"title":"a"},"KO":{"title":"b"}}}}`,
		`{"app":"unknown","channels":["x"],"notification":{"title":"t"}}`,
	} {
		f.Add([]byte(s))
	}
	h := New(secConfig(f, Config{Auth: secAuth()}, true))
	f.Fuzz(func(t *testing.T, body []byte) {
		status, out := fuzzCall(t, h, "POST", "/v1/campaigns", body, secAdmin)
		if status == http.StatusCreated || status == http.StatusOK {
			if id, _ := out["id"].(string); id == "" {
				t.Fatalf("%q: %d without an id: %v", body, status, out)
			}
		}
	})
}

// FuzzBearer: whatever the Authorization header, a request is let in only
// with exactly a configured secret, and as the right principal.
func FuzzBearer(f *testing.F) {
	for _, s := range []string{"Bearer " + secAdmin, "bearer " + secNews, "BEARER  " + secSport + " ", "Bearer", "Bearer ",
		"Basic " + secAdmin, secAdmin, "Bearer " + secAdmin + "\x00", "Bearer\t" + secAdmin} {
		f.Add(s)
	}
	auth := secAuth()
	a := auth.verifier()
	f.Fuzz(func(t *testing.T, header string) {
		r := httptest.NewRequest("GET", "/", nil)
		r.Header["Authorization"] = []string{header}
		p, ok := a.identify(r)
		scheme, tok, _ := strings.Cut(header, " ")
		tok = strings.TrimSpace(tok)
		wantOK := strings.EqualFold(scheme, "bearer") && (tok == secAdmin || tok == secNews || tok == secSport)
		if ok != wantOK {
			t.Fatalf("%q: let in %v", header, ok)
		}
		if ok && (p.admin != (tok == secAdmin) || !p.admin && auth.AppKeys[p.app] != tok) {
			t.Fatalf("%q: principal %+v", header, p)
		}
	})
}
