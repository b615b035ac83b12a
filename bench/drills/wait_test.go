package drills

import (
	"bytes"
	"context"
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestDrillSendWaitExitStatus: `pushpipe send --wait` against the real
// stages and the fake provider ends with the status a script reads: 0 for
// a campaign that was sent, 3 for one done with nothing sent, every device
// it tried having failed (here an app deliver has no credentials for).
// Until now only ended's verdict on a progress was tested, in process
// (TestWaitExitStatus), never what the binary exits with.
func TestDrillSendWaitExitStatus(t *testing.T) {
	parallelDrill(t)
	r := newRig(t, rigOptions{Users: 6, TPS: 1000})
	// Three drill users (all six subscribe to the channel) also have a device of an app that deliver has no
	// credentials for (its provider flags serve the drill app alone).
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, r.dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `INSERT INTO devices (app, token, user_id, platform, event_at)
		SELECT 'nocreds', 'fcm_nocreds_' || g, g * 173, 2, now() FROM generate_series(1, 3) g`); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		want int    // exit status
		say  string // in its stderr
	}{
		{"a campaign sent", []string{"--app", drillApp, "--channel", drillChannel, "--title", "Goal", "--id", "wait-sent"}, 0, ""},
		{"a message sent", []string{"--app", drillApp, "--user", "173,346", "--title", "Hi", "--id", "wait-msg-sent"}, 0, ""},
		{"a campaign every device failed", []string{"--app", "nocreds", "--channel", drillChannel, "--title", "Goal", "--id", "wait-camp-failed"},
			3, "is done but sent nothing: 3 devices failed"},
		{"a message every device failed", []string{"--app", "nocreds", "--user", "173,346,519", "--title", "Hi", "--id", "wait-all-failed"},
			3, "is done but sent nothing: 3 devices failed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// A generous bound: a handful of devices is done in a
			// second or two, on a loaded machine in more.
			ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
			defer cancel()
			var stdout, stderr bytes.Buffer
			cmd := exec.CommandContext(ctx, bin, append([]string{"send", "--wait"}, tt.args...)...)
			cmd.Env, cmd.Stdout, cmd.Stderr = r.env, &stdout, &stderr
			err := cmd.Run()
			got := 0
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				got = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if got != tt.want || !strings.Contains(stderr.String(), tt.say) {
				t.Fatalf("exit %d, want %d saying %q; stdout %q, stderr:\n%s", got, tt.want, tt.say, stdout.String(), stderr.String())
			}
		})
	}
}
