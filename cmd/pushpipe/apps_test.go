package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/stages/api"
	"github.com/pushpipe/pushpipe/stages/deliver"
	"github.com/pushpipe/pushpipe/stages/deliver/fakeprovider"
	"github.com/pushpipe/pushpipe/stages/deliver/push"
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
		if tt.want == nil {
			// Refused: the log says the file on disk would stop the next
			// start, which "the running apps stay" alone did not. The
			// reloader logs that after it gave up on the file, so nothing
			// was applied by then (not a 5 s wait for nothing).
			if !waitFor(5*time.Second, func() bool {
				return strings.Contains(logs.String(), "a restart would refuse this file: fix it, then send SIGHUP again")
			}) {
				t.Errorf("%s: the log does not say a restart would refuse the file:\n%s", tt.name, logs.String())
			}
			select {
			case a := <-applied:
				t.Fatalf("%s: applied %v", tt.name, a.Apps)
			default:
			}
			continue
		}
		select {
		case a := <-applied:
			for _, id := range tt.want {
				if !a.Known(id) || len(a.Apps) != len(tt.want) {
					t.Fatalf("%s: applied %v, want %v", tt.name, a.Apps, tt.want)
				}
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: not applied after SIGHUP", tt.name)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// Under pushpipe all, one apps file reloads the API and deliver together,
// or neither: a file deliver refuses (a key file it cannot read) leaves
// the API's apps too, and one the API refuses (an app key too short)
// leaves deliver's. Each reloading on its own, the API took a file
// deliver refused, and refused the apps deliver still served.
func TestAllReloadsAPIAndDeliverTogether(t *testing.T) {
	_, rdb := testRedis(t)
	fake := fakeprovider.Start(t, fakeprovider.Options{})
	p8 := fakeprovider.WriteP8(t)
	const admin, newsKey, sportKey = "admin-0123456789abcdef", "news-0123456789abcdef", "sport-0123456789abcdef"
	entry := func(app, key, p8 string) string {
		return fmt.Sprintf("[apps.%s]\napns = { key = %q, key_id = \"KEY0000001\", team_id = \"TEAM000001\", host = %q }\nkeys = [%q]\n",
			app, p8, fake.URL(), key)
	}
	load := func(s string) deliver.Apps {
		path := filepath.Join(t.TempDir(), "apps.toml")
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		apps, err := deliver.LoadApps(path)
		if err != nil {
			t.Fatal(err)
		}
		return apps
	}
	good := load(entry("news", newsKey, p8) + entry("sport", sportKey, p8))
	keys, err := good.AppKeys()
	if err != nil {
		t.Fatal(err)
	}
	srv := api.New(api.Config{Redis: rdb, Keys: pipeline.NewKeys("pp", pipeline.DefaultPartitions), Log: zerolog.Nop(),
		Auth: api.Auth{AdminToken: admin, FileKeys: keys}, AppsFile: &api.AppsFile{Path: "apps.toml", Apps: appIDs(good)}})
	senders, err := deliver.NewAppSenders(t.Context(), good, deliver.SenderOptions{RootCAs: fake.CertPool()}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(senders.Close)
	apply := applyApps(apiApps{srv}, senders)
	// sportKnown says whether the API and deliver still have app sport.
	sportKnown := func(t *testing.T) (apiKnows, deliverServes bool) {
		t.Helper()
		req := httptest.NewRequest("DELETE", "/v1/devices/sport/"+strings.Repeat("ab", 32), nil)
		req.Header.Set("Authorization", "Bearer "+admin)
		w := httptest.NewRecorder()
		srv.ServeHTTP(w, req)
		if w.Code != http.StatusAccepted && w.Code != http.StatusUnprocessableEntity {
			t.Fatalf("DELETE a device of sport: %d %s", w.Code, w.Body)
		}
		return w.Code == http.StatusAccepted, senders.Senders()[push.IOS].(push.AppServer).Serves("sport")
	}
	tests := []struct {
		name, file string
		want       string // in the error
	}{
		{"a key file deliver cannot read", entry("news", newsKey, "/nonexistent/AuthKey.p8"), "/nonexistent/AuthKey.p8"},
		{"an app key the API refuses", entry("news", "short", p8), `the key of app "news" is 5 characters`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := apply(t.Context(), load(tt.file)); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("reload: %v, want an error with %q", err, tt.want)
			}
			if apiKnows, deliverServes := sportKnown(t); !apiKnows || !deliverServes {
				t.Errorf("after a refused reload, app sport: known to the API %v, served by deliver %v; want both", apiKnows, deliverServes)
			}
		})
	}
	// A file both take applies to both.
	if err := apply(t.Context(), load(entry("news", newsKey, p8))); err != nil {
		t.Fatal(err)
	}
	if apiKnows, deliverServes := sportKnown(t); apiKnows || deliverServes {
		t.Errorf("after sport was removed: known to the API %v, served by deliver %v; want neither", apiKnows, deliverServes)
	}
}
