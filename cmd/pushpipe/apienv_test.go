package main

import (
	"bytes"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
)

// all serves the API in its process, so it reads the API's environment as
// api does (readAPIEnv): all read the credentials alone, and in the shell
// of pushpipe dev's env file (PUSHPIPE_DEV set) its 422 of an unknown app
// advised adding the app to the PUSHPIPE_APP_KEYS dev wrote, where api's
// named the app dev seeded.
func TestAllReadsTheAPIEnvironmentAsAPIDoes(t *testing.T) {
	t.Parallel()
	bin := pipelinetest.Binary(t)
	r := pipelinetest.RedisT(t, pipelinetest.RedisOptions{})
	url, _ := testDatabase(t)
	admin, key := strings.Repeat("a", 32), strings.Repeat("k", 32)
	want := `app \"other\" is not known to this API: pushpipe dev serves only the app it seeded (\"demo\"): use it`
	tests := []struct {
		name string
		args []string
	}{
		{"api", []string{"api"}},
		{"all", []string{"all", "--sink", "null"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			listen := pipelinetest.FreeAddr(t)
			cmd := exec.Command(bin, append(tt.args, "--listen", listen, "--http", pipelinetest.FreeAddr(t))...)
			cmd.Env = append(os.Environ(), "PUSHPIPE_REDIS_ADDR="+r.Addr, "PUSHPIPE_DATABASE_URL="+url, "PUSHPIPE_LOG_LEVEL=warn",
				"PUSHPIPE_ADMIN_TOKEN="+admin, "PUSHPIPE_APP_KEYS=demo="+key, "PUSHPIPE_DEV=1")
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
			var code int
			var body string
			pipelinetest.Eventually(t, 30*time.Second, tt.name+"'s API answering", func() bool {
				req, _ := http.NewRequest(http.MethodPost, "http://"+listen+"/v1/campaigns",
					strings.NewReader(`{"app":"other","channels":["c"],"notification":{"title":"t","body":"b"}}`))
				req.Header.Set("Authorization", "Bearer "+admin)
				req.Header.Set("Content-Type", "application/json")
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					return false
				}
				defer resp.Body.Close()
				var b bytes.Buffer
				b.ReadFrom(resp.Body)
				code, body = resp.StatusCode, b.String()
				return true
			})
			if code != http.StatusUnprocessableEntity || !strings.Contains(body, want) {
				cmd.Process.Kill()
				cmd.Wait() // stderr is whole, and no longer written
				t.Fatalf("unknown app: %d %s\nwant 422 saying %s\nstderr:\n%s", code, body, want, stderr.String())
			}
		})
	}
}
