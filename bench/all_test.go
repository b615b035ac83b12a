package bench

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pushpipe/pushpipe/pipeline/campaign"
	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
)

// TestAllInOneProcess runs `pushpipe all` (the API and every stage built
// from the stage packages' constructors in one process) and checks that a
// campaign reaches every device exactly once.
func TestAllInOneProcess(t *testing.T) {
	t.Parallel()
	bin := pipelinetest.Binary(t)
	ctx := t.Context()
	srv, err := StartServers(ctx, ServerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	seed := SeedConfig{App: "a", Users: 10_000, Channels: 2, Overlap: 0.3, TwoDevices: 0.2}
	if _, err := Seed(ctx, srv.DatabaseURL, seed); err != nil {
		t.Fatal(err)
	}
	run, err := Launch(ctx, LaunchConfig{Servers: srv, Bin: bin, LogDir: t.TempDir(), Prefix: "pp", Partitions: 8,
		ClaimIdle: 10 * time.Second, Sink: SinkNull, App: seed.App, AllInOne: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(run.Stop)
	if n := len(run.Fleet.Procs()); n != 1 {
		t.Fatalf("%d processes, want 1", n)
	}

	conn, err := pgx.Connect(ctx, srv.DatabaseURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	truth, err := countTruth(ctx, conn, seed.App, seed.ChannelNames())
	if err != nil {
		t.Fatal(err)
	}
	w := &Watch{Run: run, Campaign: "all-1", Expected: truth, Timeout: time.Minute, Stall: 30 * time.Second}
	t0, err := run.Trigger(ctx, campaign.Campaign{ID: "all-1", App: seed.App, Channels: seed.ChannelNames(), Title: "t"})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Wait(ctx, t0); err != nil {
		t.Fatal(err)
	}
	if !w.Complete {
		t.Fatalf("campaign not done; log:\n%s", run.Fleet.Procs()[0].LogTail(3000))
	}
	maxID, err := maxDeviceID(ctx, conn)
	if err != nil {
		t.Fatal(err)
	}
	got, err := sentMarks(ctx, run.rdb, run.Keys, "all-1", maxID)
	if err != nil {
		t.Fatal(err)
	}
	want, err := expectedMarks(ctx, conn, seed.App, seed.ChannelNames(), truth.Devices, true)
	if err != nil {
		t.Fatal(err)
	}
	if v := compare(want, got); v.Missing != 0 || v.Unexpected != 0 || v.Unique != truth.Devices {
		t.Fatalf("verdict %+v for %d devices", v, truth.Devices)
	}
	users, repeats, err := deliverUsers(ctx, run.rdb, run.Keys, "all-1")
	if err != nil {
		t.Fatal(err)
	}
	if users != truth.Recipients || repeats != 0 {
		t.Fatalf("deliver stream: %d people, %d repeats; want %d, 0", users, repeats, truth.Recipients)
	}
}
