package drills

import (
	"testing"
	"time"

	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
)

// (h) The pipeline against a Redis that wants a password (requirepass, the
// processes signing in as an ACL user) and against a Redis that speaks only
// TLS and wants client certificates: every process, the CLI included,
// connects with the PUSHPIPE_REDIS_* settings; a campaign during which
// Redis is SIGKILLed and restarted (same password, same certificates)
// reaches every device. The rest of the suite runs the same way with
// PUSHPIPE_TEST_REDIS=auth or tls (make test-secure-redis).
func TestDrillSecuredRedis(t *testing.T) {
	parallelDrill(t)
	for _, mode := range []string{pipelinetest.SecurityAuth, pipelinetest.SecurityTLS} {
		t.Run(mode, func(t *testing.T) {
			parallelDrill(t)
			r := newRig(t, rigOptions{Users: 1500, TPS: 1000, Security: mode})
			id := "drill-h-" + mode
			r.createCampaign(id)
			r.waitThirdSent()
			if err := r.redis.Kill(); err != nil {
				t.Fatal(err)
			}
			time.Sleep(time.Second)
			if err := r.redis.Restart(); err != nil {
				t.Fatal(err)
			}
			p := r.waitDone(id, 120*time.Second)
			sum := r.settle()
			r.checkReached(r.receipts(), id)
			if p.Targets != int64(r.opts.Users) {
				t.Errorf("campaign targets %d, want %d", p.Targets, r.opts.Users)
			}
			r.cli("status", id)
			t.Logf("%s: campaign %+v; provider %d accepted, %d unique, %d duplicates", mode, p, sum.Accepted, sum.Unique, sum.Duplicates)
		})
	}
}
