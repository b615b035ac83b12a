package api

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rs/zerolog"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/campaign"
	"github.com/pushpipe/pushpipe/pipeline/devices"
	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
	"github.com/pushpipe/pushpipe/pipeline/users"
)

// loadOpenAPI parses and validates the embedded document.
func loadOpenAPI(t *testing.T) (*openapi3.T, routers.Router) {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromData(openAPI)
	if err != nil {
		t.Fatalf("stages/api/openapi.json does not parse: %v", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("stages/api/openapi.json is not a valid OpenAPI 3 document: %v", err)
	}
	router, err := legacy.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	return doc, router
}

// TestOpenAPIListsEveryRoute: the route table and the document name the same
// operations, so a route added to routes() without its reference (or a
// reference left behind by a removed route) fails here, saying what to add.
func TestOpenAPIListsEveryRoute(t *testing.T) {
	doc, _ := loadOpenAPI(t)
	documented := map[string]bool{}
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			documented[method+" "+path] = true
		}
	}
	s := New(Config{Log: zerolog.Nop(), Auth: Auth{Insecure: true}})
	routed := map[string]bool{}
	for _, rt := range s.routes() {
		if notAPI[rt.pattern] != "" {
			continue
		}
		routed[rt.pattern] = true
		if !strings.Contains(rt.pattern, " ") {
			t.Errorf("route %q (stages/api/server.go routes()) answers every method: give it its method (\"GET %s\") and document it in stages/api/openapi.json, "+
				"or, if it is not part of the JSON API, list it in notAPI (openapi_test.go) with the reason", rt.pattern, rt.pattern)
			continue
		}
		if !documented[rt.pattern] {
			method, path, _ := strings.Cut(rt.pattern, " ")
			t.Errorf("route %q (stages/api/server.go routes()) has no operation in stages/api/openapi.json: add "+
				`paths[%q].%s with its parameters, request body and every status it answers, then a call for each `+
				"status to openapiCalls (openapi_test.go) and the route to docs/API.md", rt.pattern, path, strings.ToLower(method))
		}
	}
	for op := range documented {
		if !routed[op] {
			t.Errorf("stages/api/openapi.json documents %q, which routes() does not serve: remove it or add the route", op)
		}
	}
}

// TestOpenAPIBodyCapsMatchTheRoutes: a 413 that names a body size in KiB
// names the route's own cap (routes()), so a cap changed in server.go
// without its reference fails here instead of telling clients a wrong size.
func TestOpenAPIBodyCapsMatchTheRoutes(t *testing.T) {
	doc, _ := loadOpenAPI(t)
	over := regexp.MustCompile(`a body over (\d+) KiB`)
	s := New(Config{Log: zerolog.Nop(), Auth: Auth{Insecure: true}})
	for _, rt := range s.routes() {
		method, path, ok := strings.Cut(rt.pattern, " ")
		if !ok || doc.Paths.Find(path) == nil {
			continue
		}
		op := doc.Paths.Find(path).GetOperation(method)
		if op == nil {
			continue
		}
		r := op.Responses.Status(413)
		if r == nil || r.Value == nil || r.Value.Description == nil {
			continue
		}
		m := over.FindStringSubmatch(*r.Value.Description)
		if m == nil {
			continue
		}
		if want := strconv.FormatInt(rt.body>>10, 10); m[1] != want || rt.body%1024 != 0 {
			t.Errorf("%s: the 413 in stages/api/openapi.json says a body over %s KiB, the route's cap is %d bytes (%s KiB)", rt.pattern, m[1], rt.body, want)
		}
	}
}

// TestOpenAPISchemasMatchTheCode: each documented body has exactly the
// fields of the Go type the server decodes it into (or encodes it from),
// or the webhook posts (ResultEvent), so a field added to a request or answer without its documentation fails
// here.
func TestOpenAPISchemasMatchTheCode(t *testing.T) {
	doc, _ := loadOpenAPI(t)
	for name, v := range map[string]any{
		"Device":          deviceRequest{},
		"Preferences":     preferencesRequest{},
		"PreferencesRead": preferencesResponse{},
		"CampaignRequest": campaignRequest{},
		"Notification":    notificationRequest{},
		"CampaignStatus":  campaign.Report{},
		"Subscribers":     subscribersRequest{},
		"MessageRequest":  messageRequest{},
		"MessageToken":    tokenRequest{},
		"MessageStatus":   campaign.MessageReport{},
		"LocalizedText":   textRequest{},
		"User":            users.View{},
		"UserDevice":      users.Device{},
		"UserErasure":     users.Erasure{},
		"Channel":         devices.Channel{},
		// Not a route's: what the webhook POSTs and results tail prints,
		// documented here for the receivers that read it.
		"ResultEvent": pipeline.ResultEvent{},
	} {
		ref := doc.Components.Schemas[name]
		if ref == nil {
			t.Errorf("stages/api/openapi.json has no schema %s", name)
			continue
		}
		documented := slices.Sorted(maps.Keys(ref.Value.Properties))
		typ := reflect.TypeOf(v)
		fields := slices.Sorted(slices.Values(jsonFields(typ)))
		if !slices.Equal(documented, fields) {
			t.Errorf("schema %s in stages/api/openapi.json has fields %v, the Go type %s has %v: document every field (type, limits, meaning), then go generate ./stages/api",
				name, documented, typ, fields)
		}
	}
}

// notAPI are the routes that are not part of the JSON API, and why: the
// OpenAPI document leaves them out.
var notAPI = map[string]string{
	"/ui/": "the operator console: HTML pages and their assets for a browser, under one prefix",
}

// apiCall is one request of the conformance test and the status it must
// get. req says what the document must think of the request: valid (it
// conforms), invalid (the document refuses it too: the constraint the
// server enforces is written down), or unchecked (the server's refusal is
// not a schema matter: a size, a Content-Type, a rule across fields).
type apiCall struct {
	name        string
	server      string // "" the main server; "limited": app keys at 1 write/1000 s, burst 2; "nodb": no PostgreSQL
	method      string
	path        string
	body        string
	token       string // "" sends none
	contentType string // default application/json
	req         reqKind
	status      int
	// before, if set, runs first: it brings about what the API cannot
	// (a campaign the stages finished).
	before func(t *testing.T, o *openapiServer)
}

type reqKind int

const (
	valid reqKind = iota
	invalid
	unchecked
)

const (
	oaToken  = "operator-token-0123456789"
	oaKey    = "news-app-key-0123456789"
	oaApp    = "com.example.news"
	oaIOS    = "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90"
	oaDevice = `{"app":"com.example.news","platform":"ios","token":"` + oaIOS + `","user_id":42,"locale":"en-US"}`
	oaOther  = `{"app":"com.example.other","platform":"android","token":"fcm:tok-1","user_id":43}`
	oaCamp   = `{"id":"oa-1","app":"com.example.news","channels":["breaking"],"category":"alerts",` +
		`"notification":{"title":"Hi","body":"There","data":{"url":"https://example.com"}},"ttl_seconds":600,"allow_empty":true}`
)

// oaLater is campaign oa-2: scheduled an hour ahead, its own rate, high
// priority, and a channel given as a number.
var oaLater = `{"id":"oa-2","app":"com.example.news","channels":["breaking",101],"notification":{"title":"Later"},` +
	`"send_at":"` + time.Now().Add(time.Hour).UTC().Format(time.RFC3339) + `","rate_per_second":50,"priority":"high","allow_empty":true}`

// oaRich is campaign oa-3: every member of the notification object.
const oaRich = `{"id":"oa-3","app":"com.example.news","channels":["breaking"],"priority":"normal","allow_empty":true,"notification":{"title":"Hi","subtitle":"Sub","body":"There",` +
	`"badge":3,"sound":"default","image":"https://example.com/a.png","category":"NEWS","thread_id":"t1","collapse_id":"c1",` +
	`"localized":{"ko":{"title":"안녕"},"pt-BR":{"body":"Olá"}}}}`

// oaMsg is message oa-m1.
const oaMsg = `{"id":"oa-m1","app":"com.example.news","users":[42,43,42],"category":"alerts","notification":{"title":"Hi"}}`

// oaTokens is a message to n distinct Android tokens.
func oaTokens(n int) string {
	ts := make([]string, n)
	for i := range ts {
		ts[i] = fmt.Sprintf(`{"platform":"android","token":"fcm:tok-%d"}`, i)
	}
	return `{"app":"com.example.news","tokens":[` + strings.Join(ts, ",") + `],"notification":{"title":"Hi"}}`
}

// oaUsers is a message to n users.
func oaUsers(n int) string {
	return strings.Replace(strings.Replace(oaIDs(n), `"add"`, `"users"`, 1), `{`, `{"app":"com.example.news","notification":{"title":"Hi"},`, 1)
}

// oaIDs is a bulk subscription of n user ids.
func oaIDs(n int) string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = strconv.Itoa(i + 1)
	}
	return `{"add":[` + strings.Join(ids, ",") + `]}`
}

// finish leaves what the stages leave once campaign id reached every
// target: split emitted its (no) ranges, so its counters say done.
func finish(id string) func(*testing.T, *openapiServer) {
	return func(t *testing.T, o *openapiServer) {
		rdb, keys := o.s.cfg.Redis, o.s.cfg.Keys
		if err := rdb.Do(t.Context(), rdb.B().Hset().Key(keys.Campaign(id)).FieldValue().FieldValue(pipeline.CampaignSplitDone, "1").Build()).Error(); err != nil {
			t.Fatal(err)
		}
	}
}

// openapiCalls calls every route for its success and each error status it
// documents, in order (later calls rely on earlier ones: the campaign
// exists, the limited key's burst is spent).
var openapiCalls = []apiCall{
	// POST /v1/devices
	{name: "register", method: "POST", path: "/v1/devices", body: oaDevice, token: oaKey, status: 202},
	{name: "register as operator", method: "POST", path: "/v1/devices", body: oaOther, token: oaToken, status: 202},
	{name: "register no token", method: "POST", path: "/v1/devices", body: oaDevice, req: unchecked, status: 401},
	{name: "register bad platform", method: "POST", path: "/v1/devices", body: strings.Replace(oaDevice, `"ios"`, `"web"`, 1), token: oaKey, req: invalid, status: 400},
	{name: "register unknown field", method: "POST", path: "/v1/devices", body: strings.Replace(oaDevice, `"locale"`, `"Locale"`, 1), token: oaKey, req: invalid, status: 400},
	{name: "register user 0", method: "POST", path: "/v1/devices", body: strings.Replace(oaDevice, `42`, `0`, 1), token: oaKey, req: invalid, status: 400},
	{name: "register other app", method: "POST", path: "/v1/devices", body: oaOther, token: oaKey, status: 403},
	{name: "register too large", method: "POST", path: "/v1/devices", body: strings.Repeat(" ", deviceBody+1), token: oaKey, req: unchecked, status: 413},
	{name: "register text", method: "POST", path: "/v1/devices", body: oaDevice, token: oaKey, contentType: "text/plain", req: unchecked, status: 415},
	{name: "register unknown app", method: "POST", path: "/v1/devices", body: strings.Replace(oaDevice, oaApp, "com.example.unknown", 1), token: oaToken, status: 422},
	{name: "batch over burst", server: "limited", method: "POST", path: "/v1/devices/batch", body: "[" + oaDevice + "," + oaDevice + "," + oaDevice + "]", token: oaKey, req: unchecked, status: 413},
	{name: "spend the burst", server: "limited", method: "POST", path: "/v1/devices/batch", body: "[" + oaDevice + "," + oaDevice + "]", token: oaKey, status: 202},
	{name: "register limited", server: "limited", method: "POST", path: "/v1/devices", body: oaDevice, token: oaKey, status: 429},
	// POST /v1/devices/batch
	{name: "batch", method: "POST", path: "/v1/devices/batch", body: "[" + oaDevice + "," + oaDevice + "]", token: oaKey, status: 202},
	{name: "batch no token", method: "POST", path: "/v1/devices/batch", body: "[" + oaDevice + "]", req: unchecked, status: 401},
	{name: "batch empty", method: "POST", path: "/v1/devices/batch", body: "[]", token: oaKey, req: invalid, status: 400},
	{name: "batch not an array", method: "POST", path: "/v1/devices/batch", body: oaDevice, token: oaKey, req: invalid, status: 400},
	{name: "batch other app", method: "POST", path: "/v1/devices/batch", body: "[" + oaDevice + "," + oaOther + "]", token: oaKey, status: 403},
	{name: "batch text", method: "POST", path: "/v1/devices/batch", body: "[" + oaDevice + "]", token: oaKey, contentType: "text/plain", req: unchecked, status: 415},
	{name: "batch unknown app", method: "POST", path: "/v1/devices/batch", body: "[" + oaDevice + "," + strings.Replace(oaDevice, oaApp, "com.example.unknown", 1) + "]", token: oaToken, status: 422},
	{name: "batch limited", server: "limited", method: "POST", path: "/v1/devices/batch", body: "[" + oaDevice + "]", token: oaKey, status: 429},
	// DELETE /v1/devices/{app}/{token}
	{name: "delete", method: "DELETE", path: "/v1/devices/" + oaApp + "/" + oaIOS, token: oaKey, status: 202},
	{name: "delete no token", method: "DELETE", path: "/v1/devices/" + oaApp + "/" + oaIOS, req: unchecked, status: 401},
	{name: "delete bad token", method: "DELETE", path: "/v1/devices/" + oaApp + "/bad%20token", token: oaKey, req: unchecked, status: 400},
	{name: "delete other app", method: "DELETE", path: "/v1/devices/com.example.other/fcm:tok-1", token: oaKey, status: 403},
	{name: "delete unknown app", method: "DELETE", path: "/v1/devices/com.example.unknown/" + oaIOS, token: oaToken, status: 422},
	{name: "delete limited", server: "limited", method: "DELETE", path: "/v1/devices/" + oaApp + "/" + oaIOS, token: oaKey, status: 429},
	// POST /v1/channels/{channel}/subscribers
	{name: "bulk", method: "POST", path: "/v1/channels/breaking/subscribers", body: `{"add":[42,43],"remove":[44]}`, token: oaToken, status: 204},
	{name: "bulk numeric channel", method: "POST", path: "/v1/channels/101/subscribers", body: `{"remove":[42]}`, token: oaToken, status: 204},
	{name: "bulk no token", method: "POST", path: "/v1/channels/breaking/subscribers", body: `{"add":[42]}`, req: unchecked, status: 401},
	{name: "bulk as app", method: "POST", path: "/v1/channels/breaking/subscribers", body: `{"add":[42]}`, token: oaKey, status: 403},
	{name: "bulk bad channel", method: "POST", path: "/v1/channels/a%20b/subscribers", body: `{"add":[42]}`, token: oaToken, req: invalid, status: 400},
	{name: "bulk user 0", method: "POST", path: "/v1/channels/breaking/subscribers", body: `{"add":[0]}`, token: oaToken, req: invalid, status: 400},
	{name: "bulk unknown field", method: "POST", path: "/v1/channels/breaking/subscribers", body: `{"Add":[42]}`, token: oaToken, req: invalid, status: 400},
	{name: "bulk no lists", method: "POST", path: "/v1/channels/breaking/subscribers", body: `{}`, token: oaToken, req: unchecked, status: 400},
	{name: "bulk empty lists", method: "POST", path: "/v1/channels/breaking/subscribers", body: `{"add":[]}`, token: oaToken, status: 204},
	{name: "bulk in both", method: "POST", path: "/v1/channels/breaking/subscribers", body: `{"add":[42],"remove":[42]}`, token: oaToken, req: unchecked, status: 400},
	{name: "bulk over the batch", method: "POST", path: "/v1/channels/breaking/subscribers", body: oaIDs(MaxSubscriberBatch + 1), token: oaToken, req: invalid, status: 413},
	{name: "bulk over the batch together", method: "POST", path: "/v1/channels/breaking/subscribers", body: strings.Replace(oaIDs(MaxSubscriberBatch), `{`, `{"remove":[20000],`, 1), token: oaToken, req: unchecked, status: 413},
	{name: "bulk too large", method: "POST", path: "/v1/channels/breaking/subscribers", body: strings.Repeat(" ", subscribersBody+1), token: oaToken, req: unchecked, status: 413},
	{name: "bulk text", method: "POST", path: "/v1/channels/breaking/subscribers", body: `{"add":[42]}`, token: oaToken, contentType: "text/plain", req: unchecked, status: 415},
	{name: "bulk no database", server: "nodb", method: "POST", path: "/v1/channels/breaking/subscribers", body: `{"add":[42]}`, token: oaToken, status: 503},
	// PUT and DELETE /v1/channels/{channel}/subscribers/{user_id}
	{name: "subscribe", method: "PUT", path: "/v1/channels/breaking/subscribers/42", token: oaToken, status: 204},
	{name: "subscribe no token", method: "PUT", path: "/v1/channels/breaking/subscribers/42", req: unchecked, status: 401},
	{name: "subscribe bad user", method: "PUT", path: "/v1/channels/breaking/subscribers/x42", token: oaToken, req: invalid, status: 400},
	{name: "subscribe bad channel", method: "PUT", path: "/v1/channels/a%20b/subscribers/42", token: oaToken, req: invalid, status: 400},
	{name: "subscribe as app", method: "PUT", path: "/v1/channels/breaking/subscribers/42", token: oaKey, status: 403},
	{name: "subscribe no database", server: "nodb", method: "PUT", path: "/v1/channels/breaking/subscribers/42", token: oaToken, status: 503},
	{name: "unsubscribe", method: "DELETE", path: "/v1/channels/breaking/subscribers/42", token: oaToken, status: 204},
	{name: "unsubscribe no token", method: "DELETE", path: "/v1/channels/breaking/subscribers/42", req: unchecked, status: 401},
	{name: "unsubscribe bad user", method: "DELETE", path: "/v1/channels/breaking/subscribers/-1", token: oaToken, req: invalid, status: 400},
	{name: "unsubscribe as app", method: "DELETE", path: "/v1/channels/breaking/subscribers/42", token: oaKey, status: 403},
	{name: "unsubscribe no database", server: "nodb", method: "DELETE", path: "/v1/channels/breaking/subscribers/42", token: oaToken, status: 503},
	// GET /v1/channels and /v1/channels/{channel}: after the subscriptions above
	{name: "channels", method: "GET", path: "/v1/channels", token: oaToken, status: 200},
	{name: "channels a page", method: "GET", path: "/v1/channels?limit=1&after=a", token: oaToken, status: 200},
	{name: "channels past the last", method: "GET", path: "/v1/channels?after=zzz", token: oaToken, status: 200},
	{name: "channels no token", method: "GET", path: "/v1/channels", req: unchecked, status: 401},
	{name: "channels as app", method: "GET", path: "/v1/channels", token: oaKey, status: 403},
	{name: "channels limit 0", method: "GET", path: "/v1/channels?limit=0", token: oaToken, req: invalid, status: 400},
	{name: "channels limit 1001", method: "GET", path: "/v1/channels?limit=1001", token: oaToken, req: invalid, status: 400},
	{name: "channels bad after", method: "GET", path: "/v1/channels?after=a%20b", token: oaToken, req: invalid, status: 400},
	{name: "channels unknown query", method: "GET", path: "/v1/channels?before=a", token: oaToken, req: unchecked, status: 400},
	{name: "channels no database", server: "nodb", method: "GET", path: "/v1/channels", token: oaToken, status: 503},
	{name: "channel", method: "GET", path: "/v1/channels/breaking", token: oaToken, status: 200},
	{name: "channel nobody", method: "GET", path: "/v1/channels/nobody", token: oaToken, status: 404},
	{name: "channel bad name", method: "GET", path: "/v1/channels/a%20b", token: oaToken, req: invalid, status: 400},
	{name: "channel no token", method: "GET", path: "/v1/channels/breaking", req: unchecked, status: 401},
	{name: "channel as app", method: "GET", path: "/v1/channels/breaking", token: oaKey, status: 403},
	{name: "channel no database", server: "nodb", method: "GET", path: "/v1/channels/breaking", token: oaToken, status: 503},
	// GET /v1/users/{user_id}/preferences
	{name: "mutes", method: "GET", path: "/v1/users/42/preferences", token: oaToken, status: 200},
	{name: "mutes no token", method: "GET", path: "/v1/users/42/preferences", req: unchecked, status: 401},
	{name: "mutes bad user", method: "GET", path: "/v1/users/0/preferences", token: oaToken, req: invalid, status: 400},
	{name: "mutes as app", method: "GET", path: "/v1/users/42/preferences", token: oaKey, status: 403},
	{name: "mutes no database", server: "nodb", method: "GET", path: "/v1/users/42/preferences", token: oaToken, status: 503},
	// PUT /v1/users/{user_id}/preferences
	{name: "mute", method: "PUT", path: "/v1/users/42/preferences", body: `{"muted_channels":["sport"],"muted_categories":["promo"]}`, token: oaToken, status: 204},
	{name: "mute no token", method: "PUT", path: "/v1/users/42/preferences", body: `{}`, req: unchecked, status: 401},
	{name: "mute bad name", method: "PUT", path: "/v1/users/42/preferences", body: `{"muted_channels":["a b"]}`, token: oaToken, req: invalid, status: 400},
	{name: "mute bad user", method: "PUT", path: "/v1/users/0/preferences", body: `{}`, token: oaToken, req: invalid, status: 400},
	{name: "mute as app", method: "PUT", path: "/v1/users/42/preferences", body: `{}`, token: oaKey, status: 403},
	{name: "mute too large", method: "PUT", path: "/v1/users/42/preferences", body: strings.Repeat(" ", preferencesBody+1), token: oaToken, req: unchecked, status: 413},
	{name: "mute text", method: "PUT", path: "/v1/users/42/preferences", body: `{}`, token: oaToken, contentType: "text/plain", req: unchecked, status: 415},
	// GET /v1/users/{user_id}: after the device, subscription and mutes above
	{name: "user", method: "GET", path: "/v1/users/42", token: oaToken, status: 200},
	{name: "user never seen", method: "GET", path: "/v1/users/4242", token: oaToken, status: 200},
	{name: "user no token", method: "GET", path: "/v1/users/42", req: unchecked, status: 401},
	{name: "user bad id", method: "GET", path: "/v1/users/0", token: oaToken, req: invalid, status: 400},
	{name: "user as app", method: "GET", path: "/v1/users/42", token: oaKey, status: 403},
	{name: "user no database", server: "nodb", method: "GET", path: "/v1/users/42", token: oaToken, status: 503},
	// DELETE /v1/users/{user_id}
	{name: "erase", method: "DELETE", path: "/v1/users/43", token: oaToken, status: 202},
	{name: "erase again", method: "DELETE", path: "/v1/users/43", token: oaToken, status: 202},
	{name: "erased user", method: "GET", path: "/v1/users/43", token: oaToken, status: 200},
	{name: "erase no token", method: "DELETE", path: "/v1/users/43", req: unchecked, status: 401},
	{name: "erase bad id", method: "DELETE", path: "/v1/users/x", token: oaToken, req: invalid, status: 400},
	{name: "erase as app", method: "DELETE", path: "/v1/users/43", token: oaKey, status: 403},
	{name: "erase no database", server: "nodb", method: "DELETE", path: "/v1/users/43", token: oaToken, status: 503},
	// POST /v1/campaigns
	{name: "campaign", method: "POST", path: "/v1/campaigns", body: oaCamp, token: oaToken, status: 201},
	{name: "campaign again", method: "POST", path: "/v1/campaigns", body: oaCamp, token: oaToken, status: 200},
	{name: "campaign other content", method: "POST", path: "/v1/campaigns", body: strings.Replace(oaCamp, `"Hi"`, `"Hello"`, 1), token: oaToken, status: 409},
	{name: "campaign no token", method: "POST", path: "/v1/campaigns", body: oaCamp, req: unchecked, status: 401},
	{name: "campaign no channels", method: "POST", path: "/v1/campaigns", body: strings.Replace(oaCamp, `["breaking"]`, `[]`, 1), token: oaToken, req: invalid, status: 400},
	{name: "campaign no notification", method: "POST", path: "/v1/campaigns", body: `{"app":"a","channels":["x"]}`, token: oaToken, req: invalid, status: 400},
	{name: "campaign empty notification", method: "POST", path: "/v1/campaigns", body: `{"app":"a","channels":["x"],"notification":{}}`, token: oaToken, req: unchecked, status: 400},
	{name: "campaign as app", method: "POST", path: "/v1/campaigns", body: oaCamp, token: oaKey, status: 403},
	{name: "campaign too large", method: "POST", path: "/v1/campaigns", body: strings.Repeat(" ", campaignBody+1), token: oaToken, req: unchecked, status: 413},
	{name: "campaign text", method: "POST", path: "/v1/campaigns", body: oaCamp, token: oaToken, contentType: "text/plain", req: unchecked, status: 415},
	{name: "campaign scheduled", method: "POST", path: "/v1/campaigns", body: oaLater, token: oaToken, status: 201},
	{name: "campaign bad send_at", method: "POST", path: "/v1/campaigns", body: strings.Replace(oaCamp, `"ttl_seconds"`, `"send_at":"tomorrow","ttl_seconds"`, 1), token: oaToken, req: invalid, status: 400},
	{name: "campaign send_at too far", method: "POST", path: "/v1/campaigns", body: strings.Replace(oaCamp, `"ttl_seconds"`, `"send_at":"2999-01-01T00:00:00Z","ttl_seconds"`, 1), token: oaToken, req: unchecked, status: 400},
	{name: "campaign rate 0", method: "POST", path: "/v1/campaigns", body: strings.Replace(oaCamp, `"ttl_seconds"`, `"rate_per_second":0,"ttl_seconds"`, 1), token: oaToken, req: invalid, status: 400},
	{name: "campaign bad priority", method: "POST", path: "/v1/campaigns", body: strings.Replace(oaCamp, `"ttl_seconds"`, `"priority":"urgent","ttl_seconds"`, 1), token: oaToken, req: invalid, status: 400},
	{name: "campaign fractional channel", method: "POST", path: "/v1/campaigns", body: strings.Replace(oaCamp, `["breaking"]`, `[1.5]`, 1), token: oaToken, req: invalid, status: 400},
	{name: "campaign nobody", method: "POST", path: "/v1/campaigns", body: strings.NewReplacer(`,"allow_empty":true`, ``, `"oa-1"`, `"oa-nobody"`).Replace(oaCamp), token: oaToken, req: unchecked, status: 400},
	{name: "campaign unknown app", method: "POST", path: "/v1/campaigns", body: strings.NewReplacer(oaApp, "com.example.unknown", `"oa-1"`, `"oa-unknown"`).Replace(oaCamp), token: oaToken, status: 422},
	{name: "campaign rich", method: "POST", path: "/v1/campaigns", body: oaRich, token: oaToken, status: 201},
	{name: "campaign silent with a title", method: "POST", path: "/v1/campaigns", body: strings.Replace(oaCamp, `"data"`, `"silent":true,"data"`, 1), token: oaToken, req: unchecked, status: 400},
	{name: "campaign image not https", method: "POST", path: "/v1/campaigns", body: strings.Replace(oaRich, `https://example.com/a.png`, `http://example.com/a.png`, 1), token: oaToken, req: invalid, status: 400},
	{name: "campaign bad badge", method: "POST", path: "/v1/campaigns", body: strings.Replace(oaRich, `"badge":3`, `"badge":-1`, 1), token: oaToken, req: invalid, status: 400},
	{name: "campaign no database", server: "nodb", method: "POST", path: "/v1/campaigns", body: oaCamp, token: oaToken, status: 503},
	// GET /v1/campaigns/{id}
	{name: "progress", method: "GET", path: "/v1/campaigns/oa-1", token: oaToken, status: 200},
	{name: "progress no token", method: "GET", path: "/v1/campaigns/oa-1", req: unchecked, status: 401},
	{name: "progress as app", method: "GET", path: "/v1/campaigns/oa-1", token: oaKey, status: 403},
	{name: "progress unknown", method: "GET", path: "/v1/campaigns/nope", token: oaToken, status: 404},
	{name: "progress unknown query", method: "GET", path: "/v1/campaigns/oa-1?x=1", token: oaToken, req: unchecked, status: 400},
	{name: "progress no database", server: "nodb", method: "GET", path: "/v1/campaigns/oa-1", token: oaToken, status: 503},
	// GET /v1/campaigns
	{name: "list", method: "GET", path: "/v1/campaigns", token: oaToken, status: 200},
	{name: "list a page", method: "GET", path: "/v1/campaigns?limit=1", token: oaToken, status: 200},
	{name: "list scheduled", method: "GET", path: "/v1/campaigns?state=scheduled", token: oaToken, status: 200},
	{name: "list before", method: "GET", path: "/v1/campaigns?before=oa-2", token: oaToken, status: 200},
	{name: "list no token", method: "GET", path: "/v1/campaigns", req: unchecked, status: 401},
	{name: "list as app", method: "GET", path: "/v1/campaigns", token: oaKey, status: 403},
	{name: "list bad state", method: "GET", path: "/v1/campaigns?state=sleeping", token: oaToken, req: invalid, status: 400},
	{name: "list limit 0", method: "GET", path: "/v1/campaigns?limit=0", token: oaToken, req: invalid, status: 400},
	{name: "list limit 101", method: "GET", path: "/v1/campaigns?limit=101", token: oaToken, req: invalid, status: 400},
	{name: "list limit x", method: "GET", path: "/v1/campaigns?limit=x", token: oaToken, req: invalid, status: 400},
	{name: "list bad before", method: "GET", path: "/v1/campaigns?before=a%20b", token: oaToken, req: invalid, status: 400},
	{name: "list unknown before", method: "GET", path: "/v1/campaigns?before=nope", token: oaToken, req: unchecked, status: 400},
	{name: "list no database", server: "nodb", method: "GET", path: "/v1/campaigns", token: oaToken, status: 503},
	// PATCH /v1/campaigns/{id}
	{name: "rate", method: "PATCH", path: "/v1/campaigns/oa-2", body: `{"rate_per_second":25}`, token: oaToken, status: 200},
	{name: "rate removed", method: "PATCH", path: "/v1/campaigns/oa-2", body: `{"rate_per_second":0}`, token: oaToken, status: 200},
	{name: "rate no token", method: "PATCH", path: "/v1/campaigns/oa-2", body: `{"rate_per_second":25}`, req: unchecked, status: 401},
	{name: "rate as app", method: "PATCH", path: "/v1/campaigns/oa-2", body: `{"rate_per_second":25}`, token: oaKey, status: 403},
	{name: "rate negative", method: "PATCH", path: "/v1/campaigns/oa-2", body: `{"rate_per_second":-1}`, token: oaToken, req: invalid, status: 400},
	{name: "rate unknown field", method: "PATCH", path: "/v1/campaigns/oa-2", body: `{"rate_per_second":5,"ttl_seconds":60}`, token: oaToken, req: invalid, status: 400},
	{name: "rate missing", method: "PATCH", path: "/v1/campaigns/oa-2", body: `{}`, token: oaToken, req: invalid, status: 400},
	{name: "rate unknown", method: "PATCH", path: "/v1/campaigns/nope", body: `{"rate_per_second":5}`, token: oaToken, status: 404},
	{name: "rate too large", method: "PATCH", path: "/v1/campaigns/oa-2", body: strings.Repeat(" ", patchBody+1), token: oaToken, req: unchecked, status: 413},
	{name: "rate text", method: "PATCH", path: "/v1/campaigns/oa-2", body: `{"rate_per_second":5}`, token: oaToken, contentType: "text/plain", req: unchecked, status: 415},
	{name: "rate no database", server: "nodb", method: "PATCH", path: "/v1/campaigns/oa-2", body: `{"rate_per_second":5}`, token: oaToken, status: 503},
	// POST /v1/campaigns/{id}/cancel
	{name: "cancel", method: "POST", path: "/v1/campaigns/oa-2/cancel", token: oaToken, status: 200},
	{name: "cancel again", method: "POST", path: "/v1/campaigns/oa-2/cancel", token: oaToken, status: 200},
	{name: "cancel no token", method: "POST", path: "/v1/campaigns/oa-2/cancel", req: unchecked, status: 401},
	{name: "cancel as app", method: "POST", path: "/v1/campaigns/oa-2/cancel", token: oaKey, status: 403},
	{name: "cancel unknown", method: "POST", path: "/v1/campaigns/nope/cancel", token: oaToken, status: 404},
	{name: "cancel unknown query", method: "POST", path: "/v1/campaigns/oa-2/cancel?x=1", token: oaToken, req: unchecked, status: 400},
	{name: "cancel done", method: "POST", path: "/v1/campaigns/oa-1/cancel", token: oaToken, status: 409, before: finish("oa-1")},
	{name: "cancel no database", server: "nodb", method: "POST", path: "/v1/campaigns/oa-2/cancel", token: oaToken, status: 503},
	{name: "rate done", method: "PATCH", path: "/v1/campaigns/oa-1", body: `{"rate_per_second":5}`, token: oaToken, status: 409},
	{name: "rate canceled", method: "PATCH", path: "/v1/campaigns/oa-2", body: `{"rate_per_second":5}`, token: oaToken, status: 409},
	// POST /v1/messages
	{name: "message", method: "POST", path: "/v1/messages", body: oaMsg, token: oaToken, status: 202},
	{name: "message again", method: "POST", path: "/v1/messages", body: oaMsg, token: oaToken, status: 200},
	{name: "message other content", method: "POST", path: "/v1/messages", body: strings.Replace(oaMsg, `"Hi"`, `"Hello"`, 1), token: oaToken, status: 409},
	{name: "message a campaign's id", method: "POST", path: "/v1/messages", body: strings.Replace(oaMsg, `oa-m1`, `oa-1`, 1), token: oaToken, status: 409},
	{name: "message normal", method: "POST", path: "/v1/messages", body: strings.Replace(oaUsers(3), `{`, `{"priority":"normal",`, 1), token: oaToken, status: 202},
	{name: "message no token", method: "POST", path: "/v1/messages", body: oaMsg, req: unchecked, status: 401},
	{name: "message as app", method: "POST", path: "/v1/messages", body: oaMsg, token: oaKey, status: 403},
	{name: "message no users", method: "POST", path: "/v1/messages", body: `{"app":"com.example.news","notification":{"title":"Hi"}}`, token: oaToken, req: unchecked, status: 400},
	{name: "message user 0", method: "POST", path: "/v1/messages", body: strings.Replace(oaMsg, `[42,43,42]`, `[0]`, 1), token: oaToken, req: invalid, status: 400},
	{name: "message bad priority", method: "POST", path: "/v1/messages", body: strings.Replace(oaMsg, `"category"`, `"priority":"urgent","category"`, 1), token: oaToken, req: invalid, status: 400},
	{name: "message too many users", method: "POST", path: "/v1/messages", body: oaUsers(campaign.MaxMessageUsers + 1), token: oaToken, req: invalid, status: 413},
	{name: "message too large", method: "POST", path: "/v1/messages", body: strings.Repeat(" ", messageBody+1), token: oaToken, req: unchecked, status: 413},
	{name: "message to tokens", method: "POST", path: "/v1/messages", body: strings.Replace(strings.Replace(oaMsg, `"users":[42,43,42]`, `"tokens":[{"platform":"android","token":"fcm:tok-1"},{"platform":"android","token":"fcm:tok-1"}]`, 1), "oa-m1", "oa-t1", 1), token: oaToken, status: 202},
	{name: "message to tokens again", method: "POST", path: "/v1/messages", body: strings.Replace(strings.Replace(oaMsg, `"users":[42,43,42]`, `"tokens":[{"platform":"android","token":"fcm:tok-1"}]`, 1), "oa-m1", "oa-t1", 1), token: oaToken, status: 200},
	{name: "message users and tokens", method: "POST", path: "/v1/messages", body: strings.Replace(oaMsg, `"users"`, `"tokens":[{"platform":"android","token":"fcm:tok-1"}],"users"`, 1), token: oaToken, req: unchecked, status: 400},
	{name: "message bad token", method: "POST", path: "/v1/messages", body: strings.Replace(oaMsg, `"users":[42,43,42]`, `"tokens":[{"platform":"ios","token":"abc"}]`, 1), token: oaToken, req: unchecked, status: 400},
	{name: "message too many tokens", method: "POST", path: "/v1/messages", body: oaTokens(campaign.MaxMessageTokens + 1), token: oaToken, req: invalid, status: 413},
	{name: "message unknown app", method: "POST", path: "/v1/messages", body: strings.NewReplacer(oaApp, "com.example.unknown", `"oa-m1"`, `"oa-m-unknown"`).Replace(oaMsg), token: oaToken, status: 422},
	{name: "message text", method: "POST", path: "/v1/messages", body: oaMsg, token: oaToken, contentType: "text/plain", req: unchecked, status: 415},
	{name: "message no database", server: "nodb", method: "POST", path: "/v1/messages", body: oaMsg, token: oaToken, status: 503},
	// GET /v1/messages/{id}
	{name: "message progress", method: "GET", path: "/v1/messages/oa-m1", token: oaToken, status: 200},
	{name: "message progress no token", method: "GET", path: "/v1/messages/oa-m1", req: unchecked, status: 401},
	{name: "message progress as app", method: "GET", path: "/v1/messages/oa-m1", token: oaKey, status: 403},
	{name: "message progress unknown", method: "GET", path: "/v1/messages/nope", token: oaToken, status: 404},
	{name: "message progress of a campaign", method: "GET", path: "/v1/messages/oa-1", token: oaToken, status: 404},
	{name: "message progress unknown query", method: "GET", path: "/v1/messages/oa-m1?x=1", token: oaToken, req: unchecked, status: 400},
	{name: "message progress no database", server: "nodb", method: "GET", path: "/v1/messages/oa-m1", token: oaToken, status: 503},
	// GET /v1/messages
	{name: "message list", method: "GET", path: "/v1/messages", token: oaToken, status: 200},
	{name: "message list a page", method: "GET", path: "/v1/messages?limit=1", token: oaToken, status: 200},
	{name: "message list before", method: "GET", path: "/v1/messages?before=oa-m1", token: oaToken, status: 200},
	{name: "message list no token", method: "GET", path: "/v1/messages", req: unchecked, status: 401},
	{name: "message list as app", method: "GET", path: "/v1/messages", token: oaKey, status: 403},
	{name: "message list limit 0", method: "GET", path: "/v1/messages?limit=0", token: oaToken, req: invalid, status: 400},
	{name: "message list limit 101", method: "GET", path: "/v1/messages?limit=101", token: oaToken, req: invalid, status: 400},
	{name: "message list state", method: "GET", path: "/v1/messages?state=done", token: oaToken, req: unchecked, status: 400},
	{name: "message list a campaign before", method: "GET", path: "/v1/messages?before=oa-1", token: oaToken, req: unchecked, status: 400},
	{name: "message list no database", server: "nodb", method: "GET", path: "/v1/messages", token: oaToken, status: 503},
	// GET /v1/openapi.json
	{name: "reference", method: "GET", path: "/v1/openapi.json", token: oaKey, status: 200},
	{name: "reference no token", method: "GET", path: "/v1/openapi.json", req: unchecked, status: 401},
	{name: "reference unknown query", method: "GET", path: "/v1/openapi.json?x=1", token: oaKey, req: unchecked, status: 400},
}

// throttledCalls: every route answers the operator token 429 once its
// address has spent its wrong-token budget (server "throttled").
func throttledCalls(s *Server) []apiCall {
	calls := []apiCall{{name: "spend the wrong-token budget", server: "throttled", method: "GET", path: OpenAPIPath,
		token: "wrong-token-0123456789", req: unchecked, status: 401}}
	for _, rt := range s.routes() {
		if notAPI[rt.pattern] != "" {
			continue
		}
		method, path := concrete(rt.pattern, oaApp)
		calls = append(calls, apiCall{name: rt.pattern + " throttled", server: "throttled", method: method, path: path,
			body: validBody(rt.pattern, oaApp), token: oaToken, req: unchecked, status: 429})
	}
	return calls
}

// notCalled are the statuses a route may document without a call here, and
// where they are tested instead.
var notCalled = map[int]string{
	408: "needs a client slower than the read timeout: limits_test.go",
	500: "needs a PostgreSQL that refuses a write for another reason than a bad value",
	503: "for Redis: needs Redis to go away mid-test (devices_test.go, the drills); the body budget: body_test.go",
}

// TestOpenAPIConformance calls every route against real servers (Redis,
// PostgreSQL) and validates each request and answer against the document
// with kin-openapi's openapi3filter; then it checks that every route had a
// call for each status it documents.
func TestOpenAPIConformance(t *testing.T) {
	t.Parallel()
	doc, router := loadOpenAPI(t)
	auth := Auth{AdminToken: oaToken, AppKeys: map[string]string{oaApp: oaKey, "com.example.other": "other-app-key-0123456789"}}
	servers := map[string]*openapiServer{
		"":        newOpenAPIServer(t, Config{Auth: auth}, true),
		"limited": newOpenAPIServer(t, Config{Auth: auth, DeviceWriteRate: 0.001, DeviceWriteBurst: 2}, true),
		"nodb":    newOpenAPIServer(t, Config{Auth: auth}, false),
		// One wrong token spends the address's budget for 1000 s.
		"throttled": newOpenAPIServer(t, Config{Auth: auth, AuthFailRate: 0.001, AuthFailBurst: 1}, true),
	}
	opts := &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, IncludeResponseStatus: true, MultiError: true}
	called := map[string]map[int]bool{} // route pattern → statuses seen
	for _, c := range append(openapiCalls, throttledCalls(servers[""].s)...) {
		srv := servers[c.server]
		req := httptest.NewRequest(c.method, c.path, strings.NewReader(c.body))
		req.Header.Set("Content-Type", cmp.Or(c.contentType, "application/json"))
		if c.token != "" {
			req.Header.Set("Authorization", "Bearer "+c.token)
		}
		_, pattern := srv.s.mux.Handler(req)
		route, params, err := router.FindRoute(req)
		if err != nil {
			t.Errorf("%s: %s %s has no operation in stages/api/openapi.json: %v", c.name, c.method, c.path, err)
			continue
		}
		in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route, Options: opts}
		reqErr := openapi3filter.ValidateRequest(context.Background(), in)
		switch {
		case c.req == valid && reqErr != nil:
			t.Errorf("%s: the request does not conform to stages/api/openapi.json: %v", c.name, reqErr)
		case c.req == invalid && reqErr == nil:
			t.Errorf("%s: the server refuses this request (%d) but stages/api/openapi.json allows it: document the constraint", c.name, c.status)
		}
		if c.before != nil {
			c.before(t, srv)
		}
		status, header, body := srv.do(t, c)
		if status != c.status {
			t.Errorf("%s: %s %s answered %d %s, want %d", c.name, c.method, c.path, status, body, c.status)
		}
		if called[pattern] == nil {
			called[pattern] = map[int]bool{}
		}
		called[pattern][status] = true
		in.Request = httptest.NewRequest(c.method, c.path, nil) // the body was read by validation
		resp := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: status, Header: header, Options: opts}
		resp.SetBodyBytes(body)
		if err := openapi3filter.ValidateResponse(context.Background(), resp); err != nil {
			t.Errorf("%s: the %d answer does not conform to stages/api/openapi.json: %v\n%s", c.name, status, err, body)
		}
	}
	for _, rt := range servers[""].s.routes() {
		if notAPI[rt.pattern] != "" {
			continue
		}
		method, path, _ := strings.Cut(rt.pattern, " ")
		op := doc.Paths.Find(path)
		if op == nil || op.GetOperation(method) == nil {
			continue // TestOpenAPIListsEveryRoute says what to add
		}
		seen := called[rt.pattern]
		if len(seen) == 0 {
			t.Errorf("route %q has no call in openapiCalls (stages/api/openapi_test.go): add one for its success and one for each error status it documents", rt.pattern)
			continue
		}
		for code := range op.GetOperation(method).Responses.Map() {
			n, err := strconv.Atoi(code)
			if err != nil || seen[n] || notCalled[n] != "" {
				continue
			}
			t.Errorf("route %q documents %d but no call in openapiCalls (stages/api/openapi_test.go) gets it: add one (or remove the status from the document)", rt.pattern, n)
		}
	}
}

// TestUnknownRouteNamesTheReference: an authenticated request to a path the
// API does not serve is a 404 told where the routes are listed; a path it
// serves asked with another method is a 405 whose Allow header (as
// net/http's ServeMux writes it: sorted, HEAD beside GET) and error say
// which methods it takes ("no such endpoint: PUT /v1/campaigns" alone, a
// 404, sent the caller after the path).
func TestUnknownRouteNamesTheReference(t *testing.T) {
	srv := newOpenAPIServer(t, Config{Auth: Auth{AdminToken: oaToken}}, false)
	const ref = "; the routes are listed in GET /v1/openapi.json (docs/API.md in the repository)"
	tests := []struct {
		give       apiCall
		wantStatus int
		wantAllow  string
		want       string
	}{
		{apiCall{method: "PUT", path: "/v1/channels/breaking/subscribers", token: oaToken}, 405, "POST",
			"no such endpoint: PUT /v1/channels/breaking/subscribers (/v1/channels/breaking/subscribers takes POST)" + ref},
		{apiCall{method: "POST", path: "/v1/subscribe", token: oaToken}, 404, "", "no such endpoint: POST /v1/subscribe" + ref},
		{apiCall{method: "GET", path: "/v1/devices", token: oaToken}, 405, "POST", "no such endpoint: GET /v1/devices (/v1/devices takes POST)" + ref},
		{apiCall{method: "PUT", path: "/v1/campaigns", token: oaToken}, 405, "GET, HEAD, POST",
			"no such endpoint: PUT /v1/campaigns (/v1/campaigns takes POST or GET)" + ref},
		{apiCall{method: "DELETE", path: "/v1/campaigns/c1", token: oaToken}, 405, "GET, HEAD, PATCH",
			"no such endpoint: DELETE /v1/campaigns/c1 (/v1/campaigns/c1 takes GET or PATCH)" + ref},
		{apiCall{method: "GET", path: "/v1/campaigns/c1/cancel", token: oaToken}, 405, "POST",
			"no such endpoint: GET /v1/campaigns/c1/cancel (/v1/campaigns/c1/cancel takes POST)" + ref},
		{apiCall{method: "PATCH", path: "/v1/users/7", token: oaToken}, 405, "DELETE, GET, HEAD",
			"no such endpoint: PATCH /v1/users/7 (/v1/users/7 takes GET or DELETE)" + ref},
		{apiCall{method: "OPTIONS", path: "/v1/openapi.json", token: oaToken}, 405, "GET, HEAD",
			"no such endpoint: OPTIONS /v1/openapi.json (/v1/openapi.json takes GET)" + ref},
		{apiCall{method: "GET", path: "/v1/campaigns/c1/", token: oaToken}, 404, "", "no such endpoint: GET /v1/campaigns/c1/" + ref},
		{apiCall{method: "GET", path: "/v1/" + strings.Repeat("x", 10_000), token: oaToken}, 404, "",
			"no such endpoint: GET /v1/" + strings.Repeat("x", 60) + "…" + ref},
	}
	for _, tt := range tests {
		status, header, body := srv.do(t, tt.give)
		var got struct{ Error string }
		err := json.Unmarshal(body, &got)
		if err != nil || status != tt.wantStatus || header.Get("Allow") != tt.wantAllow || got.Error != tt.want {
			t.Errorf("%s %s: %d Allow %q %s, want %d Allow %q %q", tt.give.method, tt.give.path, status, header.Get("Allow"), body,
				tt.wantStatus, tt.wantAllow, tt.want)
		}
	}
	// The HEAD that Allow names beside GET is served.
	if status, _, _ := srv.do(t, apiCall{method: "HEAD", path: "/v1/openapi.json", token: oaToken}); status != http.StatusOK {
		t.Errorf("HEAD /v1/openapi.json: %d, want 200 as its Allow says", status)
	}
}

type openapiServer struct {
	s   *Server
	url string
}

// newOpenAPIServer serves the API with cfg's auth and limits on real Redis
// and, withDB, a migrated PostgreSQL database of its own.
func newOpenAPIServer(t *testing.T, cfg Config, withDB bool) *openapiServer {
	t.Helper()
	rdb, err := pipeline.NewRedis(env.Redis.Addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rdb.Close)
	var db *pgxpool.Pool
	if withDB {
		url := pipelinetest.MigratedDatabaseT(t, env.Postgres)
		if db, err = pgxpool.New(context.Background(), url); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(db.Close)
	}
	cfg.Redis, cfg.DB, cfg.Log = rdb, db, zerolog.Nop()
	cfg.Keys = pipeline.NewKeys("oa"+strconv.FormatUint(rand.Uint64(), 36), 16)
	s := New(cfg)
	hs := httptest.NewServer(s)
	t.Cleanup(hs.Close)
	return &openapiServer{s: s, url: hs.URL}
}

func (o *openapiServer) do(t *testing.T, c apiCall) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(c.method, o.url+c.path, strings.NewReader(c.body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", cmp.Or(c.contentType, "application/json"))
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, b
}
