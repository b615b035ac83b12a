package main

import (
	"cmp"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/pushpipe/pushpipe/pipeline"
)

// DESIGN's stage flags reach the runner of every stage, standalone and
// under all: --consumer (default host-pid), --concurrency, --claim-idle (default 30s),
// --max-deliveries (default 10, deliver's 100, as its help says), --http,
// and --retention (acknowledged entries kept for replay, default 24h),
// compared as the runner fills them in (Options.Effective). A default
// changed in one place (a struct tag) changed what every deployment that
// sets none gets, and no test said so: claims after another idle time, a
// replay window of another length.
func TestStageFlagsAndDefaultsAreDesigns(t *testing.T) {
	secrets := filepath.Join(t.TempDir(), "secrets")
	if err := os.WriteFile(secrets, []byte("s1-0123456789abcdef\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// The flags a stage cannot start without (Optional rows).
	required := map[string][]string{"webhook": {"--url", "https://h.example/x", "--secret-file", secrets}}
	given := []string{"--consumer", "c9", "--concurrency", "3", "--claim-idle", "5s", "--max-deliveries", "7", "--http", "127.0.0.1:9", "--retention", "2h"}
	maxDeliveries := map[string]int64{"deliver": 100}
	keys := pipeline.NewKeys("pp", pipeline.DefaultPartitions)
	host, _ := os.Hostname()
	hostPID := host + "-" + strconv.Itoa(os.Getpid())
	command, _ := parser(t)
	for _, def := range pipeline.Stages {
		if _, ok := required[def.Name]; def.Optional && !ok {
			t.Fatalf("stage %s is Optional: add the flags it needs to start to this test", def.Name)
		}
		tests := []struct {
			name string
			args []string
			want pipeline.Options // the fields DESIGN names
			http string
		}{
			{"defaults", nil, pipeline.Options{Consumer: hostPID, ClaimIdle: 30 * time.Second, Retention: 24 * time.Hour, MaxDeliveries: cmp.Or(maxDeliveries[def.Name], 10), Concurrency: def.Concurrency}, ""},
			{"given", given, pipeline.Options{Consumer: "c9", ClaimIdle: 5 * time.Second, Retention: 2 * time.Hour, MaxDeliveries: 7, Concurrency: 3}, "127.0.0.1:9"},
		}
		for _, tt := range tests {
			t.Run(def.Name+"/"+tt.name, func(t *testing.T) {
				sf := command(append(append([]string{def.Name}, required[def.Name]...), tt.args...)...).(*stageCmd).StageFlags
				checkStageOptions(t, "pushpipe "+def.Name, sf, sf.options(def).Effective(keys), tt.want, tt.http)
			})
			if def.Optional {
				continue // all runs it only when configured, with its own spelling of the flags
			}
			t.Run(def.Name+"/"+tt.name+"/all", func(t *testing.T) {
				sf := command(append([]string{"all"}, tt.args...)...).(*AllCmd).StageFlags
				checkStageOptions(t, "pushpipe all", sf, sf.options(def).Effective(keys), tt.want, tt.http)
			})
		}
	}
}

// checkStageOptions compares the runner options DESIGN names, and --http.
func checkStageOptions(t *testing.T, cmd string, sf StageFlags, got, want pipeline.Options, http string) {
	t.Helper()
	if got.Consumer != want.Consumer || got.ClaimIdle != want.ClaimIdle || got.Retention != want.Retention ||
		got.MaxDeliveries != want.MaxDeliveries || got.Concurrency != want.Concurrency || sf.HTTP != http {
		t.Errorf("%s: consumer %q claim-idle %v retention %v max-deliveries %d concurrency %d http %q; want %q %v %v %d %d %q",
			cmd, got.Consumer, got.ClaimIdle, got.Retention, got.MaxDeliveries, got.Concurrency, sf.HTTP,
			want.Consumer, want.ClaimIdle, want.Retention, want.MaxDeliveries, want.Concurrency, http)
	}
}
