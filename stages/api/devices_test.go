package api

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/rueidis"
	"github.com/rs/zerolog"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/devices"
	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
)

// deviceAPI is an API server on real Redis and PostgreSQL, with its own key
// prefix and database.
type deviceAPI struct {
	t    *testing.T
	url  string
	keys pipeline.Keys
	rdb  rueidis.Client
	db   *pgxpool.Pool
	srv  *Server
}

func newDeviceAPI(t *testing.T, redisAddr string, auth Auth) *deviceAPI {
	t.Helper()
	return newDeviceAPIConfig(t, redisAddr, Config{Auth: auth})
}

// newDeviceAPIConfig is newDeviceAPI with more of the server's Config
// (its Redis, DB, keys and log are the test's).
func newDeviceAPIConfig(t *testing.T, redisAddr string, cfg Config) *deviceAPI {
	t.Helper()
	rdb, err := pipeline.NewRedis(redisAddr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rdb.Close)
	// A copy of the package's migrated template: migrating each test's
	// database in place cost most of a short test's time.
	db, err := pgxpool.New(context.Background(), pipelinetest.MigratedDatabaseT(t, env.Postgres))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	seedAudience(t, db)
	keys := pipeline.NewKeys("t"+strconv.FormatUint(rand.Uint64(), 36), 16)
	cfg.Redis, cfg.DB, cfg.Keys, cfg.Log = rdb, db, keys, zerolog.Nop()
	s := New(cfg)
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return &deviceAPI{t: t, url: srv.URL, keys: keys, rdb: rdb, db: db, srv: s}
}

// response is what a test looks at in an answer.
type response struct {
	status int
	header http.Header
	body   string
}

// error is the {"error": ...} message of the answer.
func (r response) error() string {
	var e struct{ Error string }
	json.Unmarshal([]byte(r.body), &e)
	return e.Error
}

func (a *deviceAPI) do(method, path, body, bearer string) response {
	a.t.Helper()
	req, err := http.NewRequest(method, a.url+path, strings.NewReader(body))
	if err != nil {
		a.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

// events reads every entry of the ingest stream.
func (a *deviceAPI) events() []devices.Event {
	a.t.Helper()
	var out []devices.Event
	for _, s := range a.keys.Streams(pipeline.StreamIngest) {
		xs, err := a.rdb.Do(context.Background(), a.rdb.B().Xrange().Key(s).Start("-").End("+").Build()).AsXRange()
		if err != nil {
			a.t.Fatal(err)
		}
		for _, x := range xs {
			e, err := devices.ParseEvent(x.FieldValues, time.Now())
			if err != nil {
				a.t.Fatalf("the API wrote a malformed entry %v: %v", x.FieldValues, err)
			}
			if want := a.keys.Stream(pipeline.StreamIngest, devices.Partition(a.keys, e.App, e.Token)); want != s {
				a.t.Fatalf("event of %s/%s in %s, want %s", e.App, e.Token, s, want)
			}
			out = append(out, e)
		}
	}
	return out
}

var (
	iosToken     = strings.Repeat("0123456789abcdef", 4)
	androidToken = "cZ3x-_:APA91bHun4MxP5egoKMwt2KZFBaFUH-1RYqx.a"
)

func deviceJSON(app, platform, token string, user int64, locale string) string {
	b, _ := json.Marshal(deviceRequest{App: app, Platform: platform, Token: token, UserID: user, Locale: locale})
	return string(b)
}

func TestPostDeviceAppendsAStampedEvent(t *testing.T) {
	t.Parallel()
	a := newDeviceAPI(t, env.Redis.Addr, Auth{Insecure: true})
	before := time.Now().UnixMicro()
	r := a.do("POST", "/v1/devices", deviceJSON("news", "ios", iosToken, 42, "en-GB"), "")
	if r.status != http.StatusAccepted {
		t.Fatalf("got %d %s", r.status, r.body)
	}
	evs := a.events()
	if len(evs) != 1 {
		t.Fatalf("want 1 event, got %d", len(evs))
	}
	e := evs[0]
	want := devices.Event{Op: pipeline.OpPut, App: "news", Token: iosToken, Platform: devices.IOS, User: 42, Locale: "en-GB", At: e.At}
	if e != want || e.At < before || e.At > time.Now().UnixMicro()+1000 {
		t.Fatalf("got %+v, want %+v stamped now", e, want)
	}
}

// Every field is checked, and the answer names the field and says what is
// wrong. Nothing reaches the stream.
func TestMalformedDeviceIsRejectedNamingTheField(t *testing.T) {
	t.Parallel()
	a := newDeviceAPI(t, env.Redis.Addr, Auth{Insecure: true})
	ok := func(edit func(d *map[string]any)) string {
		d := map[string]any{"app": "news", "platform": "ios", "token": iosToken, "user_id": 7, "locale": "en"}
		edit(&d)
		b, _ := json.Marshal(d)
		return string(b)
	}
	set := func(k string, v any) func(*map[string]any) { return func(d *map[string]any) { (*d)[k] = v } }
	drop := func(k string) func(*map[string]any) { return func(d *map[string]any) { delete(*d, k) } }
	tests := []struct {
		name, give, want string
	}{
		{"empty body", "", "empty body"},
		{"bad JSON", `{"app":`, "bad JSON"},
		{"trailing data", ok(set("locale", "en")) + ` {}`, "unexpected data after"},
		{"unknown field", ok(set("colour", "red")), "colour"},
		{"an array", `[` + ok(set("app", "news")) + `]`, "send several to POST /v1/devices/batch"},
		{"missing app", ok(drop("app")), "app: is required"},
		{"long app", ok(set("app", strings.Repeat("a", 256))), "app: is 256 bytes"},
		{"app with a control character", ok(set("app", "news\u0007")), "app: contains a control"},
		{"app not a string", ok(set("app", 5)), `field "app"`},
		{"missing platform", ok(drop("platform")), "platform: must be"},
		{"unknown platform", ok(set("platform", "windows")), `platform: must be "ios" or "android", got "windows"`},
		{"missing token", ok(drop("token")), "token: an APNs (ios) token is 64–200 hex characters; got 0"},
		{"short APNs token", ok(set("token", "abcd")), "token: an APNs (ios) token is 64–200 hex characters; got 4"},
		{"long APNs token", ok(set("token", strings.Repeat("a", 201))), "got 201 characters"},
		{"APNs token not hex", ok(set("token", strings.Repeat("g", 64))), "token: an APNs (ios) token is hex; character 1 is 'g'"},
		{"FCM token with a slash", ok(func(d *map[string]any) { (*d)["platform"] = "android"; (*d)["token"] = "a/b" }), "token: an FCM (android) token has only"},
		{"long FCM token", ok(func(d *map[string]any) { (*d)["platform"] = "android"; (*d)["token"] = strings.Repeat("a", 513) }), "token: an FCM (android) token is 1–512 characters; got 513"},
		// An app that reports its platform wrong: FCM would refuse the token.
		{"APNs token as android", ok(set("platform", "android")), `platform: is "android", but the token is an APNs token (64 hex digits`},
		{"empty FCM token", ok(func(d *map[string]any) { (*d)["platform"] = "android"; (*d)["token"] = "" }), "token: an FCM (android) token is 1–512"},
		{"missing user_id", ok(drop("user_id")), "user_id: is required: the user's id, a positive integer (missing or 0)"},
		{"negative user_id", ok(set("user_id", -3)), "user_id: must be a positive integer, got -3"},
		{"user_id as a string", ok(set("user_id", "42")), `field "user_id": expected an integer, got string`},
		{"fractional user_id", ok(set("user_id", 1.5)), `field "user_id"`},
		{"user_id too large", ok(set("user_id", 1e20)), `field "user_id": 100000000000000000000 is out of range: at most 9223372036854775807`},
		{"long locale", ok(set("locale", strings.Repeat("a", 36))), "locale: is 36 characters long; at most 35"},
		{"locale with a space", ok(set("locale", "en US")), "locale: has only letters"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := a.do("POST", "/v1/devices", tt.give, "")
			if r.status != http.StatusBadRequest || !strings.Contains(r.error(), tt.want) {
				t.Fatalf("got %d %s, want 400 with %q", r.status, r.body, tt.want)
			}
		})
	}
	if n := len(a.events()); n != 0 {
		t.Fatalf("rejected requests wrote %d events", n)
	}
}

func batchJSON(items []deviceRequest) string {
	b, _ := json.Marshal(items)
	return string(b)
}

func validBatch(n int) []deviceRequest {
	items := make([]deviceRequest, n)
	for i := range items {
		items[i] = deviceRequest{App: "news", Platform: "ios", Token: fmt.Sprintf("%064x", i), UserID: int64(i + 1)}
		if i%2 == 1 {
			items[i].Platform, items[i].Token = "android", fmt.Sprintf("fcm:%d", i)
		}
	}
	return items
}

func TestDeviceBatch(t *testing.T) {
	t.Parallel()
	a := newDeviceAPI(t, env.Redis.Addr, Auth{Insecure: true})
	items := validBatch(500)
	items = append(items, items[3]) // listed twice: the later item must win
	items[len(items)-1].UserID = 999
	r := a.do("POST", "/v1/devices/batch", batchJSON(items), "")
	if r.status != http.StatusAccepted || !strings.Contains(r.body, `"accepted":501`) {
		t.Fatalf("got %d %s", r.status, r.body)
	}
	evs := a.events()
	if len(evs) != 501 {
		t.Fatalf("want 501 events, got %d", len(evs))
	}
	var first, second devices.Event
	for _, e := range evs {
		if e.Token == items[3].Token {
			if e.User == 999 {
				second = e
			} else {
				first = e
			}
		}
	}
	if second.At <= first.At || first.At == 0 {
		t.Fatalf("a token listed twice: the later item must have the later time, got %d then %d", first.At, second.At)
	}
}

// A batch is validated as a whole before anything is written: one bad item
// rejects it, naming the item and the field.
func TestBadDeviceBatchWritesNothing(t *testing.T) {
	t.Parallel()
	a := newDeviceAPI(t, env.Redis.Addr, Auth{Insecure: true})
	bad := validBatch(100)
	bad[57].UserID = 0
	badToken := validBatch(100)
	badToken[99].Token = "not a token"
	typed := batchJSON(validBatch(10))
	typed = strings.Replace(typed, `"user_id":4`, `"user_id":"4"`, 1)
	tests := []struct {
		name, give string
		status     int
		want       string
	}{
		{"bad user in item 57", batchJSON(bad), 400, "item 57: user_id: is required"},
		{"bad token in the last item", batchJSON(badToken), 400, "item 99: token:"},
		{"wrong type in item 3", typed, 400, `item 3: field "user_id": expected an integer`},
		{"unknown field", `[{"app":"news","tokn":"x"}]`, 400, `item 0: unknown field "tokn"`},
		{"null item", `[` + deviceJSON("news", "ios", iosToken, 1, "") + `, null]`, 400, "item 1: is null: each item is a device object"},
		{"not an array", `{"app":"news"}`, 400, "must be a JSON array"},
		{"empty array", `[]`, 400, "the batch is empty"},
		{"cut short", `[` + deviceJSON("news", "ios", iosToken, 1, "") + `,`, 400, "cut short"},
		{"trailing data", `[` + deviceJSON("news", "ios", iosToken, 1, "") + `] []`, 400, "unexpected data after"},
		{"too many items", batchJSON(validBatch(MaxDeviceBatch + 1)), 413, "at most 10000 devices"},
		{"body too large", batchJSON(hugeBatch()), 413, fmt.Sprintf("request body is larger than %d bytes", DefaultMaxBodyBytes)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := a.do("POST", "/v1/devices/batch", tt.give, "")
			if r.status != tt.status || !strings.Contains(r.error(), tt.want) {
				t.Fatalf("got %d %s, want %d with %q", r.status, r.body, tt.status, tt.want)
			}
		})
	}
	if n := len(a.events()); n != 0 {
		t.Fatalf("rejected batches wrote %d events", n)
	}
	if r := a.do("POST", "/v1/devices/batch", batchJSON(validBatch(MaxDeviceBatch)), ""); r.status != http.StatusAccepted {
		t.Fatalf("a full batch of %d: got %d %s", MaxDeviceBatch, r.status, r.body)
	}
}

// hugeBatch is fewer than MaxDeviceBatch items but more than
// DefaultMaxBodyBytes of JSON.
func hugeBatch() []deviceRequest {
	items := validBatch(DefaultMaxBodyBytes/4000 + 100)
	for i := range items {
		items[i].Platform, items[i].Token = "android", strings.Repeat("x", 4000)
	}
	return items
}

func TestDeleteDevice(t *testing.T) {
	t.Parallel()
	a := newDeviceAPI(t, env.Redis.Addr, Auth{Insecure: true})
	for _, tok := range []string{iosToken, androidToken} {
		if r := a.do("DELETE", "/v1/devices/news/"+tok, "", ""); r.status != http.StatusAccepted {
			t.Fatalf("delete %s: got %d %s", tok, r.status, r.body)
		}
	}
	evs := a.events()
	if len(evs) != 2 {
		t.Fatalf("want 2 events, got %d", len(evs))
	}
	for _, e := range evs {
		if e.Op != pipeline.OpDelete || e.App != "news" || e.At == 0 || e.User != 0 {
			t.Fatalf("not a delete event: %+v", e)
		}
	}
	for _, tt := range []struct{ path, want string }{
		// No platform given: fit for neither, not "an FCM (android) token".
		{"/v1/devices/news/bad!token", "token: is neither an APNs (ios) token (64–200 hex characters) nor an FCM (android) one: " +
			"an FCM token has only A-Z a-z 0-9 _ : . - characters; character 4 is '!'"},
		{"/v1/devices/" + strings.Repeat("a", 256) + "/" + iosToken, "app: is 256 bytes"},
	} {
		if r := a.do("DELETE", tt.path, "", ""); r.status != 400 || !strings.Contains(r.error(), tt.want) {
			t.Fatalf("DELETE %s: got %d %s, want 400 with %q", tt.path, r.status, r.body, tt.want)
		}
	}
}

// App keys may write only their own app's devices; the operator token may do
// anything; everything else is 401.
func TestDeviceWritesAreScopedToTheAppKey(t *testing.T) {
	t.Parallel()
	a := newDeviceAPI(t, env.Redis.Addr, Auth{AdminToken: "op-secret", AppKeys: map[string]string{"news": "k-news", "sport": "k-sport"}})
	mixed := validBatch(20)
	mixed[13].App = "sport"
	tests := []struct {
		name, method, path, body, bearer string
		status                           int
		want                             string
	}{
		{"no token", "POST", "/v1/devices", deviceJSON("news", "ios", iosToken, 1, ""), "", 401, "bearer token"},
		{"unknown token", "POST", "/v1/devices", deviceJSON("news", "ios", iosToken, 1, ""), "guess", 401, "bearer token"},
		{"own app", "POST", "/v1/devices", deviceJSON("news", "ios", iosToken, 1, ""), "k-news", 202, ""},
		{"other app", "POST", "/v1/devices", deviceJSON("sport", "ios", iosToken, 1, ""), "k-news", 403, `not "sport"`},
		{"batch with another app's item", "POST", "/v1/devices/batch", batchJSON(mixed), "k-news", 403, "item 13:"},
		{"delete of another app's token", "DELETE", "/v1/devices/sport/" + iosToken, "", "k-news", 403, `not "sport"`},
		{"delete of own token", "DELETE", "/v1/devices/news/" + iosToken, "", "k-news", 202, ""},
		{"subscriptions are operator-only", "PUT", "/v1/channels/breaking/subscribers/1", "", "k-news", 403, "operator token"},
		{"preferences are operator-only", "PUT", "/v1/users/1/preferences", `{}`, "k-news", 403, "operator token"},
		{"operator, any app", "POST", "/v1/devices", deviceJSON("sport", "android", androidToken, 1, ""), "op-secret", 202, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := a.do(tt.method, tt.path, tt.body, tt.bearer)
			if r.status != tt.status || !strings.Contains(r.error(), tt.want) {
				t.Fatalf("got %d %s, want %d with %q", r.status, r.body, tt.status, tt.want)
			}
		})
	}
	if n := len(a.events()); n != 3 {
		t.Fatalf("want the 3 accepted events only, got %d", n)
	}
}

// With Redis down the API answers 503 + Retry-After and accepts nothing; once
// Redis is back, the stream holds exactly the events accepted before, and
// the API accepts again without a restart.
func TestRedisDownIs503AndWritesNothing(t *testing.T) {
	t.Parallel()
	r := pipelinetest.RedisT(t, pipelinetest.RedisOptions{AOF: true})
	a := newDeviceAPI(t, r.Addr, Auth{Insecure: true})
	// Every write reaches the AOF before its reply, so the restart below
	// shows exactly what was accepted.
	if err := a.rdb.Do(t.Context(), a.rdb.B().ConfigSet().ParameterValue().ParameterValue("appendfsync", "always").Build()).Error(); err != nil {
		t.Fatal(err)
	}
	accepted := validBatch(50)
	if resp := a.do("POST", "/v1/devices/batch", batchJSON(accepted), ""); resp.status != http.StatusAccepted {
		t.Fatalf("before the outage: %d %s", resp.status, resp.body)
	}
	if err := r.Kill(); err != nil {
		t.Fatal(err)
	}
	refused := validBatch(200)[100:]
	for _, req := range []struct{ method, path, body string }{
		{"POST", "/v1/devices", deviceJSON("news", "ios", iosToken, 1, "")},
		{"POST", "/v1/devices/batch", batchJSON(refused)},
		{"DELETE", "/v1/devices/news/" + androidToken, ""},
		{"PUT", "/v1/users/5/preferences", `{"muted_channels":["promo"]}`},
	} {
		resp := a.do(req.method, req.path, req.body, "")
		if resp.status != http.StatusServiceUnavailable || resp.header.Get("Retry-After") == "" || !strings.Contains(resp.error(), "Redis is unreachable") {
			t.Fatalf("%s %s with Redis down: got %d (Retry-After %q) %s", req.method, req.path, resp.status, resp.header.Get("Retry-After"), resp.body)
		}
	}
	if err := r.Restart(); err != nil {
		t.Fatal(err)
	}
	evs := a.events()
	got := map[string]bool{}
	for _, e := range evs {
		got[e.Token] = true
	}
	if len(evs) != len(accepted) {
		t.Fatalf("after the outage the stream holds %d events, want the %d accepted", len(evs), len(accepted))
	}
	for _, d := range accepted {
		if !got[d.Token] {
			t.Fatalf("accepted event of %s is missing", d.Token)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp := a.do("POST", "/v1/devices", deviceJSON("news", "ios", iosToken, 1, ""), "")
		if resp.status == http.StatusAccepted {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the API did not recover after Redis came back: %d %s", resp.status, resp.body)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// A device of an app the API does not know could never be reached by a
// campaign or message: 422 naming the app (and the item of a batch), and
// nothing written, for a delete as for a registration. A known app's
// device is taken as before.
func TestDeviceOfUnknownAppIs422(t *testing.T) {
	t.Parallel()
	a := newDeviceAPIConfig(t, env.Redis.Addr, Config{Auth: Auth{Insecure: true}, AppsFile: &AppsFile{Path: "apps.toml", Apps: []string{"news"}}})
	typo := validBatch(5)
	typo[3].App = "nwes"
	tests := []struct {
		name, method, path, give string
		status                   int
		want                     string
	}{
		{"one device", "POST", "/v1/devices", deviceJSON("nwes", "ios", iosToken, 1, ""), 422, `app "nwes" is not known to this API: its apps are those of the apps file apps.toml ("news")`},
		{"item 3 of a batch", "POST", "/v1/devices/batch", batchJSON(typo), 422, `item 3: app "nwes" is not known`},
		{"a delete", "DELETE", "/v1/devices/nwes/" + iosToken, "", 422, `app "nwes" is not known to this API: its apps are those of the apps file apps.toml ("news")`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := a.do(tt.method, tt.path, tt.give, "")
			if r.status != tt.status || !strings.Contains(r.error(), tt.want) {
				t.Fatalf("got %d %s, want %d with %q", r.status, r.body, tt.status, tt.want)
			}
		})
	}
	if n := len(a.events()); n != 0 {
		t.Fatalf("refused devices wrote %d events", n)
	}
	if r := a.do("POST", "/v1/devices", deviceJSON("news", "ios", iosToken, 1, ""), ""); r.status != http.StatusAccepted {
		t.Fatalf("a known app's device: got %d %s", r.status, r.body)
	}
	if r := a.do("DELETE", "/v1/devices/news/"+iosToken, "", ""); r.status != http.StatusAccepted {
		t.Fatalf("a known app's delete: got %d %s", r.status, r.body)
	}
}
