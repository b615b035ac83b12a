package ingest_test

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/devices"
	"github.com/pushpipe/pushpipe/stages/ingest"
)

// base is an event time safely in the past, so no event is "in the future".
var base = time.Now().Add(-time.Hour).UnixMicro()

func put(token string, user int64, at int64) devices.Event {
	return devices.Event{Op: pipeline.OpPut, App: "news", Token: token, Platform: platformOf(token), User: user, Locale: "en", At: base + at}
}

func platformOf(token string) devices.Platform {
	if strings.HasPrefix(token, "fcm-") {
		return devices.Android
	}
	return devices.IOS
}

func del(token string, at int64) devices.Event {
	return devices.Event{Op: pipeline.OpDelete, App: "news", Token: token, At: base + at}
}

// invalidate is what deliver reports: the token's owner and platform as it
// read them, and the provider's time.
func invalidate(token string, user, at int64) devices.Event {
	return devices.Event{Op: pipeline.OpInvalidate, App: "news", Token: token, Platform: platformOf(token), User: user, At: base + at}
}

// batchOf is a batch of entries as the runner would hand them over.
func batchOf(keys pipeline.Keys, evs ...devices.Event) *pipeline.Batch {
	b := &pipeline.Batch{Stream: keys.Stream(pipeline.StreamIngest, 0)}
	for i, e := range evs {
		m := e.Message(keys)
		f := map[string]string{}
		for j := 0; j < len(m.Fields); j += 2 {
			f[m.Fields[j]] = m.Fields[j+1]
		}
		b.Entries = append(b.Entries, pipeline.Entry{ID: "1-" + strconv.Itoa(i), Fields: f})
	}
	return b
}

// handler runs the handler directly on batches, one call per batch.
type handler struct {
	t    *testing.T
	h    *ingest.Handler
	reg  *prometheus.Registry
	db   *pgxpool.Pool
	keys pipeline.Keys
	want model
}

func newHandler(t *testing.T) *handler {
	_, db := testDB(t, 2)
	reg := prometheus.NewRegistry()
	h := ingest.New(ingest.Config{DB: db, Log: zerolog.Nop(), Metrics: reg})
	return &handler{t: t, h: h, reg: reg, db: db, keys: testKeys(), want: model{}}
}

func (h *handler) batch(evs ...devices.Event) {
	h.t.Helper()
	if err := h.h.Handle(context.Background(), batchOf(h.keys, evs...)); err != nil {
		h.t.Fatal(err)
	}
	if n := eventsCounted(h.t, h.reg, "malformed"); n != 0 {
		h.t.Fatalf("%v entries were dead-lettered as malformed", n)
	}
	h.want.apply(evs...)
}

// eventsCounted reads pushpipe_ingest_events_total{outcome}.
func eventsCounted(t testing.TB, reg *prometheus.Registry, outcome string) float64 {
	t.Helper()
	return ingestCounts(reg)[outcome]
}

func (h *handler) check() { h.t.Helper(); sameTable(h.t, h.db, h.want) }

func (h *handler) row(token string) row {
	h.t.Helper()
	r, ok := rowOf(h.t, h.db, "news", token)
	if !ok {
		h.t.Fatalf("no row for %s", token)
	}
	return r
}

func TestDuplicatesAndUpdatesInOneBatch(t *testing.T) {
	h := newHandler(t)
	a, b, c := apnsToken(1), apnsToken(2), apnsToken(3)
	evs := []devices.Event{
		put(a, 1, 1), put(a, 2, 2), put(a, 2, 2), put(a, 3, 3), // updates and an exact repeat: the last wins
		put(b, 5, 5), put(b, 4, 4), // an older event later in the batch loses
		put(c, 6, 6), del(c, 7), put(c, 8, 8), // deleted and registered again, in one batch
	}
	same := put(apnsToken(4), 9, 9)
	same.Locale = "de"
	evs = append(evs, put(apnsToken(4), 9, 9), same) // equal times: the later entry wins
	for i := range 500 {                             // many tokens, each three times, interleaved
		for _, at := range []int64{10, 12, 11} {
			evs = append(evs, put(apnsToken(100+i), int64(1000+i)+at, at))
		}
	}
	h.batch(evs...) // no "ON CONFLICT DO UPDATE command cannot affect row a second time"
	h.check()
	if r := h.row(apnsToken(4)); r.Locale != "de" {
		t.Fatalf("equal event times: want the later entry (locale de), got %v", r)
	}
	if r := h.row(a); r.User != 3 {
		t.Fatalf("want user 3, got %v", r)
	}
}

func TestOutOfOrderAndReplayedEvents(t *testing.T) {
	h := newHandler(t)
	a := apnsToken(1)
	newer, older := put(a, 2, 20), put(a, 1, 10)
	h.batch(newer)
	h.batch(older) // arrives late: ignored
	if r := h.row(a); r.User != 2 || r.At != base+20 {
		t.Fatalf("an older event regressed the device: %v", r)
	}
	updated := func() time.Time {
		var at time.Time
		if err := h.db.QueryRow(context.Background(), `SELECT updated_at FROM devices WHERE token = $1`, a).Scan(&at); err != nil {
			t.Fatal(err)
		}
		return at
	}
	before := updated()
	h.batch(newer, older) // a replay of both: nothing is written again
	h.batch(newer)
	if after := updated(); !after.Equal(before) {
		t.Fatalf("a replayed event rewrote the row (updated_at %v → %v)", before, after)
	}
	h.check()
}

func TestTokenMovesBetweenUsers(t *testing.T) {
	h := newHandler(t)
	a, b := apnsToken(1), apnsToken(2)
	h.batch(put(a, 1, 1), put(b, 1, 1))
	h.batch(put(a, 2, 2)) // the phone changed hands (or accounts)
	got, err := devices.ValidTokens(context.Background(), h.db, "news", []int64{1, 2})
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(got, func(x, y devices.Device) int { return int(x.UserID - y.UserID) })
	// who owns which token; other columns a Device may carry are not this test's subject
	type owner struct {
		user     int64
		platform devices.Platform
		token    string
	}
	var owners []owner
	for _, d := range got {
		owners = append(owners, owner{d.UserID, d.Platform, d.Token})
	}
	want := []owner{{1, devices.IOS, b}, {2, devices.IOS, a}}
	if !slices.Equal(owners, want) {
		t.Fatalf("valid tokens: got %+v, want %+v", got, want)
	}
	h.check()
}

func TestDeleteThenRegisterAgain(t *testing.T) {
	h := newHandler(t)
	a := apnsToken(1)
	h.batch(put(a, 1, 1))
	h.batch(del(a, 2))
	if r := h.row(a); r.State != devices.Deleted {
		t.Fatalf("after delete: %v", r)
	}
	h.batch(put(a, 1, 1)) // the old registration replayed: stays deleted
	if r := h.row(a); r.State != devices.Deleted {
		t.Fatalf("a replayed older put resurrected a deleted token: %v", r)
	}
	h.batch(put(a, 7, 3)) // registered again, by someone else
	if r := h.row(a); r.State != devices.Active || r.User != 7 {
		t.Fatalf("after re-register: %v", r)
	}
	h.check()
}

func TestDeleteOfUnknownTokenLeavesTombstone(t *testing.T) {
	h := newHandler(t)
	a := fcmToken(1)
	h.batch(del(a, 10))
	h.batch(put(a, 1, 5)) // older than the delete, arriving after it
	if r := h.row(a); r.State != devices.Deleted {
		t.Fatalf("an older put resurrected a token deleted before it was known: %v", r)
	}
	h.batch(put(a, 1, 11))
	if r := h.row(a); r.State != devices.Active {
		t.Fatalf("a newer put did not register the token: %v", r)
	}
	h.check()
}

func TestInvalidationFromTheProvider(t *testing.T) {
	h := newHandler(t)
	a := apnsToken(1)
	h.batch(put(a, 1, 1))
	h.batch(invalidate(a, 1, 2))
	if r := h.row(a); r.State != devices.Invalidated || r.User != 1 {
		t.Fatalf("after invalidation: %v", r)
	}
	if got, _ := devices.ValidTokens(context.Background(), h.db, "news", []int64{1}); len(got) != 0 {
		t.Fatalf("an invalidated token is still valid: %v", got)
	}
	h.batch(put(a, 1, 4))        // the app registered the token again
	h.batch(invalidate(a, 1, 3)) // a provider answer about the old registration
	if r := h.row(a); r.State != devices.Active {
		t.Fatalf("an older invalidation disabled a newer registration: %v", r)
	}
	h.check()
}

// An APNs token registered in upper case and again in lower case (an app
// that changed how it prints its token) is one device, stored lowercase,
// and a delete in either case removes it: it was two devices, and the
// phone got every notification twice. FCM tokens, case-sensitive, stay two.
func TestAPNsTokenInEitherCaseIsOneDevice(t *testing.T) {
	h := newHandler(t)
	a := apnsToken(0xabcdef)
	f := "fcm-1:APA91bAbC"
	h.batch(put(strings.ToUpper(a), 1, 1), put(f, 1, 1))
	h.batch(put(a, 2, 2), put(strings.ToLower(f), 2, 2))
	got, err := devices.ValidTokens(context.Background(), h.db, "news", []int64{1, 2})
	if err != nil {
		t.Fatal(err)
	}
	tokens := map[int64][]string{}
	for _, d := range got {
		tokens[d.UserID] = append(tokens[d.UserID], d.Token)
	}
	if len(got) != 3 || !slices.Equal(tokens[1], []string{f}) || !slices.Contains(tokens[2], a) {
		t.Fatalf("devices %v, want user 1's FCM token, and user 2's APNs token (lowercase) and FCM token", tokens)
	}
	h.batch(del(strings.ToUpper(a), 3))
	if r := h.row(a); r.State != devices.Deleted {
		t.Fatalf("after a delete in upper case: %v", r)
	}
}
