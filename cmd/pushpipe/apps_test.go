package main

import (
	"context"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/pushpipe/pushpipe/stages/deliver"
)

// SIGHUP reads the apps file again and applies it; a file that does not
// load is not applied (the running apps stay), and the next good one is.
func TestReloadAppsOnHUP(t *testing.T) {
	path := filepath.Join(t.TempDir(), "apps.toml")
	write := func(s string) {
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// A SIGHUP that arrives before the reloader has registered would end
	// the test binary (the signal's default action); one registration of
	// the test's own turns that off for the process.
	guard := make(chan os.Signal, 1)
	signal.Notify(guard, syscall.SIGHUP)
	defer signal.Stop(guard)
	applied := make(chan deliver.Apps, 16)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error)
	var logs lockedBuffer
	run := reloadAppsOnHUP(path, zerolog.New(&logs), func(_ context.Context, a deliver.Apps) error { applied <- a; return nil })
	go func() { done <- run(ctx) }()
	hup := func() {
		if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
	}
	// Until the reloader has registered, a SIGHUP passes it by: send the
	// first file's until it is applied, then let any repeat land and
	// drop it (the same file, applied again).
	write("[apps.first]\nfcm = { project = \"p\" }\n")
	for deadline := time.Now().Add(30 * time.Second); ; {
		hup()
		select {
		case <-applied:
		case <-time.After(200 * time.Millisecond):
			if time.Now().After(deadline) {
				t.Fatal("the reloader never applied a file on SIGHUP")
			}
			continue
		}
		break
	}
	time.Sleep(500 * time.Millisecond)
	for len(applied) > 0 {
		<-applied
	}
	tests := []struct {
		name, file string
		want       []string // apps applied; nil: nothing applied
	}{
		{"two apps", "[apps.a]\nfcm = { project = \"p\" }\n[apps.b]\nfcm = { project = \"p\" }\n", []string{"a", "b"}},
		{"broken file", "[apps.a\n", nil},
		{"a third app", "[apps.a]\nfcm = { project = \"p\" }\n[apps.b]\nfcm = { project = \"p\" }\n[apps.c]\nfcm = { project = \"p\" }\n", []string{"a", "b", "c"}},
	}
	for _, tt := range tests {
		write(tt.file)
		hup()
		select {
		case a := <-applied:
			if tt.want == nil {
				t.Fatalf("%s: applied %v", tt.name, a.Apps)
			}
			for _, id := range tt.want {
				if !a.Known(id) || len(a.Apps) != len(tt.want) {
					t.Fatalf("%s: applied %v, want %v", tt.name, a.Apps, tt.want)
				}
			}
		case <-time.After(5 * time.Second):
			if tt.want != nil {
				t.Fatalf("%s: not applied after SIGHUP", tt.name)
			}
			// Refused: the log says the file on disk would stop the next
			// start, which "the running apps stay" alone did not.
			if !strings.Contains(logs.String(), "a restart would refuse this file: fix it, then send SIGHUP again") {
				t.Errorf("%s: the log does not say a restart would refuse the file:\n%s", tt.name, logs.String())
			}
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
