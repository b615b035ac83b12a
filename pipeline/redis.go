package pipeline

import (
	"fmt"
	"strings"
	"time"

	"github.com/redis/rueidis"
)

// NewRedis connects to one address (standalone) or several comma-separated
// addresses (a cluster). rueidis auto-pipelines concurrent commands; blocking
// XREADGROUPs take dedicated connections from its blocking pool.
func NewRedis(addrs string) (rueidis.Client, error) {
	var init []string
	for _, a := range strings.Split(addrs, ",") {
		if a = strings.TrimSpace(a); a != "" {
			init = append(init, a)
		}
	}
	if len(init) == 0 {
		return nil, fmt.Errorf("no Redis address: set PUSHPIPE_REDIS_ADDR (host:port, or several comma-separated for a cluster)")
	}
	c, err := rueidis.NewClient(rueidis.ClientOption{
		InitAddress:      init,
		ShuffleInit:      true,
		DisableCache:     true,
		BlockingPoolSize: 256,
		ConnWriteTimeout: 10 * time.Second,
		ClusterOption:    rueidis.ClusterOption{ShardsRefreshInterval: 10 * time.Second},
	})
	if err != nil {
		return nil, fmt.Errorf("connect to Redis %s: %w", addrs, err)
	}
	return c, nil
}
