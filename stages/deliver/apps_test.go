package deliver

import (
	"context"
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"maps"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/rs/zerolog"

	"github.com/pushpipe/pushpipe/pipeline"
	camp "github.com/pushpipe/pushpipe/pipeline/campaign"
	"github.com/pushpipe/pushpipe/pipeline/devices"
	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
	"github.com/pushpipe/pushpipe/stages/deliver/fakeprovider"
	"github.com/pushpipe/pushpipe/stages/deliver/push"
)

// appUnderTest is one app of the multi-app tests: its own fake provider,
// APNs key, topic and (unless noFCM) FCM project.
type appUnderTest struct {
	id, topic, keyID, teamID string
	noFCM                    bool
	fake                     *fakeprovider.Server
	devices                  []testDevice
}

// entry is the app's [apps."id"] table of an apps file.
func (a *appUnderTest) entry(t *testing.T) string {
	s := fmt.Sprintf("[apps.%q]\napns = { key = %q, key_id = %q, team_id = %q, topic = %q, host = %q }\n",
		a.id, fakeprovider.WriteP8(t), a.keyID, a.teamID, a.topic, a.fake.URL())
	if !a.noFCM {
		s += fmt.Sprintf("fcm = { project = %q, endpoint = %q }\n", "proj-"+a.id, a.fake.URL()+"/v1")
	}
	return s + "keys = [\"key-of-" + a.id + "-0123456789\"]\n"
}

// writeApps writes an apps file of apps and loads it.
func writeApps(t *testing.T, apps ...*appUnderTest) Apps {
	t.Helper()
	var b strings.Builder
	for _, a := range apps {
		b.WriteString(a.entry(t))
	}
	path := filepath.Join(t.TempDir(), "apps.toml")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	loaded, err := LoadApps(path)
	if err != nil {
		t.Fatal(err)
	}
	return loaded
}

// insertAppDevices gives users 1..n of app an iOS and an Android device
// each, with tokens that name the app (n ≤ 9999, app index < 100).
func (f *fixture) insertAppDevices(app string, index, n int) []testDevice {
	f.t.Helper()
	var ds []testDevice
	var rows [][]any
	for u := int64(1); u <= int64(n); u++ {
		ios := fmt.Sprintf("%02x%062x", index, u)
		android := fmt.Sprintf("fcm-%s-%d:APA91b", app, u)
		ds = append(ds, testDevice{u, push.IOS, ios}, testDevice{u, push.Android, android})
		at := time.Now().Add(-time.Hour)
		rows = append(rows, []any{app, ios, u, int16(devices.IOS), "", int16(0), at},
			[]any{app, android, u, int16(devices.Android), "", int16(0), at})
	}
	if _, err := f.db.CopyFrom(f.ctx, pgx.Identifier{"devices"},
		[]string{"app", "token", "user_id", "platform", "locale", "state", "event_at"}, pgx.CopyFromRows(rows)); err != nil {
		f.t.Fatal(err)
	}
	return ds
}

// createAppCampaign stores a campaign of app with a notification object.
func (f *fixture) createAppCampaign(id, app, notification string) {
	f.t.Helper()
	_, err := f.db.Exec(f.ctx, `INSERT INTO campaigns (id, app, channels, category, title, body, data, ttl_seconds, state, notification)
		VALUES ($1, $2, '{news}', '', 'Hello', 'World', '{}', 3600, 'running', $3)`, id, app, notification)
	if err != nil {
		f.t.Fatal(err)
	}
}

// jwtIDs are the key id (header kid) and team id (claim iss) of a bearer
// provider token.
func jwtIDs(t *testing.T, authorization string) (kid, iss string) {
	t.Helper()
	parts := strings.Split(strings.TrimPrefix(authorization, "bearer "), ".")
	if len(parts) != 3 {
		t.Fatalf("authorization %q is not a bearer JWT", authorization)
	}
	var h struct{ Kid string }
	var c struct{ Iss string }
	for i, v := range []any{&h, &c} {
		b, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil || json.Unmarshal(b, v) != nil {
			t.Fatalf("JWT part %d of %q: %v", i, authorization, err)
		}
	}
	return h.Kid, c.Iss
}

// checkApp asserts that app's fake got exactly one request per device of
// app that has credentials (each app has its own endpoint), APNs ones with
// the app's topic and provider token, and nothing of another app.
func checkApp(t *testing.T, a *appUnderTest) {
	t.Helper()
	rs, err := a.fake.FullReceipts()
	if err != nil {
		t.Fatal(err)
	}
	mine := map[string]bool{}
	for _, d := range a.devices {
		mine[d.token] = true
	}
	got := map[string]int{}
	for _, r := range rs {
		if !mine[r.Token] {
			t.Fatalf("app %s's provider got token %s of another app", a.id, r.Token)
		}
		got[r.Token]++
		if r.Provider == "apns" {
			if topic := first(r.Headers, "Apns-Topic"); topic != a.topic {
				t.Fatalf("app %s: apns-topic %q, want %q", a.id, topic, a.topic)
			}
			if kid, iss := jwtIDs(t, first(r.Headers, "Authorization")); kid != a.keyID || iss != a.teamID {
				t.Fatalf("app %s: JWT kid/iss %s/%s, want %s/%s", a.id, kid, iss, a.keyID, a.teamID)
			}
		}
	}
	for _, d := range a.devices {
		want := 1
		if d.platform == push.Android && a.noFCM {
			want = 0
		}
		if got[d.token] != want {
			t.Errorf("app %s: device %s (%s) got %d requests, want %d", a.id, d.token, d.platform, got[d.token], want)
		}
	}
}

func first(h map[string][]string, k string) string {
	if v := h[k]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// Three apps in one apps file, each with its own provider endpoint and keys,
// one campaign each at once through one deliver stage: every device gets
// its own app's topic and provider token, no request crosses apps, and the
// app without FCM credentials fails its Android devices with "no
// credentials", tokens intact. Then a fourth app is added by Reload (what
// SIGHUP does) while a campaign is in flight: its campaign goes out, and
// nothing in flight is lost.
func TestAppsEachWithItsOwnCredentials(t *testing.T) {
	f := newFixture(t)
	const users = 100 // 16 in flight held for news is what the reload needs
	apps := []*appUnderTest{
		{id: "news", topic: "com.example.news", keyID: "KEYNEWS001", teamID: "TEAMNEWS01"},
		{id: "sport", topic: "com.example.sport", keyID: "KEYSPORT01", teamID: "TEAMSPORT1"},
		{id: "weather", topic: "com.example.weather", keyID: "KEYWEATHR1", teamID: "TEAMWEATH1", noFCM: true},
		{id: "games", topic: "com.example.games", keyID: "KEYGAMES01", teamID: "TEAMGAMES1"},
	}
	roots := x509.NewCertPool()
	for i, a := range apps {
		// Each provider knows its app's key only, as APNs knows a team's.
		a.fake = fakeprovider.Start(t, fakeprovider.Options{KeepRequests: true, APNsKeys: []string{a.teamID + "/" + a.keyID}})
		roots.AppendCertsFromPEM(a.fake.CertPEM())
		a.devices = f.insertAppDevices(a.id, i, users)
	}
	as, err := NewAppSenders(f.ctx, writeApps(t, apps[:3]...), SenderOptions{RootCAs: roots}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(as.Close)
	for _, a := range apps {
		f.createAppCampaign("c-"+a.id, a.id, `{"title":"for `+a.id+`","priority":"high"}`)
	}
	for _, a := range apps[:3] {
		f.emitUsers("c-"+a.id, userRange(users))
	}
	// The first app's provider holds its requests unanswered, so its
	// campaign is in flight when the fourth app is added.
	release := apps[0].fake.Hold()
	defer release()
	f.startStage(Config{Senders: as.Senders(), TPS: 0, InFlight: 16, RetryBase: 20 * time.Millisecond}, "d1", 30*time.Second)
	pipelinetest.Eventually(t, 30*time.Second, "news's sends in flight", func() bool { return apps[0].fake.Held() > 0 })
	if err := as.Reload(f.ctx, writeApps(t, apps...)); err != nil {
		t.Fatal(err)
	}
	if s := f.stats("c-news"); s[pipeline.StatUsersDone] >= users {
		t.Fatalf("news done (%v) with its sends held", s)
	}
	release()
	f.emitUsers("c-games", userRange(users))

	for _, a := range apps {
		s := f.waitDone("c-"+a.id, users, 90*time.Second)
		wantFailed := int64(0)
		if a.noFCM {
			wantFailed = users
		}
		if s[pipeline.StatSent] != int64(len(a.devices))-wantFailed || s[pipeline.StatFailed] != wantFailed {
			t.Errorf("app %s: counters %v, want %d sent and %d failed", a.id, s, int64(len(a.devices))-wantFailed, wantFailed)
		}
		checkApp(t, a)
		if d := a.fake.Summary().Duplicates; d != 0 {
			t.Errorf("app %s: %d duplicates", a.id, d)
		}
	}
	if inv := f.invalidations(); len(inv) != 0 {
		t.Errorf("%d tokens invalidated, want none", len(inv))
	}
	var kept int
	if err := f.db.QueryRow(f.ctx, `SELECT count(*) FROM devices WHERE app = 'weather' AND platform = $1 AND state = 0`,
		int16(devices.Android)).Scan(&kept); err != nil || kept != users {
		t.Errorf("weather's Android tokens still valid: %d (%v), want %d", kept, err, users)
	}
	if n := f.pendingEntries(); n != 0 {
		t.Errorf("%d deliver entries still pending", n)
	}
}

// An app removed by Reload gets no new sends: its devices fail with "no
// credentials"; a file that does not build changes nothing.
func TestAppsReloadRemovesAndKeeps(t *testing.T) {
	fake := fakeprovider.Start(t, fakeprovider.Options{})
	a := &appUnderTest{id: "news", topic: "com.example.news", keyID: "KEYNEWS001", teamID: "TEAMNEWS01", fake: fake}
	b := &appUnderTest{id: "sport", topic: "com.example.sport", keyID: "KEYSPORT01", teamID: "TEAMSPORT1", fake: fake}
	as, err := NewAppSenders(t.Context(), writeApps(t, a, b), SenderOptions{RootCAs: fake.CertPool()}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(as.Close)
	ios := as.Senders()[push.IOS]
	send := func(app string) push.Result {
		return ios.Send(t.Context(), push.Notification{App: app, Token: fmt.Sprintf("%064x", 1), Title: "t"})
	}
	if r := send("sport"); r.Outcome != push.Sent {
		t.Fatalf("sport before reload: %+v", r)
	}
	if err := as.Reload(t.Context(), writeApps(t, a)); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		app  string
		want push.Outcome
	}{{"news", push.Sent}, {"sport", push.Failed}, {"unknown", push.Failed}}
	for _, tt := range tests {
		if r := send(tt.app); r.Outcome != tt.want || (tt.want == push.Failed && r.Reason != ReasonNoCredentials) {
			t.Errorf("app %s after reload: %+v, want %v", tt.app, r, tt.want)
		}
	}
	broken := Apps{Apps: map[string]App{"news": {APNS: &AppAPNS{Key: "/nonexistent.p8", KeyID: "K", TeamID: "T"}}}}
	if err := as.Reload(t.Context(), broken); err == nil {
		t.Fatal("reload with a missing key file succeeded")
	}
	if r := send("news"); r.Outcome != push.Sent {
		t.Errorf("news after a failed reload: %+v", r)
	}
}

// The apps file: each mistake named by app and field, never a secret.
func TestLoadApps(t *testing.T) {
	t.Setenv("PP_TEST_KEYS", "k1-0123456789abcdef, k2-0123456789abcdef")
	tests := []struct{ name, give, want string }{
		{"ok", `[apps."com.a"]
apns = { key = "/k.p8", key_id = "K", team_id = "T", topic = "com.a" }
fcm = { project = "p" }
tps = 100
keys_env = "PP_TEST_KEYS"`, ""},
		{"no apps", ``, "no app"},
		{"unknown key", `[apps.a]
apns = { key = "/k.p8", key_id = "K", team_id = "T", tpoic = "x" }`, "unknown key apps.a.apns.tpoic"},
		{"key and cert", `[apps.a]
apns = { key = "/k.p8", key_id = "K", team_id = "T", cert = "/c.p12" }`, `app "a": apns takes key or cert`},
		{"no key id", `[apps.a]
apns = { key = "/k.p8" }`, `app "a": apns token auth needs key_id and team_id`},
		{"fcm empty", `[apps.a]
fcm = { endpoint = "https://x" }`, `app "a": fcm needs credentials`},
		{"negative tps", `[apps.a]
tps = -1`, `app "a": tps must not be negative`},
		{"wrong type", `[apps.a]
tps = "many"`, "line 2: apps.a.tps has the wrong type; see the --apps example"},
		{"wrong type, secret", `[apps.a]
fcm = { project = "p" }
keys = "s3cr3t-app-key-value"`, "line 3: apps.a.keys has the wrong type"},
		{"syntax, secret not quoted", `[apps.a]
keys = ["s3cr3t-app-key-value"`, "not valid TOML at line 2, in apps.a.keys; correct it"},
		// An app given twice was "not valid TOML at line 4" and nothing
		// more.
		{"app twice", `[apps."com.a"]
fcm = { project = "p" }
[apps."com.a"]
tps = 1`, `line 3: apps."com.a" is given twice (an app's table, or a field of it); keep one`},
		{"field twice", `[apps.a]
keys = ["s3cr3t-app-key-value"]
keys = ["s3cr3t-app-key-value"]`, "line 3: apps.a.keys is given twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "apps.toml")
			if err := os.WriteFile(path, []byte(tt.give), 0o600); err != nil {
				t.Fatal(err)
			}
			apps, err := LoadApps(path)
			switch {
			case tt.want == "" && err != nil:
				t.Fatal(err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("err %v, want %q", err, tt.want)
			case err != nil && strings.Contains(err.Error(), "s3cr3t"):
				t.Fatalf("error quotes a secret: %v", err)
			}
			if tt.want == "" {
				keys, err := apps.AppKeys()
				if err != nil || len(keys["com.a"]) != 2 || !apps.Known("com.a") || apps.Known("com.b") {
					t.Errorf("keys %v (%v), known %v", keys, err, apps.Known("com.a"))
				}
			}
		})
	}
}

// Each process reads the variables of its own part of the apps file, and
// only those: the API the app keys of keys_env, deliver the APNs
// certificate's password_env. LoadApps, which both call, read both, so a
// deliver process refused to start without app keys it never uses, and the
// API without the certificate's password: each had to hold the other's
// secrets.
func TestAppsFileEnvOfEachProcess(t *testing.T) {
	path := filepath.Join(t.TempDir(), "apps.toml")
	if err := os.WriteFile(path, []byte(`[apps.a]
apns = { cert = "/nonexistent.p12", password_env = "PP_TEST_UNSET_PASSWORD" }
keys_env = "PP_TEST_UNSET_KEYS"
`), 0o600); err != nil {
		t.Fatal(err)
	}
	apps, err := LoadApps(path)
	if err != nil {
		t.Fatalf("LoadApps, which both processes call, read a variable of one of them: %v", err)
	}
	tests := []struct {
		name string
		use  func() error
		want string
	}{
		{"api", func() error { _, err := apps.AppKeys(); return err },
			`app "a": keys_env names PP_TEST_UNSET_KEYS, which is not set in the API's environment`},
		{"deliver", func() error {
			as, err := NewAppSenders(t.Context(), apps, SenderOptions{}, zerolog.Nop())
			if err == nil {
				as.Close()
			}
			return err
		}, `app "a": apns password_env names PP_TEST_UNSET_PASSWORD, which is not set in deliver's environment`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.use(); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err %v, want %q", err, tt.want)
			}
		})
	}
}

// An app's own tps (the apps file's) caps its sends below the process's
// --tps; another app keeps the process's cap.
func TestLimiterAppTPS(t *testing.T) {
	f := newFixture(t)
	l := testLimiter(f, 2000)
	l.appTPS = func(app string) int { return map[string]int{"slow": 40}[app] }
	const run = 1500 * time.Millisecond
	counts := map[string]int{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	ctx, cancel := context.WithTimeout(f.ctx, run)
	defer cancel()
	for _, app := range []string{"slow", "fast"} {
		for range 4 {
			wg.Go(func() {
				for l.wait(ctx, "apns", app) == nil {
					l.done(ctx, l.begin("apns", app), "apns", app, push.Result{Outcome: push.Sent, Status: http.StatusOK})
					mu.Lock()
					counts[app]++
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	// 1.5 s at 40/s is 60, and a chunk of 1 ahead: never 100.
	if counts["slow"] > 80 || counts["slow"] == 0 {
		t.Errorf("slow app: %d permits in %v at tps 40", counts["slow"], run)
	}
	if counts["fast"] < 4*counts["slow"] {
		t.Errorf("fast app: %d permits, slow %d: the app cap leaked to the other app", counts["fast"], counts["slow"])
	}
	t.Logf("permits in %v: %v", run, counts)
}

// An app's own tps caps its sends over both lanes: its messages and
// high-priority campaigns (express) and its bulk campaigns together stay
// under it, and so they do with no cap of the process's (--tps 0). It
// capped the bulk lane alone, so an app of tps 50 sending on both got the
// express lane's share of --tps on top (400/s here); and --tps 0 turned
// every app's cap off with it.
func TestAppTPSCoversBothLanes(t *testing.T) {
	f := newFixture(t)
	const appTPS, run = 50, 2 * time.Second
	tests := []struct {
		name string
		tps  int // the process's --tps
	}{{"under --tps 2000", 2000}, {"under --tps 0", 0}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := New(Config{Redis: f.rdb, DB: f.db, Keys: f.keys, Senders: map[push.Platform]push.Sender{push.IOS: &NullSender{}},
				TPS: tt.tps, AppTPS: func(string) int { return appTPS }, Log: zerolog.Nop()})
			if err != nil {
				t.Fatal(err)
			}
			app := "app-" + strconv.Itoa(tt.tps) // a schedule of its own in Redis
			lanes := map[string]*limiter{"bulk": h.limiter, "express": h.express.limiter}
			counts := map[string]int{}
			var mu sync.Mutex
			var wg sync.WaitGroup
			ctx, cancel := context.WithTimeout(f.ctx, run)
			defer cancel()
			for lane, l := range lanes {
				for range 4 {
					wg.Go(func() {
						// (An uncapped wait returns at once, ctx done or not.)
						for ctx.Err() == nil && l.wait(ctx, "apns", app) == nil {
							l.done(ctx, l.begin("apns", app), "apns", app, push.Result{Outcome: push.Sent, Status: http.StatusOK})
							mu.Lock()
							counts[lane]++
							mu.Unlock()
						}
					})
				}
			}
			wg.Wait()
			t.Logf("permits in %v: %v", run, counts)
			// 2 s at 50/s is 100, and each lane's chunk ahead: never 150.
			if total := counts["bulk"] + counts["express"]; total > 150 {
				t.Errorf("%d permits in %v for an app of tps %d (%v): over its cap", total, run, appTPS, counts)
			}
			for lane := range lanes {
				if counts[lane] == 0 {
					t.Errorf("the %s lane got no permit", lane)
				}
			}
		})
	}
}

// The single-app provider flags with credentials for one platform only
// (--fcm-project alone): the flags' app has no credentials for the other,
// and its devices there fail with "no credentials", tokens kept, as an
// apps file's app without them do. They failed "no sender for platform".
func TestSingleAppFlagsOnePlatform(t *testing.T) {
	tests := []struct {
		name    string
		senders map[push.Platform]push.Sender
		want    map[string]int64 // reasons of the campaign's failures
	}{
		{"FCM only", map[push.Platform]push.Sender{push.Android: &NullSender{}}, map[string]int64{"apns " + ReasonNoCredentials: 0}},
		{"APNs only", map[push.Platform]push.Sender{push.IOS: &NullSender{}}, map[string]int64{"fcm " + ReasonNoCredentials: 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			const users = 40
			f := newFixture(t)
			ds := f.seedDevices(users, true)
			for reason := range tt.want {
				platform := push.IOS
				if strings.HasPrefix(reason, "fcm") {
					platform = push.Android
				}
				for _, d := range ds {
					if d.platform == platform {
						tt.want[reason]++
					}
				}
			}
			f.createCampaign("one", `{}`)
			f.emitUsers("one", userRange(users))
			f.startStage(Config{Senders: OnlyApp(testApp, tt.senders), TPS: 0}, "d1", 30*time.Second)
			f.waitDone("one", users, 60*time.Second)
			reasons, err := camp.Reasons(f.ctx, f.rdb, f.keys, "one")
			if err != nil {
				t.Fatal(err)
			}
			if !maps.Equal(reasons, tt.want) {
				t.Errorf("reasons %v, want %v", reasons, tt.want)
			}
			if inv := f.invalidations(); len(inv) != 0 {
				t.Errorf("%d tokens invalidated, want none", len(inv))
			}
		})
	}
}

// signedBy reports whether the bearer JWT of an APNs request's
// authorization header is signed (ES256) by the private key of p8.
func signedBy(t *testing.T, authorization, p8 string) bool {
	t.Helper()
	b, err := os.ReadFile(p8)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(b)
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	pub := &key.(*ecdsa.PrivateKey).PublicKey
	tok := strings.TrimPrefix(authorization, "bearer ")
	i := strings.LastIndexByte(tok, '.')
	sig, err := base64.RawURLEncoding.DecodeString(tok[i+1:])
	if err != nil || len(sig) != 64 {
		t.Fatalf("JWT signature of %q: %v", authorization, err)
	}
	digest := sha256.Sum256([]byte(tok[:i]))
	return ecdsa.Verify(pub, digest[:], new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:]))
}

// A key file replaced in place (a rotated key, a renewed certificate: a
// mounted secret keeps its path) is a change SIGHUP applies: the next send
// is signed with the new key. Compared by the file's entry alone, the old
// key stayed in use until it was revoked. An unchanged file keeps the
// app's sender and its connections; one replaced by something that is no
// key is refused, and the running key stays.
func TestAppsReloadReadsReplacedKeyFile(t *testing.T) {
	fake := fakeprovider.Start(t, fakeprovider.Options{KeepRequests: true})
	a := &appUnderTest{id: "news", topic: "com.example.news", keyID: "KEYNEWS001", teamID: "TEAMNEWS01", fake: fake, noFCM: true}
	path := filepath.Join(t.TempDir(), "apps.toml")
	p8 := filepath.Join(t.TempDir(), "AuthKey_KEYNEWS001.p8")
	replace := func(from string) {
		b, err := os.ReadFile(from)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p8, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	key1, key2 := fakeprovider.WriteP8(t), fakeprovider.WriteP8(t)
	replace(key1)
	entry := fmt.Sprintf("[apps.news]\napns = { key = %q, key_id = %q, team_id = %q, topic = %q, host = %q }\n",
		p8, a.keyID, a.teamID, a.topic, fake.URL())
	if err := os.WriteFile(path, []byte(entry), 0o600); err != nil {
		t.Fatal(err)
	}
	apps, err := LoadApps(path)
	if err != nil {
		t.Fatal(err)
	}
	as, err := NewAppSenders(t.Context(), apps, SenderOptions{RootCAs: fake.CertPool()}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(as.Close)
	sent := 0
	// send sends once and returns the authorization header it carried.
	send := func() string {
		t.Helper()
		if r := as.Senders()[push.IOS].Send(t.Context(), push.Notification{App: "news", Token: fmt.Sprintf("%064x", sent+1), Title: "t"}); r.Outcome != push.Sent {
			t.Fatalf("send: %+v", r)
		}
		sent++
		rs, err := fake.FullReceipts()
		if err != nil || len(rs) != sent {
			t.Fatalf("%d receipts (%v), want %d", len(rs), err, sent)
		}
		return first(rs[sent-1].Headers, "Authorization")
	}
	tests := []struct {
		name    string
		file    string // what p8 holds now
		wantErr bool
		signer  string // whose key signs the next send
		kept    bool   // the app's sender is the one it had
	}{
		{"unchanged", key1, false, key1, true},
		{"replaced by another key", key2, false, key2, false},
		{"replaced by no key", path, true, key2, true},
	}
	if !signedBy(t, send(), key1) {
		t.Fatal("the first send is not signed by the key file")
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := (*as.cur.Load())["news"]
			replace(tt.file)
			err := as.Reload(t.Context(), apps)
			if (err != nil) != tt.wantErr {
				t.Fatalf("reload: %v, want an error: %v", err, tt.wantErr)
			}
			if kept := (*as.cur.Load())["news"] == before; kept != tt.kept {
				t.Errorf("sender kept: %v, want %v", kept, tt.kept)
			}
			if !signedBy(t, send(), tt.signer) {
				t.Errorf("the send after the reload is not signed by the key file's %s", tt.name)
			}
		})
	}
}

// Devices of a platform their app has no credentials for fail at once, not
// at the pace of the rate caps: they took a permit of the provider's cap
// and of the campaign's each before failing, so an app without FCM
// failed its Android devices at --tps (here 20 a second: 10 s), and a
// capped campaign's took hours.
func TestNoCredentialsFailAtOnce(t *testing.T) {
	const users, tps = 200, 20
	tests := []struct {
		name    string
		senders func(t *testing.T, f *fixture) map[push.Platform]push.Sender
	}{
		{"single-app flags, APNs only", func(*testing.T, *fixture) map[push.Platform]push.Sender {
			return OnlyApp(testApp, map[push.Platform]push.Sender{push.IOS: &NullSender{}})
		}},
		{"apps file, app without fcm", func(t *testing.T, f *fixture) map[push.Platform]push.Sender {
			fake := fakeprovider.Start(t, fakeprovider.Options{})
			a := &appUnderTest{id: testApp, topic: testApp, keyID: "KEYNEWS001", teamID: "TEAMNEWS01", fake: fake, noFCM: true}
			as, err := NewAppSenders(f.ctx, writeApps(t, a), SenderOptions{RootCAs: fake.CertPool()}, zerolog.Nop())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(as.Close)
			return as.Senders()
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			f.seedPlatforms(users, func(int64, int) push.Platform { return push.Android })
			f.createCampaign("nocred", `{}`)
			start := time.Now()
			f.emitUsers("nocred", userRange(users))
			f.startStage(Config{Senders: tt.senders(t, f), TPS: tps}, "d1", 30*time.Second)
			s := f.waitDone("nocred", users, 60*time.Second)
			took := time.Since(start)
			if s[pipeline.StatFailed] == 0 || s[pipeline.StatSent] != 0 {
				t.Fatalf("counters %v, want every device failed", s)
			}
			// The decision, not the time it took (users×8/7 devices at
			// tps take over 10 s, at once under 4 s on an idle box but
			// not on a loaded one): no permit of the provider's cap was
			// taken, so its schedule was never written.
			permits := f.keys.RateLimit(pipeline.Bulk.Stream(providerOf(push.Android)), testApp)
			if n, err := f.rdb.Do(f.ctx, f.rdb.B().Exists().Key(permits).Build()).AsInt64(); err != nil {
				t.Fatal(err)
			} else if n != 0 {
				t.Errorf("%d devices without credentials took permits of the %d/s cap (%s: tat %v) to fail, in %v",
					s[pipeline.StatFailed], tps, permits, f.limitField(permits, "tat"), took)
			}
		})
	}
}
