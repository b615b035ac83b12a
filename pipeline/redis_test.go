package pipeline_test

import (
	"strings"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
)

// A Redis with requirepass and an ACL user, and a Redis that speaks only
// TLS and wants client certificates: NewRedisConfig reaches both with the
// right credentials (as a user, as the default user, by URL), and fails at
// connect time, naming where and as whom, with wrong ones.
func TestRedisAuthAndTLS(t *testing.T) {
	auth := pipelinetest.RedisT(t, pipelinetest.RedisOptions{Security: "auth"})
	tlsr := pipelinetest.RedisT(t, pipelinetest.RedisOptions{Security: "tls"})
	a, s := auth.Client, tlsr.Client
	tests := []struct {
		name    string
		give    pipeline.RedisConfig
		wantErr string // "" connects
	}{
		{"acl user", pipeline.RedisConfig{Addr: auth.Addr, Username: a.Username, Password: a.Password}, ""},
		{"acl user by URL", pipeline.RedisConfig{Addr: "redis://" + a.Username + ":" + a.Password + "@" + auth.Addr}, ""},
		{"URL user, password given apart", pipeline.RedisConfig{Addr: "redis://" + a.Username + "@" + auth.Addr, Password: a.Password}, ""},
		{"no password", pipeline.RedisConfig{Addr: auth.Addr}, "NOAUTH"},
		{"wrong password", pipeline.RedisConfig{Addr: auth.Addr, Username: a.Username, Password: "nope"}, `as user "pushpipe"`},
		{"tls with client cert", pipeline.RedisConfig{Addr: tlsr.Addr, CAFile: s.CAFile, CertFile: s.CertFile, KeyFile: s.KeyFile}, ""},
		{"rediss URL with client cert", pipeline.RedisConfig{Addr: "rediss://" + tlsr.Addr, CAFile: s.CAFile, CertFile: s.CertFile, KeyFile: s.KeyFile}, ""},
		{"tls without client cert", pipeline.RedisConfig{Addr: tlsr.Addr, CAFile: s.CAFile}, "(TLS)"},
		{"tls, CA not trusted", pipeline.RedisConfig{Addr: "rediss://" + tlsr.Addr, CertFile: s.CertFile, KeyFile: s.KeyFile}, "certificate"},
		{"plain to a TLS port", pipeline.RedisConfig{Addr: tlsr.Addr}, "connect to Redis"},
		{"cert without key", pipeline.RedisConfig{Addr: tlsr.Addr, CertFile: s.CertFile}, "PUSHPIPE_REDIS_TLS_KEY_FILE"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := pipeline.NewRedisConfig(tt.give)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				if err := c.Do(t.Context(), c.B().Set().Key("k").Value("v").Build()).Error(); err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil {
				c.Close()
				t.Fatalf("connected, want an error with %q", tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error %q, want it to contain %q", err, tt.wantErr)
			}
			if tt.give.Password != "" && strings.Contains(err.Error(), tt.give.Password) {
				t.Fatalf("error %q shows the password", err)
			}
		})
	}
}

// A read-only command is not put back in rueidis's pool once answered, so
// that a retry on a new connection never hands its memory to the next
// command while the broken connection's writer may still read it
// (pinReads). A write is, as rueidis does.
func TestReadsAreNotRecycled(t *testing.T) {
	c, err := pipeline.NewRedis(env.Redis.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	key := testKeys().Campaign("pin")
	tests := []struct {
		name   string
		give   rueidis.Completed
		multi  bool
		intact bool
	}{
		{"read", c.B().Zcard().Key(key).Build(), false, true},
		{"read in a pipeline", c.B().Get().Key(key).Build(), true, true},
		{"write", c.B().Set().Key(key).Value("v").Build(), false, false},
		{"write in a pipeline", c.B().Del().Key(key).Build(), true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			if tt.multi {
				err = c.DoMulti(t.Context(), tt.give)[0].Error()
			} else {
				err = c.Do(t.Context(), tt.give).Error()
			}
			if err != nil && !rueidis.IsRedisNil(err) {
				t.Fatal(err)
			}
			if got := len(tt.give.Commands()) > 0; got != tt.intact {
				t.Errorf("after the call, the command holds %q: intact %v, want %v", tt.give.Commands(), got, tt.intact)
			}
		})
	}
}

// The clients' write timeout is 10 s, unless a redis:// URL says
// otherwise (write_timeout): it was overwritten, so a drill that freezes
// Redis past the timeout could not shorten it.
func TestRedisURLKeepsItsWriteTimeout(t *testing.T) {
	tests := []struct {
		give string
		want time.Duration
	}{
		{"127.0.0.1:6379", 10 * time.Second},
		{"redis://127.0.0.1:6379", 10 * time.Second},
		{"redis://127.0.0.1:6379?write_timeout=3s", 3 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.give, func(t *testing.T) {
			opt, err := pipeline.RedisConfig{Addr: tt.give}.Options()
			if err != nil || opt.ConnWriteTimeout != tt.want {
				t.Errorf("write timeout %v, %v; want %v", opt.ConnWriteTimeout, err, tt.want)
			}
		})
	}
}
