package fakeprovider

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

func start(t *testing.T, opts Options) *Server {
	t.Helper()
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// client is an HTTP/2 client that trusts s.
func client(s *Server) *http.Client {
	return &http.Client{Transport: &http.Transport{
		ForceAttemptHTTP2: true,
		TLSClientConfig:   &tls.Config{RootCAs: s.CertPool()},
	}}
}

type answer struct {
	status int
	header http.Header
	body   string
}

func do(t *testing.T, c *http.Client, method, url string, header map[string]string, body string) answer {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.ProtoMajor != 2 {
		t.Fatalf("%s %s spoke %s, want HTTP/2", method, url, resp.Proto)
	}
	b, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, resp.Header, string(b)}
}

func apnsHeaders(collapse string) map[string]string {
	return map[string]string{"authorization": "bearer aaa.bbb.ccc", "apns-topic": "com.example.app", "apns-collapse-id": collapse}
}

const alert = `{"aps":{"alert":{"title":"t","body":"b"}}}`

func fcmBody(token, collapse string) string {
	return `{"message":{"token":"` + token + `","notification":{"title":"t","body":"b"},"android":{"collapse_key":"` + collapse + `"}}}`
}

func TestReceiptsCountDuplicatesPerTokenAndCollapseID(t *testing.T) {
	s := start(t, Options{})
	c := client(s)
	for _, send := range []struct{ token, collapse string }{
		{"aa01", "c1"}, {"aa02", "c1"}, {"aa01", "c1"}, {"aa01", "c2"},
	} {
		if a := do(t, c, "POST", s.URL()+"/3/device/"+send.token, apnsHeaders(send.collapse), alert); a.status != 200 || a.header.Get("apns-id") == "" {
			t.Fatalf("APNs send: %+v, want 200 with an apns-id", a)
		}
	}
	if a := do(t, c, "POST", s.URL()+"/v1/projects/p/messages:send", nil, fcmBody("fcm-1", "c1")); a.status != 200 || !strings.Contains(a.body, `"name":"projects/p/messages/`) {
		t.Fatalf("FCM send: %+v", a)
	}

	var sum Summary
	if err := json.Unmarshal([]byte(do(t, c, "GET", s.URL()+"/_receipts/summary", nil, "").body), &sum); err != nil {
		t.Fatal(err)
	}
	want := Summary{Requests: 5, Accepted: 5, Unique: 4, Duplicates: 1, PeakRPS: sum.PeakRPS, Connections: 1,
		ByCollapseID: map[string]uint64{"c1": 4, "c2": 1}}
	if !equalSummary(sum, want) {
		t.Errorf("summary = %+v, want %+v", sum, want)
	}

	lines := strings.Split(strings.TrimSpace(do(t, c, "GET", s.URL()+"/_receipts", nil, "").body), "\n")
	if len(lines) != 5 {
		t.Fatalf("%d NDJSON lines, want 5", len(lines))
	}
	var last Receipt
	if err := json.Unmarshal([]byte(lines[4]), &last); err != nil {
		t.Fatal(err)
	}
	if last.Provider != "fcm" || last.Token != "fcm-1" || last.CollapseID != "c1" || time.Since(time.UnixMilli(last.AtMs)) > time.Minute {
		t.Errorf("last receipt = %+v", last)
	}
	if got := s.Receipts(); len(got) != 5 || !reflect.DeepEqual(got[4], last) {
		t.Errorf("Receipts() = %+v, want the NDJSON lines", got)
	}
}

func TestFullReceiptsCarryHeadersAndBody(t *testing.T) {
	s := start(t, Options{KeepRequests: true})
	c := client(s)
	if a := do(t, c, "POST", s.URL()+"/3/device/aa01", apnsHeaders("c1"), alert); a.status != 200 {
		t.Fatalf("APNs send: %+v", a)
	}
	body := fcmBody("fcm-1", "c2")
	if a := do(t, c, "POST", s.URL()+"/v1/projects/p/messages:send", map[string]string{"Authorization": "Bearer x"}, body); a.status != 200 {
		t.Fatalf("FCM send: %+v", a)
	}

	var full []Receipt
	dec := json.NewDecoder(strings.NewReader(do(t, c, "GET", s.URL()+"/_receipts?full=1", nil, "").body))
	for dec.More() {
		var r Receipt
		if err := dec.Decode(&r); err != nil {
			t.Fatal(err)
		}
		full = append(full, r)
	}
	tests := []struct {
		name       string
		give       Receipt
		wantHeader [2]string
		wantBody   string
	}{
		{"apns", full[0], [2]string{"Apns-Collapse-Id", "c1"}, alert},
		{"fcm", full[1], [2]string{"Authorization", "Bearer x"}, body},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.give.Headers[tt.wantHeader[0]]; len(got) != 1 || got[0] != tt.wantHeader[1] {
				t.Errorf("header %s = %q, want %q", tt.wantHeader[0], got, tt.wantHeader[1])
			}
			if tt.give.Body != tt.wantBody {
				t.Errorf("body %q, want %q", tt.give.Body, tt.wantBody)
			}
		})
	}
	if got, err := s.FullReceipts(); err != nil || !reflect.DeepEqual(got, full) {
		t.Errorf("FullReceipts() = %+v, %v; want the NDJSON lines", got, err)
	}
	// Without full=1 the lines keep their usual shape.
	plain := do(t, c, "GET", s.URL()+"/_receipts", nil, "").body
	if strings.Contains(plain, "headers") || strings.Contains(plain, "body") {
		t.Errorf("plain receipts carry the request: %s", plain)
	}
}

func TestFullReceiptsNeedKeptRequests(t *testing.T) {
	s := start(t, Options{})
	if a := do(t, client(s), "GET", s.URL()+"/_receipts?full=1", nil, ""); a.status != 400 || !strings.Contains(a.body, "--keep-requests") {
		t.Errorf("full receipts of a fake that keeps no requests: %+v, want 400", a)
	}
	if _, err := s.FullReceipts(); err == nil {
		t.Error("FullReceipts of a fake that keeps no requests returned no error")
	}
}

func equalSummary(a, b Summary) bool {
	ab, _ := json.Marshal(a)
	bb, _ := json.Marshal(b)
	return bytes.Equal(ab, bb)
}

func TestAPNsRefusesWhatAPNsRefuses(t *testing.T) {
	s := start(t, Options{})
	c := client(s)
	good := apnsHeaders("")
	with := func(k, v string) map[string]string {
		h := map[string]string{}
		for k, v := range good {
			h[k] = v
		}
		if v == "" {
			delete(h, k)
		} else {
			h[k] = v
		}
		return h
	}
	tests := []struct {
		name   string
		header map[string]string
		body   string
		status int
		reason string
	}{
		{"no credentials", with("authorization", ""), alert, 403, "MissingProviderToken"},
		{"not a JWT", with("authorization", "bearer nope"), alert, 403, "InvalidProviderToken"},
		{"no topic", with("apns-topic", ""), alert, 400, "MissingTopic"},
		{"long collapse id", with("apns-collapse-id", strings.Repeat("x", 65)), alert, 400, "BadCollapseId"},
		{"bad priority", with("apns-priority", "7"), alert, 400, "BadPriority"},
		{"empty payload", good, "", 400, "PayloadEmpty"},
		{"not JSON", good, "{", 400, "PayloadEmpty"},
		{"too large", good, `{"a":"` + strings.Repeat("x", 4100) + `"}`, 413, "PayloadTooLarge"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := do(t, c, "POST", s.URL()+"/3/device/aa01", tt.header, tt.body)
			var body struct{ Reason string }
			json.Unmarshal([]byte(a.body), &body)
			if a.status != tt.status || body.Reason != tt.reason {
				t.Errorf("answer %d %s, want %d %s", a.status, a.body, tt.status, tt.reason)
			}
		})
	}
	if sum := s.Summary(); sum.Accepted != 0 || sum.Errors != uint64(len(tests)) {
		t.Errorf("summary %+v, want nothing accepted and %d errors", sum, len(tests))
	}
}

func TestTokenFatesAreDeterministic(t *testing.T) {
	s := start(t, Options{UnregisteredRate: 0.2, BadTokenRate: 0.1})
	var unreg, bad int
	const n = 20000
	for i := range n {
		switch s.fate(strings.Repeat("ab", 16) + string(rune('a'+i%26)) + itoa(i)) {
		case fateUnregistered:
			unreg++
		case fateBadToken:
			bad++
		}
	}
	if unreg < n*18/100 || unreg > n*22/100 || bad < n*8/100 || bad > n*12/100 {
		t.Errorf("%d unregistered and %d bad of %d tokens, want about 20%% and 10%%", unreg, bad, n)
	}

	// Find one token of each fate and check both providers answer it the
	// same way every time.
	c := client(s)
	var tokUnreg, tokBad string
	for i := 0; tokUnreg == "" || tokBad == ""; i++ {
		tok := "ab" + itoa(i)
		switch s.fate(tok) {
		case fateUnregistered:
			tokUnreg = tok
		case fateBadToken:
			tokBad = tok
		}
	}
	for range 2 {
		a := do(t, c, "POST", s.URL()+"/3/device/"+tokUnreg, apnsHeaders(""), alert)
		var body struct {
			Reason    string
			Timestamp int64
		}
		json.Unmarshal([]byte(a.body), &body)
		if a.status != 410 || body.Reason != "Unregistered" || time.Since(time.UnixMilli(body.Timestamp)) > time.Minute {
			t.Errorf("APNs unregistered token: %d %s", a.status, a.body)
		}
		if a := do(t, c, "POST", s.URL()+"/3/device/"+tokBad, apnsHeaders(""), alert); a.status != 400 || !strings.Contains(a.body, "BadDeviceToken") {
			t.Errorf("APNs bad token: %d %s", a.status, a.body)
		}
		if a := do(t, c, "POST", s.URL()+"/v1/projects/p/messages:send", nil, fcmBody(tokUnreg, "")); a.status != 404 || !strings.Contains(a.body, `"errorCode":"UNREGISTERED"`) {
			t.Errorf("FCM unregistered token: %d %s", a.status, a.body)
		}
		if a := do(t, c, "POST", s.URL()+"/v1/projects/p/messages:send", nil, fcmBody(tokBad, "")); a.status != 400 || !strings.Contains(a.body, `"field":"message.token"`) {
			t.Errorf("FCM bad token: %d %s", a.status, a.body)
		}
	}
	if sum := s.Summary(); sum.Unregistered != 4 || sum.BadToken != 4 {
		t.Errorf("summary %+v, want 4 unregistered and 4 bad tokens", sum)
	}
}

func TestPeakCountsUnixSeconds(t *testing.T) {
	var w window
	base := time.Unix(1_700_000_000, 0)
	for i := range 5 {
		w.arrive(base.Add(time.Duration(i) * 100 * time.Millisecond))
	}
	w.arrive(base.Add(time.Second))
	if w.peakPerSecond() != 5 {
		t.Errorf("peak %d, want 5", w.peakPerSecond())
	}
}

func TestOverTPSIsRefusedAndCounted(t *testing.T) {
	const tps = 20
	s := start(t, Options{TPS: tps})
	c := client(s)
	const sends = 100
	var mu sync.Mutex
	counts := map[int]int{}
	var wg sync.WaitGroup
	for i := range sends {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a := do(t, c, "POST", s.URL()+"/v1/projects/p/messages:send", nil, fcmBody("tok"+itoa(i), ""))
			mu.Lock()
			counts[a.status]++
			mu.Unlock()
			if a.status == 429 && (a.header.Get("Retry-After") != "1" || !strings.Contains(a.body, "QUOTA_EXCEEDED")) {
				t.Errorf("429 answer: %v %s", a.header, a.body)
			}
		}()
	}
	wg.Wait()
	sum := s.Summary()
	if counts[200]+counts[429] != sends || uint64(counts[429]) != sum.RejectedOverTPS || counts[429] == 0 {
		t.Fatalf("answers %v, summary %+v", counts, sum)
	}
	// No one-second window, whatever its phase, may hold more than tps
	// accepted requests (a receipt's time is its admission's; handlers
	// may record them out of that order).
	rs := s.Receipts()
	slices.SortFunc(rs, func(a, b Receipt) int { return cmp.Compare(a.AtMs, b.AtMs) })
	for i := tps; i < len(rs); i++ {
		if d := rs[i].AtMs - rs[i-tps].AtMs; d < 1000 {
			t.Errorf("%d requests accepted within %d ms, over the limit %d", tps+1, d, tps)
		}
	}
}

// An outage answers 503 to everything until it ends: after --outage, or
// when POST /_outage?for=0 ends it (drills end it when they are ready, not
// on a timer a loaded machine can overrun).
func TestOutageThenRecovery(t *testing.T) {
	s := start(t, Options{Outage: time.Hour, TPS: 1})
	c := client(s)
	for range 3 { // over TPS, but an outage answers 503 to everything
		if a := do(t, c, "POST", s.URL()+"/3/device/aa01", apnsHeaders(""), alert); a.status != 503 {
			t.Fatalf("during outage: %+v, want 503", a)
		}
	}
	a := do(t, c, "POST", s.URL()+"/3/device/aa01", apnsHeaders(""), alert)
	if ra, err := strconv.Atoi(a.header.Get("Retry-After")); a.status != 503 || err != nil || ra < 1 || ra > 3600 ||
		!strings.Contains(a.body, "ServiceUnavailable") {
		t.Fatalf("during outage: %+v", a)
	}
	if a := do(t, c, "POST", s.URL()+"/v1/projects/p/messages:send", nil, fcmBody("t", "")); a.status != 503 || !strings.Contains(a.body, "UNAVAILABLE") {
		t.Fatalf("FCM during outage: %+v", a)
	}
	if a := do(t, c, "POST", s.URL()+"/_outage?for=bogus", nil, ""); a.status != 400 {
		t.Fatalf("POST /_outage?for=bogus: %+v, want 400", a)
	}
	if a := do(t, c, "POST", s.URL()+"/_outage?for=0s", nil, ""); a.status != 200 {
		t.Fatalf("POST /_outage?for=0s: %+v", a)
	}
	if a := do(t, c, "POST", s.URL()+"/3/device/aa01", apnsHeaders(""), alert); a.status != 200 {
		t.Fatalf("after outage: %+v", a)
	}
	if sum := s.Summary(); sum.RejectedOverTPS != 0 || sum.Errors != 5 || sum.Accepted != 1 {
		t.Errorf("summary %+v, want 5 errors, 1 accepted, none over TPS", sum)
	}
}

func TestErrorRateAnswers5xx(t *testing.T) {
	s := start(t, Options{ErrorRate: 1})
	c := client(s)
	seen := map[int]bool{}
	for i := range 40 {
		a := do(t, c, "POST", s.URL()+"/3/device/aa"+itoa(i), apnsHeaders(""), alert)
		if a.status != 500 && a.status != 503 {
			t.Fatalf("answer %d, want 500 or 503", a.status)
		}
		seen[a.status] = true
	}
	if !seen[500] || !seen[503] {
		t.Errorf("saw %v, want both 500 and 503", seen)
	}
}

func TestFCMRefusesWhatFCMRefuses(t *testing.T) {
	s := start(t, Options{RequireAuth: true})
	c := client(s)
	auth := map[string]string{"Authorization": "Bearer x"}
	url := s.URL() + "/v1/projects/p/messages:send"
	tests := []struct {
		name   string
		header map[string]string
		body   string
		status int
		want   string
	}{
		{"no bearer", nil, fcmBody("t", ""), 401, "UNAUTHENTICATED"},
		{"not JSON", auth, "{", 400, "google.rpc.BadRequest"},
		{"no recipient", auth, `{"message":{}}`, 400, "Recipient of the message is not set"},
		{"reserved data key", auth, `{"message":{"token":"t","data":{"google.x":"1"}}}`, 400, `"field":"message.data"`},
		{"too big", auth, `{"message":{"token":"t","data":{"k":"` + strings.Repeat("x", 4100) + `"}}}`, 400, "Message is too big"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if a := do(t, c, "POST", url, tt.header, tt.body); a.status != tt.status || !strings.Contains(a.body, tt.want) {
				t.Errorf("answer %d %s, want %d with %q", a.status, a.body, tt.status, tt.want)
			}
		})
	}
	// validate_only is answered but not delivered.
	if a := do(t, c, "POST", url, auth, `{"validate_only":true,"message":{"token":"t"}}`); a.status != 200 {
		t.Errorf("validate_only: %+v", a)
	}
	if n := s.Summary().Accepted; n != 0 {
		t.Errorf("accepted %d, want 0", n)
	}
}

func TestForceStatus(t *testing.T) {
	s := start(t, Options{ForceStatus: func(tok string) (int, string) {
		if tok == "aa403" {
			return 403, "InvalidProviderToken"
		}
		return 0, ""
	}})
	c := client(s)
	if a := do(t, c, "POST", s.URL()+"/3/device/aa403", apnsHeaders(""), alert); a.status != 403 || !strings.Contains(a.body, "InvalidProviderToken") {
		t.Errorf("forced: %+v", a)
	}
	if a := do(t, c, "POST", s.URL()+"/3/device/aa200", apnsHeaders(""), alert); a.status != 200 {
		t.Errorf("not forced: %+v", a)
	}
}

func TestOptionsAreChecked(t *testing.T) {
	for _, o := range []Options{{ErrorRate: 2}, {UnregisteredRate: 0.7, BadTokenRate: 0.7}, {TPS: -1}, {Latency: -time.Second}, {TPS: 10, TPSWindow: "rolling"}} {
		if _, err := New(o); err == nil {
			t.Errorf("New(%+v) accepted bad options", o)
		}
	}
}

func TestRunWritesCertificateAndServesUntilCanceled(t *testing.T) {
	certFile := filepath.Join(t.TempDir(), "cert.pem")
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Options{CertOut: certFile}, pw)
		pw.Close()
	}()
	lines := bufio.NewScanner(pr)
	if !lines.Scan() {
		t.Fatal("Run printed nothing")
	}
	first := lines.Text()
	go io.Copy(io.Discard, pr)
	// "fakeprovider listening on 127.0.0.1:PORT (...)"
	addr := strings.Fields(strings.TrimPrefix(first, "fakeprovider listening on "))[0]

	pemBytes, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(pemBytes)
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if err := cert.VerifyHostname("127.0.0.1"); err != nil {
		t.Error(err)
	}
	if err := cert.VerifyHostname("localhost"); err != nil {
		t.Error(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pemBytes)
	c := &http.Client{Transport: &http.Transport{ForceAttemptHTTP2: true, TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := c.Get("https://" + addr + "/_receipts/summary")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.ProtoMajor != 2 {
		t.Fatalf("summary: %s %s", resp.Proto, resp.Status)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run returned %v after cancel", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

// With APNsKeys, only provider tokens of a listed team/key pass.
func TestAPNsKeysCheckTheJWT(t *testing.T) {
	s := start(t, Options{APNsKeys: []string{"TEAM1/KEY1"}})
	c := client(s)
	jwt := func(iss, kid string) string {
		enc := func(v string) string { return base64.RawURLEncoding.EncodeToString([]byte(v)) }
		return "bearer " + enc(`{"alg":"ES256","kid":"`+kid+`"}`) + "." + enc(`{"iss":"`+iss+`","iat":1}`) + ".sig"
	}
	tests := []struct {
		name, auth string
		status     int
	}{
		{"listed", jwt("TEAM1", "KEY1"), 200},
		{"other team", jwt("TEAM2", "KEY1"), 403},
		{"other key", jwt("TEAM1", "KEY2"), 403},
		{"unreadable", "bearer aaa.bbb.ccc", 403},
	}
	for _, tt := range tests {
		h := apnsHeaders("c")
		h["authorization"] = tt.auth
		if a := do(t, c, "POST", s.URL()+"/3/device/aa01", h, alert); a.status != tt.status {
			t.Errorf("%s: answer %d %s, want %d", tt.name, a.status, a.body, tt.status)
		}
	}
}

// A fake provider started again with the same CertOut serves the
// certificate its clients already trust (they read SSL_CERT_FILE once);
// without the key beside it, a fresh one, which they do not.
func TestStartedAgainKeepsItsCertificate(t *testing.T) {
	tests := []struct {
		name      string
		removeKey bool
		wantTrust bool
	}{
		{"same cert-out", false, true},
		{"its key gone", true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			certFile := filepath.Join(t.TempDir(), "cert.pem")
			first := start(t, Options{CertOut: certFile})
			pemBytes, err := os.ReadFile(certFile)
			if err != nil {
				t.Fatal(err)
			}
			pool := x509.NewCertPool()
			pool.AppendCertsFromPEM(pemBytes)
			c := &http.Client{Transport: &http.Transport{ForceAttemptHTTP2: true, TLSClientConfig: &tls.Config{RootCAs: pool}}}
			summary := func(s *Server) error {
				resp, err := c.Get(s.URL() + "/_receipts/summary")
				if err == nil {
					resp.Body.Close()
				}
				return err
			}
			if err := summary(first); err != nil {
				t.Fatal(err)
			}
			first.Close()
			if tt.removeKey {
				os.Remove(certFile + ".key")
			}
			again := start(t, Options{CertOut: certFile})
			if err := summary(again); (err == nil) != tt.wantTrust {
				t.Errorf("the client's request to the fake started again: %v; want trusted %v", err, tt.wantTrust)
			}
		})
	}
}
