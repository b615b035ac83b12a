package pipeline

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/redis/rueidis"
)

// RedisConfig says where Redis is and how to authenticate to it.
//
// Addr is one host:port (standalone), several comma-separated (a cluster),
// or a URL: redis://[user:password@]host:port, rediss:// for TLS, more
// cluster nodes as ?addr=host:port (rueidis.ParseURL reads it). Username
// and Password, when set, override the URL's (ACL users: both; requirepass:
// the password alone). CAFile is the PEM of the CA that signed Redis's
// certificate (default: the system's); CertFile and KeyFile are a client
// certificate for servers that ask for one (tls-auth-clients). Any TLS file
// turns TLS on, whatever Addr's scheme.
type RedisConfig struct {
	Addr               string
	Username, Password string
	CAFile             string
	CertFile, KeyFile  string
}

// NewRedis connects to one address (standalone) or several comma-separated
// addresses (a cluster), or a redis:// or rediss:// URL, without further
// credentials (NewRedisConfig takes them).
func NewRedis(addrs string) (rueidis.Client, error) { return NewRedisConfig(RedisConfig{Addr: addrs}) }

// NewRedisConfig connects to Redis. rueidis auto-pipelines concurrent
// commands; blocking XREADGROUPs take dedicated connections from its
// blocking pool. The first connection is made here, AUTH included, so a
// wrong address, password or certificate fails now.
func NewRedisConfig(cfg RedisConfig) (rueidis.Client, error) {
	opt, err := cfg.Options()
	if err != nil {
		return nil, err
	}
	c, err := rueidis.NewClient(opt)
	if err != nil {
		return nil, fmt.Errorf("connect to Redis at %s: %w", cfg.Where(), err)
	}
	return pinReads{c}, nil
}

// pinReads keeps rueidis (v1.0.80) from recycling a read-only command. A
// read whose connection breaks is retried on a new one, and once that
// answers, rueidis puts the command back in its pool (client.go, DoMulti)
// while the broken connection's writer may still be reading it: the broken
// pipe fails its calls before its writer has stopped (pipe.go,
// _background). The next command built then reuses memory that writer
// reads, which the race detector caught in deliver's delay loop across a
// Redis restart. A pinned command is never put back. Writes are never
// retried, so they keep the pool.
type pinReads struct{ rueidis.Client }

func (c pinReads) Do(ctx context.Context, cmd rueidis.Completed) rueidis.RedisResult {
	return c.Client.Do(ctx, pinRead(cmd))
}

func (c pinReads) DoMulti(ctx context.Context, multi ...rueidis.Completed) []rueidis.RedisResult {
	for i := range multi {
		multi[i] = pinRead(multi[i])
	}
	return c.Client.DoMulti(ctx, multi...)
}

func pinRead(cmd rueidis.Completed) rueidis.Completed {
	if cmd.IsRetryable() {
		return cmd.Pin()
	}
	return cmd
}

// Options turns the config into rueidis options with pushpipe's settings.
func (cfg RedisConfig) Options() (rueidis.ClientOption, error) {
	var opt rueidis.ClientOption
	addr := strings.TrimSpace(cfg.Addr)
	if strings.Contains(addr, "://") {
		var err error
		if opt, err = rueidis.ParseURL(addr); err != nil {
			// url.Parse's message quotes the URL, password included.
			return opt, errors.New("PUSHPIPE_REDIS_ADDR is not a Redis URL (redis://user:password@host:port or rediss://...)")
		}
	} else {
		for _, a := range strings.Split(addr, ",") {
			if a = strings.TrimSpace(a); a != "" {
				opt.InitAddress = append(opt.InitAddress, a)
			}
		}
	}
	if len(opt.InitAddress) == 0 {
		return opt, fmt.Errorf("no Redis address: set PUSHPIPE_REDIS_ADDR (host:port, several comma-separated for a cluster, or a redis:// or rediss:// URL)")
	}
	if cfg.Username != "" {
		opt.Username = cfg.Username
	}
	if cfg.Password != "" {
		opt.Password = cfg.Password
	}
	if cfg.CAFile != "" || cfg.CertFile != "" || cfg.KeyFile != "" {
		if opt.TLSConfig == nil {
			opt.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
			if host, _, err := net.SplitHostPort(opt.InitAddress[0]); err == nil {
				opt.TLSConfig.ServerName = host
			}
		}
		if err := cfg.loadTLS(opt.TLSConfig); err != nil {
			return opt, err
		}
	}
	opt.ShuffleInit = true
	opt.DisableCache = true
	opt.BlockingPoolSize = 256
	if opt.ConnWriteTimeout == 0 {
		// A redis:// URL's write_timeout (rueidis.ParseURL) is kept: it
		// was overwritten, unlike its other settings.
		opt.ConnWriteTimeout = 10 * time.Second
	}
	opt.ClusterOption = rueidis.ClusterOption{ShardsRefreshInterval: 10 * time.Second}
	return opt, nil
}

// loadTLS adds the CA and the client certificate to c.
func (cfg RedisConfig) loadTLS(c *tls.Config) error {
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return fmt.Errorf("the Redis TLS CA (PUSHPIPE_REDIS_TLS_CA_FILE): %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("the Redis TLS CA %s (PUSHPIPE_REDIS_TLS_CA_FILE): no PEM certificate in it", cfg.CAFile)
		}
		c.RootCAs = pool
	}
	if (cfg.CertFile == "") != (cfg.KeyFile == "") {
		return errors.New("the Redis TLS client certificate: set both PUSHPIPE_REDIS_TLS_CERT_FILE and PUSHPIPE_REDIS_TLS_KEY_FILE, or neither")
	}
	if cfg.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(cfg.CertFile, cfg.KeyFile)
		if err != nil {
			return fmt.Errorf("the Redis TLS client certificate (PUSHPIPE_REDIS_TLS_CERT_FILE, PUSHPIPE_REDIS_TLS_KEY_FILE): %w", err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return nil
}

// Where names the server and user for an operator, never the password:
// "127.0.0.1:6379 (TLS) as user \"app\"".
func (cfg RedisConfig) Where() string {
	files := cfg.CAFile != "" || cfg.CertFile != "" || cfg.KeyFile != ""
	cfg.CAFile, cfg.CertFile, cfg.KeyFile = "", "", ""
	opt, err := cfg.Options()
	if err != nil {
		return "(no address)"
	}
	s := strings.Join(opt.InitAddress, ",")
	if opt.TLSConfig != nil || files {
		s += " (TLS)"
	}
	switch {
	case opt.Username != "":
		s += fmt.Sprintf(" as user %q", opt.Username)
	case opt.Password != "":
		s += ` as user "default"`
	default:
		s += " without AUTH"
	}
	return s
}
