package bench

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/pushpipe/pushpipe/bench/localserver"
	"github.com/pushpipe/pushpipe/stages/deliver"
	"github.com/pushpipe/pushpipe/stages/deliver/apns"
	"github.com/pushpipe/pushpipe/stages/deliver/fcm"
	"github.com/pushpipe/pushpipe/stages/deliver/push"
)

// FakeProvider is a `pushpipe fakeprovider` process and what deliver needs
// to reach it.
type FakeProvider struct {
	Proc     *Proc
	URL      string // https://127.0.0.1:PORT
	CertFile string
	KeyFile  string // an APNs .p8 signing key made up for the run
	client   *http.Client
}

// StartFake starts the fake provider and waits until it answers.
func StartFake(ctx context.Context, f *Fleet, dir string, extra ...string) (*FakeProvider, error) {
	port, err := localserver.FreePort()
	if err != nil {
		return nil, err
	}
	fp := &FakeProvider{
		URL:      fmt.Sprintf("https://127.0.0.1:%d", port),
		CertFile: filepath.Join(dir, "fakeprovider.pem"),
		KeyFile:  filepath.Join(dir, "apns-key.p8"),
	}
	os.Remove(fp.CertFile)
	if err := writeP8(fp.KeyFile); err != nil {
		return nil, err
	}
	args := append([]string{"--listen", fmt.Sprintf("127.0.0.1:%d", port), "--cert-out", fp.CertFile}, extra...)
	if fp.Proc, err = f.Add("fakeprovider", "fakeprovider", false, nil, args...); err != nil {
		return nil, err
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if fp.Proc.Exited() {
			return nil, fmt.Errorf("fakeprovider exited: %s", fp.Proc.LogTail(2000))
		}
		if fp.client == nil {
			fp.client, _ = fakeClient(fp.CertFile)
		}
		if fp.client != nil {
			if _, err := fp.Summary(ctx); err == nil {
				return fp, nil
			}
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("fakeprovider did not start: %s", fp.Proc.LogTail(2000))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// The made-up credentials deliver is given for the fake (it accepts any):
// one place, so that the floor's provider clients (Senders) are built from
// what deliver's are.
const (
	fakeAPNsKeyID  = "BENCHKEY01"
	fakeAPNsTeamID = "BENCHTEAM1"
	fakeFCMProject = "bench"
)

// DeliverArgs are the deliver flags that point both providers at the fake.
func (fp *FakeProvider) DeliverArgs(app string) []string {
	return []string{
		"--apns-host", fp.URL, "--apns-key", fp.KeyFile, "--apns-key-id", fakeAPNsKeyID, "--apns-team-id", fakeAPNsTeamID,
		"--apns-topic", app, "--fcm-project", fakeFCMProject, "--fcm-endpoint", fp.URL + "/v1",
	}
}

// Senders are the provider clients DeliverArgs make deliver build (its
// single-app flags: apns.New and fcm.New at their defaults, behind
// deliver.OnlyApp), in this process, trusting the fake's certificate as
// Env makes deliver do: the floor of the messages bench sends through them.
// close closes both.
func (fp *FakeProvider) Senders(ctx context.Context, app string) (senders map[push.Platform]push.Sender, close func(), err error) {
	pem, err := os.ReadFile(fp.CertFile)
	if err != nil {
		return nil, nil, fmt.Errorf("fake provider certificate: %w", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		return nil, nil, fmt.Errorf("fake provider certificate %s: no PEM certificate", fp.CertFile)
	}
	a, err := apns.New(apns.Config{KeyFile: fp.KeyFile, KeyID: fakeAPNsKeyID, TeamID: fakeAPNsTeamID, Topic: app,
		Host: fp.URL, RootCAs: roots})
	if err != nil {
		return nil, nil, fmt.Errorf("floor apns: %w", err)
	}
	f, err := fcm.New(ctx, fcm.Config{Project: fakeFCMProject, Endpoint: fp.URL + "/v1", RootCAs: roots})
	if err != nil {
		a.Close()
		return nil, nil, fmt.Errorf("floor fcm: %w", err)
	}
	return deliver.OnlyApp(app, map[push.Platform]push.Sender{push.IOS: a, push.Android: f}), func() { a.Close(); f.Close() }, nil
}

// Env makes deliver trust the fake's certificate.
func (fp *FakeProvider) Env() []string { return []string{"SSL_CERT_FILE=" + fp.CertFile} }

// FakeSummary is the part of /_receipts/summary the bench reports.
type FakeSummary struct {
	Requests        uint64 `json:"requests"`
	Accepted        uint64 `json:"accepted"`
	Unique          uint64 `json:"unique"`
	Duplicates      uint64 `json:"duplicates"`
	RejectedOverTPS uint64 `json:"rejected_over_tps"`
	Errors          uint64 `json:"errors"`
	Connections     uint64 `json:"connections"`
	PeakRPS         uint64 `json:"peak_rps"`
}

// Summary reads the fake's counters.
func (fp *FakeProvider) Summary(ctx context.Context) (FakeSummary, error) {
	var s FakeSummary
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, fp.URL+"/_receipts/summary", nil)
	resp, err := fp.client.Do(req)
	if err != nil {
		return s, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return s, fmt.Errorf("summary: %s", resp.Status)
	}
	return s, json.NewDecoder(resp.Body).Decode(&s)
}

// writeP8 writes a fresh P-256 key in PKCS#8 PEM, the format of an APNs
// auth key: deliver signs its JWTs with it and the fake accepts any bearer.
func writeP8(path string) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
}
