package apns

import (
	"fmt"
	"testing"

	"github.com/pushpipe/pushpipe/stages/deliver/fakeprovider"
)

// newSender makes a token-auth Sender that trusts fake.
func newSender(t testing.TB, fake *fakeprovider.Server, mutate ...func(*Config)) *Sender {
	t.Helper()
	cfg := Config{
		KeyFile: fakeprovider.WriteP8(t), KeyID: "KEYID12345", TeamID: "TEAMID1234",
		Topic: "com.example.app", Host: fake.URL(), RootCAs: fake.CertPool(),
	}
	for _, m := range mutate {
		m(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// hexToken is a 64-hex-digit device token, like the ones iOS hands out.
func hexToken(i int) string { return fmt.Sprintf("%064x", i+1) }
