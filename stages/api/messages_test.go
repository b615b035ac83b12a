package api

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/campaign"
)

// dedupeEntries counts the entries in a lane of dedupe's input, and checks
// each is where it belongs: a message of at most campaign.WholeMessageUsers
// in the partition of its id, a larger one's users in theirs.
func (a *deviceAPI) dedupeEntries(l pipeline.Lane) (entries, users int) {
	a.t.Helper()
	type read struct {
		stream string
		e      pipeline.DedupeEntry
	}
	var all []read
	total := map[string]int{}
	for _, s := range a.keys.Streams(l.Stream(pipeline.StreamDedupe)) {
		xs, err := a.rdb.Do(context.Background(), a.rdb.B().Xrange().Key(s).Start("-").End("+").Build()).AsXRange()
		if err != nil {
			a.t.Fatal(err)
		}
		for _, x := range xs {
			e, err := pipeline.ParseDedupeEntry(x.FieldValues)
			if err != nil {
				a.t.Fatalf("entry %s of %s: %v", x.ID, s, err)
			}
			// Its expiry rides along, so dedupe need not read the hash.
			exp, err := a.rdb.Do(context.Background(), a.rdb.B().Hget().Key(a.keys.Campaign(e.Campaign)).Field(campaign.HashExpiresMs).Build()).AsInt64()
			if err != nil || e.ExpiresMs != exp {
				a.t.Errorf("entry %s of message %s carries expiry %d, its hash %d (%v)", x.ID, e.Campaign, e.ExpiresMs, exp, err)
			}
			all = append(all, read{s, e})
			total[e.Campaign] += len(e.Users) + len(e.Muted)
		}
	}
	for _, r := range all {
		for _, u := range append(r.e.Users, r.e.Muted...) {
			p, why := a.keys.HashPartition(r.e.Campaign), "its message's"
			if total[r.e.Campaign] > campaign.WholeMessageUsers {
				p, why = a.keys.UserPartition(u), "its own"
			}
			if want := a.keys.Stream(l.Stream(pipeline.StreamDedupe), p); r.stream != want {
				a.t.Errorf("user %d of message %s in %s, want %s (%s partition)", u, r.e.Campaign, r.stream, want, why)
			}
		}
		entries++
		users += len(r.e.Users) + len(r.e.Muted)
	}
	return entries, users
}

// TestMessageIsIdempotentByID: 202, then 200 for the same id and content
// with nothing new appended, 409 for other content; users are appended once
// each, by partition, to dedupe's express lane ("normal" to the bulk lane);
// a user who muted the category is appended as muted.
func TestMessageIsIdempotentByID(t *testing.T) {
	t.Parallel()
	a := newDeviceAPI(t, env.Redis.Addr, Auth{AdminToken: "op"})
	if r := a.do("PUT", "/v1/users/5000/preferences", `{"muted_categories":["chat"]}`, "op"); r.status != http.StatusNoContent {
		t.Fatalf("preferences: %d %s", r.status, r.body)
	}
	body := `{"id":"room-1-msg-9","app":"com.example.chat","users":[3000,1,5000,2,1,70000],"category":"chat",
		"notification":{"title":"Ann","body":"hi all"}}`
	if r := a.do("POST", "/v1/messages", body, "op"); r.status != http.StatusAccepted || !strings.Contains(r.body, `"id":"room-1-msg-9"`) {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	entries, users := a.dedupeEntries(pipeline.Express)
	if users != 5 {
		t.Fatalf("%d users appended to dedupe's express lane, want 5 (each once)", users)
	}
	if r := a.do("POST", "/v1/messages", body, "op"); r.status != http.StatusOK {
		t.Fatalf("same id again: %d %s", r.status, r.body)
	}
	if e2, _ := a.dedupeEntries(pipeline.Express); e2 != entries {
		t.Fatalf("the same message again appended %d entries", e2-entries)
	}
	if r := a.do("POST", "/v1/messages", strings.Replace(body, "hi all", "bye", 1), "op"); r.status != http.StatusConflict {
		t.Fatalf("same id, other content: %d %s", r.status, r.body)
	}
	if r := a.do("POST", "/v1/messages", strings.Replace(body, "3000,", "", 1), "op"); r.status != http.StatusConflict {
		t.Fatalf("same id, other users: %d %s", r.status, r.body)
	}
	muted := 0
	for _, s := range a.keys.Streams(pipeline.StreamDedupeExpress) {
		xs, _ := a.rdb.Do(context.Background(), a.rdb.B().Xrange().Key(s).Start("-").End("+").Build()).AsXRange()
		for _, x := range xs {
			e, _ := pipeline.ParseDedupeEntry(x.FieldValues)
			muted += len(e.Muted)
			if len(e.Muted) == 1 && e.Muted[0] != 5000 {
				t.Errorf("user %d appended as muted", e.Muted[0])
			}
		}
	}
	if muted != 1 {
		t.Errorf("%d users appended as muted, want 1 (user 5000 muted chat)", muted)
	}

	// More users than one entry takes: grouped by user partition, so every
	// deliverer shares the sends.
	big := make([]string, campaign.WholeMessageUsers+1)
	for i := range big {
		big[i] = strconv.Itoa(10_000 + i*37)
	}
	if r := a.do("POST", "/v1/messages", `{"id":"all-hands","app":"com.example.chat","users":[`+strings.Join(big, ",")+`],"notification":{"body":"x"}}`, "op"); r.status != http.StatusAccepted {
		t.Fatalf("large message: %d %s", r.status, r.body)
	}
	if e3, n := a.dedupeEntries(pipeline.Express); e3-entries < 2 || n != 5+len(big) {
		t.Errorf("a message of %d users appended %d entries of %d users in all, want one per user partition", len(big), e3-entries, n-5)
	}

	normal := `{"id":"digest-1","app":"com.example.chat","users":[7],"priority":"normal","notification":{"body":"x"}}`
	if r := a.do("POST", "/v1/messages", normal, "op"); r.status != http.StatusAccepted {
		t.Fatalf("normal priority: %d %s", r.status, r.body)
	}
	if _, n := a.dedupeEntries(pipeline.Bulk); n != 1 {
		t.Errorf("a normal-priority message put %d users in the bulk lane, want 1", n)
	}

	r := a.do("GET", "/v1/messages/room-1-msg-9", "", "op")
	if r.status != http.StatusOK || !strings.Contains(r.body, `"state":"sending"`) {
		t.Errorf("GET: %d %s", r.status, r.body)
	}
	if r := a.do("GET", "/v1/messages/nope", "", "op"); r.status != http.StatusNotFound {
		t.Errorf("GET unknown: %d %s", r.status, r.body)
	}
	if r := a.do("POST", "/v1/campaigns", `{"id":"c1","app":"com.example.chat","channels":["x"],"notification":{"body":"x"}}`, "op"); r.status != http.StatusCreated {
		t.Fatalf("campaign: %d %s", r.status, r.body)
	}
	if r := a.do("GET", "/v1/messages/c1", "", "op"); r.status != http.StatusNotFound {
		t.Errorf("GET a campaign's id as a message: %d %s", r.status, r.body)
	}
}

// TestMessageValidation: what can never be sent is refused before anything
// is stored, with the field named; an app key may not send.
func TestMessageValidation(t *testing.T) {
	t.Parallel()
	a := newDeviceAPI(t, env.Redis.Addr, Auth{AdminToken: "op", AppKeys: map[string]string{"com.example.chat": "app-key-0123456789abcdef"}})
	many := make([]string, 10_001)
	for i := range many {
		many[i] = fmt.Sprint(i + 1)
	}
	note := `"notification":{"body":"x"}`
	tests := []struct {
		name, body string
		want       int
		say        string
	}{
		{"empty users", `{"app":"com.example.chat","users":[],` + note + `}`, 400, "users"},
		{"no users", `{"app":"com.example.chat",` + note + `}`, 400, "users"},
		{"zero id", `{"app":"com.example.chat","users":[0],` + note + `}`, 400, "users[0]"},
		{"10,001 users", `{"app":"com.example.chat","users":[` + strings.Join(many, ",") + `],` + note + `}`, 413, "10000"},
		{"bad priority", `{"app":"com.example.chat","users":[1],"priority":"urgent",` + note + `}`, 400, "priority"},
		{"no notification", `{"app":"com.example.chat","users":[1]}`, 400, "notification"},
		{"no app", `{"users":[1],` + note + `}`, 400, "app"},
		{"bad id", `{"id":"a b","app":"com.example.chat","users":[1],` + note + `}`, 400, "id"},
		{"empty id", `{"id":"","app":"com.example.chat","users":[1],` + note + `}`, 400, "id: is empty: give the message's idempotency key"},
		// A key serialized from an unset variable: taken as no key, each
		// retry was a new message, sent again.
		{"null id", `{"id":null,"app":"com.example.chat","users":[1],` + note + `}`, 400, "id: is null: give the message's idempotency key"},
		{"number id", `{"id":7,"app":"com.example.chat","users":[1],` + note + `}`, 400, "id: must be a string, the idempotency key"},
		{"unknown field", `{"app":"com.example.chat","users":[1],"chanels":["x"],` + note + `}`, 400, `unknown field \"chanels\"`},
		// A campaign's fields say what a message is instead.
		{"channels", `{"app":"com.example.chat","users":[1],"channels":["x"],` + note + `}`, 400, `lists \"users\" or \"tokens\"; a campaign`},
		{"send_at", `{"app":"com.example.chat","users":[1],"send_at":"2030-01-02T15:04:05Z",` + note + `}`, 400, "sent at once to the users or tokens it lists; a campaign (POST /v1/campaigns) can be scheduled"},
		{"rate_per_second", `{"app":"com.example.chat","users":[1],"rate_per_second":5,` + note + `}`, 400, "can be given its own rate"},
		{"short ios token", `{"app":"com.example.chat","tokens":[{"platform":"ios","token":"ab"}],` + note + `}`, 400, "tokens[0].token"},
		{"APNs token as android", `{"app":"com.example.chat","tokens":[{"platform":"android","token":"` + strings.Repeat("ab", 32) + `"}],` + note + `}`, 400,
			`tokens[0].platform: is \"android\", but the token is an APNs token`},
		{"users and tokens", `{"app":"com.example.chat","users":[1],"tokens":[{"platform":"android","token":"ab"}],` + note + `}`, 400, "not both"},
		{"users and empty tokens", `{"app":"com.example.chat","users":[1],"tokens":[],` + note + `}`, 400, "not both"},
		{"both empty", `{"app":"com.example.chat","users":[],"tokens":[],` + note + `}`, 400, "both are empty; give one of them"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := a.do("POST", "/v1/messages", tt.body, "op")
			if r.status != tt.want || !strings.Contains(r.body, tt.say) {
				t.Errorf("got %d %s, want %d naming %q", r.status, r.body, tt.want, tt.say)
			}
		})
	}
	if e, _ := a.dedupeEntries(pipeline.Express); e != 0 {
		t.Errorf("refused messages appended %d entries", e)
	}
	if r := a.do("POST", "/v1/messages", `{"app":"com.example.chat","users":[1],`+note+`}`, "app-key-0123456789abcdef"); r.status != http.StatusForbidden {
		t.Errorf("app key: %d %s", r.status, r.body)
	}
}

// TestRecordOnTheOtherRoute: campaigns and messages share one id space, so
// an id asked on the other's route is a 404 that names the route holding
// it, both ways; a create given the other's id is a 409 that says so, not
// "a retry whose content changed"; and only a cancel is told that a message
// cannot be canceled.
func TestRecordOnTheOtherRoute(t *testing.T) {
	t.Parallel()
	a := newDeviceAPI(t, env.Redis.Addr, Auth{AdminToken: "op"})
	for _, create := range []struct{ path, body string }{
		{"/v1/campaigns", `{"id":"camp-1","app":"com.example.chat","channels":["x"],"notification":{"body":"x"}}`},
		{"/v1/messages", `{"id":"msg-1","app":"com.example.chat","users":[7],"notification":{"body":"x"}}`},
	} {
		if r := a.do("POST", create.path, create.body, "op"); r.status/100 != 2 {
			t.Fatalf("POST %s: %d %s", create.path, r.status, r.body)
		}
	}
	tests := []struct {
		method, path, body string
		status             int
		want, not          string
	}{
		{"GET", "/v1/messages/camp-1", "", http.StatusNotFound, "it is a campaign; see GET /v1/campaigns/camp-1", ""},
		{"GET", "/v1/campaigns/msg-1", "", http.StatusNotFound, "it is a direct message; see GET /v1/messages/msg-1", "cancel"},
		{"POST", "/v1/campaigns/msg-1/cancel", "", http.StatusNotFound, "it is a direct message; see GET /v1/messages/msg-1 (a message cannot be canceled)", ""},
		{"GET", "/v1/messages/nope", "", http.StatusNotFound, "no message nope: check the id (GET /v1/messages lists them, newest first)", ""},
		{"GET", "/v1/campaigns/nope", "", http.StatusNotFound, "no campaign nope: check the id (GET /v1/campaigns lists them, newest first)", ""},
		{"POST", "/v1/campaigns/nope/cancel", "", http.StatusNotFound, "no campaign nope: check the id (GET /v1/campaigns lists them", ""},
		// An id no record can have is echoed cut, not 10 KB back.
		{"GET", "/v1/campaigns/" + strings.Repeat("x", 10_000), "", http.StatusNotFound,
			`no campaign "` + strings.Repeat("x", 64) + `…": check the id`, strings.Repeat("x", 65)},
		{"GET", "/v1/messages/" + strings.Repeat("x", 10_000), "", http.StatusNotFound, `no message "` + strings.Repeat("x", 64) + `…": check the id`, strings.Repeat("x", 65)},
		{"POST", "/v1/campaigns/" + strings.Repeat("x", 10_000) + "/cancel", "", http.StatusNotFound, `no campaign "` + strings.Repeat("x", 64) + `…": check the id`, strings.Repeat("x", 65)},
		{"POST", "/v1/messages", `{"id":"camp-1","app":"com.example.chat","users":[7],"notification":{"body":"x"}}`, http.StatusConflict,
			"message id camp-1 is a campaign's (GET /v1/campaigns/camp-1)", "retry"},
		{"POST", "/v1/campaigns", `{"id":"msg-1","app":"com.example.chat","channels":["x"],"notification":{"body":"x"}}`, http.StatusConflict,
			"campaign id msg-1 is a direct message's (GET /v1/messages/msg-1)", "retry"},
	}
	for _, tt := range tests {
		r := a.do(tt.method, tt.path, tt.body, "op")
		if r.status != tt.status || !strings.Contains(r.error(), tt.want) || tt.not != "" && strings.Contains(r.error(), tt.not) {
			t.Errorf("%s %s: %d %s, want %d saying %q and not %q", tt.method, tt.path, r.status, r.body, tt.status, tt.want, tt.not)
		}
	}
}
