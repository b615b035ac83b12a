package secrettest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// users is how many people the end-to-end run registers, each with an iOS
// and an Android device.
const users = 20

// secretSet is everything that must never be printed, by name.
type secretSet map[string]string

// addPEM adds a PEM file's key material: the whole base64 body, each of its
// lines, and the DER in one line (what a %x or %v of the bytes would show is
// covered by the hex form).
func (s secretSet) addPEM(name string, pemBytes []byte) {
	block, _ := pem.Decode(pemBytes)
	s[name+" (base64 DER)"] = base64.StdEncoding.EncodeToString(block.Bytes)
	s[name+" (hex DER)"] = fmt.Sprintf("%x", block.Bytes[len(block.Bytes)-32:])
	for i, line := range strings.Split(string(pemBytes), "\n") {
		if len(line) >= 16 && !strings.HasPrefix(line, "-----") {
			s[fmt.Sprintf("%s line %d", name, i)] = line
		}
	}
}

// writeP8 writes an APNs signing key (ECDSA P-256, PKCS#8 PEM).
func writeP8(t *testing.T, dir string, secrets secretSet) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	p := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	secrets.addPEM("APNs .p8 key", p)
	scalar, err := key.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	secrets["APNs key scalar"] = fmt.Sprintf("%x", scalar)
	path := filepath.Join(dir, "AuthKey_SECRET.p8")
	if err := os.WriteFile(path, p, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// writeServiceAccount writes a service-account JSON with a real RSA key,
// whose token endpoint is tokenURI.
func writeServiceAccount(t *testing.T, dir, name, typ, tokenURI string, secrets secretSet) string {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	p := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	secrets.addPEM(name+" private key", p)
	keyID := secret("")
	secrets[name+" private_key_id"] = keyID
	b, err := json.Marshal(map[string]string{
		"type": typ, "project_id": "secret-test", "private_key_id": keyID, "private_key": string(p),
		"client_email": "pushpipe@secret-test.iam.gserviceaccount.com", "client_id": "1234567890",
		"token_uri": tokenURI,
	})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name+".json")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// tokenEndpoint is an OAuth2 token endpoint for the service account: it
// keeps the signed assertions it gets (credentials themselves) and hands out
// an access token (a credential too).
type tokenEndpoint struct {
	srv         *httptest.Server
	accessToken string
	mu          sync.Mutex
	assertions  []string
}

func startTokenEndpoint(t *testing.T) *tokenEndpoint {
	te := &tokenEndpoint{accessToken: secret("ya29.")}
	te.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		te.mu.Lock()
		te.assertions = append(te.assertions, r.PostForm.Get("assertion"))
		te.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"access_token":%q,"token_type":"Bearer","expires_in":3600}`, te.accessToken)
	}))
	t.Cleanup(te.srv.Close)
	return te
}

func (te *tokenEndpoint) certPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: te.srv.Certificate().Raw})
}

// api is a client of the API under test.
type api struct {
	t    *testing.T
	base string
}

func (a api) do(method, path, bearer, body string) (int, string) {
	a.t.Helper()
	req, err := http.NewRequest(method, a.base+path, strings.NewReader(body))
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
	return resp.StatusCode, string(b)
}

func (a api) must(method, path, bearer, body string, status int) string {
	a.t.Helper()
	got, b := a.do(method, path, bearer, body)
	if got != status {
		a.t.Fatalf("%s %s: %d %s, want %d", method, path, got, b, status)
	}
	return b
}

// The whole pipeline runs as separate processes at debug level with real
// credentials (an APNs .p8 key, a service-account JSON with an RSA key, API
// tokens), sends a campaign to 40 devices through both providers, exercises
// the refusals (401, 403) and the broken-credential exits, and then no line
// any process printed, nor the output of `status` and `dlq list`, contains a
// secret or anything made from one (the provider JWTs, the OAuth assertion,
// the access token).
func TestNoSecretInAnyLog(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	secrets := secretSet{}
	admin, newsKey, sportKey := secret("adm-"), secret("news-"), secret("sport-")
	secrets["admin token"], secrets["news app key"], secrets["sport app key"] = admin, newsKey, sportKey

	dbURL, err := env.Postgres.NewDatabase(ctx)
	if err != nil {
		t.Fatal(err)
	}
	common := []string{
		"PUSHPIPE_REDIS_ADDR=" + env.Redis.Addr, "PUSHPIPE_DATABASE_URL=" + dbURL,
		"PUSHPIPE_PREFIX=" + secret("s")[:12], "PUSHPIPE_PARTITIONS=4", "PUSHPIPE_LOG_LEVEL=debug",
	}
	var procs, running []*proc // every process; the long-running ones
	track := func(p *proc) *proc { procs = append(procs, p); return p }
	serve := func(p *proc) *proc { running = append(running, p); return track(p) }

	if p := track(run(t, "migrate", common, "migrate")); p.err != nil {
		t.Fatalf("migrate: %v\n%s", p.err, p.out)
	}

	// Providers: the fake APNs/FCM endpoint and the service account's token
	// endpoint, both trusted through SSL_CERT_FILE.
	fakeAddr, certOut := freeAddr(t), filepath.Join(dir, "fake.pem")
	fake := serve(start(t, "fakeprovider", common, "fakeprovider", "--listen", fakeAddr, "--cert-out", certOut))
	waitFor(t, 30*time.Second, "fakeprovider", func() bool {
		_, err := os.Stat(certOut)
		return err == nil && listening(fakeAddr)()
	}, fake)
	tokens := startTokenEndpoint(t)
	fakeCert, err := os.ReadFile(certOut)
	if err != nil {
		t.Fatal(err)
	}
	bundle := filepath.Join(dir, "trust.pem")
	if err := os.WriteFile(bundle, append(fakeCert, tokens.certPEM()...), 0o600); err != nil {
		t.Fatal(err)
	}
	p8 := writeP8(t, dir, secrets)
	sa := writeServiceAccount(t, dir, "service-account", "service_account", tokens.srv.URL+"/token", secrets)
	notSA := writeServiceAccount(t, dir, "user-credentials", "authorized_user", tokens.srv.URL+"/token", secrets)

	// The API and every stage.
	listen, apiOps := freeAddr(t), freeAddr(t)
	apiEnv := append([]string{"PUSHPIPE_ADMIN_TOKEN=" + admin, "PUSHPIPE_APP_KEYS=news=" + newsKey + ",sport=" + sportKey}, common...)
	apiProc := serve(start(t, "api", apiEnv, "api", "--listen", listen, "--http", apiOps))
	waitFor(t, 30*time.Second, "api ready", ready(apiOps), apiProc)
	for _, stage := range []string{"ingest", "split", "resolve", "dedupe"} {
		ops := freeAddr(t)
		p := serve(start(t, stage, common, stage, "--http", ops))
		waitFor(t, 30*time.Second, stage+" ready", ready(ops), p)
	}
	providerFlags := func(apnsKey, fcmCreds string) []string {
		return []string{"deliver", "--apns-key", apnsKey, "--apns-key-id", "KEYID12345", "--apns-team-id", "TEAMID1234",
			"--apns-topic", "news", "--apns-host", "https://" + fakeAddr,
			"--fcm-credentials", fcmCreds, "--fcm-endpoint", "https://" + fakeAddr + "/v1"}
	}
	deliverEnv := append([]string{"SSL_CERT_FILE=" + bundle}, common...)
	deliverOps := freeAddr(t)
	deliver := serve(start(t, "deliver", deliverEnv, append(providerFlags(p8, sa), "--http", deliverOps)...))
	waitFor(t, 30*time.Second, "deliver ready", ready(deliverOps), deliver)

	// Broken credentials stop deliver at start, naming the file, never
	// printing what is in it.
	for _, bad := range []struct {
		name          string
		apnsKey, cred string
	}{
		{"deliver (service account as .p8)", sa, sa},
		{"deliver (.p8 as service account)", p8, p8},
		{"deliver (not a service account)", p8, notSA},
	} {
		p := track(run(t, bad.name, deliverEnv, providerFlags(bad.apnsKey, bad.cred)...))
		if p.err == nil {
			t.Fatalf("%s started:\n%s", bad.name, p.out)
		}
	}

	// Traffic: devices registered with the app key, subscriptions and the
	// campaign with the operator token, and refusals of both kinds.
	a := api{t: t, base: "http://" + listen}
	var batch []string
	for u := 1; u <= users; u++ {
		batch = append(batch,
			fmt.Sprintf(`{"app":"news","platform":"ios","token":"%064x","user_id":%d,"locale":"en"}`, u, u),
			fmt.Sprintf(`{"app":"news","platform":"android","token":"fcm-%d:APA91b%040d","user_id":%d}`, u, u, u))
		a.must("PUT", fmt.Sprintf("/v1/channels/breaking/subscribers/%d", u), admin, "", http.StatusNoContent)
	}
	a.must("POST", "/v1/devices/batch", newsKey, "["+strings.Join(batch, ",")+"]", http.StatusAccepted)
	a.must("POST", "/v1/devices", sportKey, `{"app":"news","platform":"ios","token":"`+strings.Repeat("ab", 32)+`","user_id":1}`, http.StatusForbidden)
	a.must("POST", "/v1/campaigns", newsKey, `{"app":"news","channels":["breaking"],"notification":{"title":"no"}}`, http.StatusForbidden)
	a.must("GET", "/v1/campaigns/x", newsKey+"x", "", http.StatusUnauthorized)
	a.must("GET", "/v1/campaigns/x", "", "", http.StatusUnauthorized)
	a.must("PUT", "/v1/users/3/preferences", admin, `{"muted_categories":["sale"]}`, http.StatusNoContent)

	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	waitFor(t, 30*time.Second, "ingest of the devices", func() bool {
		var n int
		conn.QueryRow(ctx, `SELECT count(*) FROM devices WHERE app = 'news' AND state = 0`).Scan(&n)
		return n == 2*users
	}, running...)

	var created struct{ ID string }
	json.Unmarshal([]byte(a.must("POST", "/v1/campaigns", admin,
		`{"app":"news","channels":["breaking"],"notification":{"title":"Hello","body":"secrets stay secret"}}`,
		http.StatusCreated)), &created)
	var progress struct {
		State        string
		Sent, Failed int64
	}
	waitFor(t, 60*time.Second, "the campaign to finish", func() bool {
		_, b := a.do("GET", "/v1/campaigns/"+created.ID, admin, "")
		json.Unmarshal([]byte(b), &progress)
		return progress.State == "done"
	}, running...)
	if progress.Sent != 2*users || progress.Failed != 0 {
		t.Fatalf("campaign %s: %+v, want %d sent", created.ID, progress, 2*users)
	}
	if got := fakeAccepted(t, fakeAddr, fakeCert); got != 2*users {
		t.Fatalf("the fake provider accepted %d requests, want %d", got, 2*users)
	}
	tokens.mu.Lock()
	for i, as := range tokens.assertions {
		secrets[fmt.Sprintf("OAuth assertion %d", i)] = as
	}
	fetched := len(tokens.assertions)
	tokens.mu.Unlock()
	if fetched == 0 {
		t.Fatal("deliver sent to FCM without fetching an access token with the service account")
	}
	secrets["FCM access token"] = tokens.accessToken

	// Operator tools print nothing secret either.
	for _, args := range [][]string{{"status", created.ID}, {"status", "--json", created.ID}, {"dlq", "list"}} {
		track(run(t, strings.Join(args, " "), common, args...))
	}
	for _, p := range procs {
		p.stop()
	}

	// Every line of every process, after a clean SIGTERM.
	jwt := regexp.MustCompile(`eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.`)
	lines, debug := 0, 0
	for _, p := range procs {
		for i, line := range strings.Split(p.out.String(), "\n") {
			lines++
			if strings.Contains(line, `"level":"debug"`) {
				debug++
			}
			for name, s := range secrets {
				if strings.Contains(line, s) {
					t.Errorf("%s line %d contains the %s: %s", p.name, i+1, name, line)
				}
			}
			if strings.Contains(line, "PRIVATE KEY") || jwt.MatchString(line) {
				t.Errorf("%s line %d contains key material or a signed token: %s", p.name, i+1, line)
			}
		}
	}
	t.Logf("%d processes, %d lines (%d at debug level) checked against %d secrets; %d access token fetches",
		len(procs), lines, debug, len(secrets), fetched)
	if t.Failed() || testing.Verbose() {
		for _, p := range procs {
			t.Logf("---- %s (exit %v)\n%s", p.name, p.err, p.out)
		}
	}
}

// fakeAccepted reads the fake provider's count of accepted requests.
func fakeAccepted(t *testing.T, addr string, certPEM []byte) int {
	t.Helper()
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(certPEM)
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}, Timeout: 10 * time.Second}
	resp, err := c.Get("https://" + addr + "/_receipts/summary")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var sum struct{ Accepted int }
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &sum); err != nil {
		t.Fatalf("receipts summary %q: %v", b, err)
	}
	return sum.Accepted
}
