package secrettest

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
)

// `pushpipe api` with no credentials exits non-zero at once with a message
// saying what to set, even with Redis and PostgreSQL reachable; so does a
// configuration where one secret would mean two things; and no secret it was
// given is echoed. --insecure-no-auth starts it, with a warning.
func TestAPIRefusesToStartWithoutAuth(t *testing.T) {
	admin, key := secret("adm-"), secret("key-")
	// A migrated database: on the server's bare one the API would refuse to
	// start for its schema (run pushpipe migrate), whatever its credentials.
	base := []string{"PUSHPIPE_REDIS_ADDR=" + env.Redis.Addr, "PUSHPIPE_DATABASE_URL=" + pipelinetest.MigratedDatabaseT(t, env.Postgres)}
	for _, tt := range []struct {
		name  string
		extra []string
		want  []string
	}{
		{"no credentials", nil, []string{"no credentials configured", "PUSHPIPE_ADMIN_TOKEN", "PUSHPIPE_APP_KEYS", "--insecure-no-auth"}},
		{"empty credentials", []string{"PUSHPIPE_ADMIN_TOKEN=", "PUSHPIPE_APP_KEYS="}, []string{"no credentials configured"}},
		{"malformed app keys", []string{"PUSHPIPE_APP_KEYS=news=" + key + ",sport"}, []string{"PUSHPIPE_APP_KEYS", "item 2"}},
		{"app key is the admin token", []string{"PUSHPIPE_ADMIN_TOKEN=" + admin, "PUSHPIPE_APP_KEYS=news=" + admin}, []string{"is the admin token"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := run(t, "api", append(append([]string{}, base...), tt.extra...), "api", "--listen", freeAddr(t))
			out := p.out.String()
			if p.err == nil || p.cmd.ProcessState.ExitCode() == 0 {
				t.Fatalf("pushpipe api started (exit %v):\n%s", p.err, out)
			}
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("the message does not say %q:\n%s", w, out)
				}
			}
			if strings.Contains(out, admin) || strings.Contains(out, key) {
				t.Errorf("the message echoes a secret:\n%s", out)
			}
		})
	}

	t.Run("insecure-no-auth", func(t *testing.T) {
		listen, ops := freeAddr(t), freeAddr(t)
		p := start(t, "api", base, "api", "--listen", listen, "--http", ops, "--insecure-no-auth")
		waitFor(t, 30*time.Second, "api ready", ready(ops), p)
		resp, err := http.Post("http://"+listen+"/v1/devices", "application/json",
			strings.NewReader(`{"app":"news","platform":"ios","token":"`+strings.Repeat("ab", 32)+`","user_id":1}`))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("without auth, a device registration: %d, want 202", resp.StatusCode)
		}
		p.stop()
		if out := p.out.String(); !strings.Contains(out, "WITHOUT authentication") {
			t.Fatalf("no warning that the API is open:\n%s", out)
		}
	})
}
