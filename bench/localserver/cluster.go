package localserver

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

const (
	clusterSlots        = 16384
	clusterReadyTimeout = 30 * time.Second
)

// Cluster is a Redis Cluster of masters, without replicas unless
// StartClusterOf asks for them, each node a redis-server child process.
type Cluster struct {
	// Addrs is "127.0.0.1:PORT" of every node, masters first (replicas
	// after them; which master each follows, and who masters a slot after
	// a failover, CLUSTER NODES and CLUSTER SLOTS say).
	Addrs []string
	Nodes []*Redis // the nodes, in Addrs order; usable for Kill/Restart drills
	Dir   string
}

// StartCluster starts masters (at least 3, as redis-cli requires) cluster
// nodes, joins them with `redis-cli --cluster create`, and returns once
// every node reports cluster_state:ok and all nodes agree on who owns each
// of the 16384 slots, so clients see one consistent topology.
func StartCluster(masters int) (*Cluster, error) {
	return StartClusterWith(masters, RedisOptions{})
}

// StartClusterWith is StartCluster with every master started with node
// (its Dir aside: each has its own under the cluster's): AOF, for a drill
// that kills a master and expects its streams back.
func StartClusterWith(masters int, node RedisOptions) (*Cluster, error) {
	c, err := startCluster(ClusterOptions{Masters: masters, Node: node})
	if err != nil {
		return nil, fmt.Errorf("start redis cluster: %w", err)
	}
	return c, nil
}

func startCluster(o ClusterOptions) (*Cluster, error) {
	if o.Masters < 3 {
		return nil, fmt.Errorf("need at least 3 masters, got %d", o.Masters)
	}
	cli, err := lookBinary("redis-cli", "redis-tools")
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "pipelinetest-cluster-*")
	if err != nil {
		return nil, fmt.Errorf("temp dir: %w", err)
	}
	c := &Cluster{Dir: dir}
	for i := range o.Masters * (1 + o.Replicas) {
		opts := o.Node
		opts.Dir = filepath.Join(dir, fmt.Sprintf("node%d", i))
		n, err := startRedis(opts, func(port int) ([]string, error) {
			// Pin the bus port instead of relying on port+10000, which
			// may be above 65535 or taken.
			bus, err := FreePort()
			for err == nil && bus == port {
				bus, err = FreePort()
			}
			if err != nil {
				return nil, err
			}
			return []string{
				"--cluster-enabled", "yes",
				"--cluster-port", strconv.Itoa(bus),
				"--cluster-config-file", filepath.Join(opts.Dir, "nodes.conf"),
				"--cluster-node-timeout", o.nodeTimeout(),
			}, nil
		})
		if err != nil {
			return nil, errors.Join(fmt.Errorf("node %d: %w", i, err), c.Close())
		}
		c.Nodes = append(c.Nodes, n)
		c.Addrs = append(c.Addrs, n.Addr)
	}
	if err := c.create(cli, o.Replicas); err != nil {
		return nil, errors.Join(err, c.Close())
	}
	if err := c.waitReady(clusterReadyTimeout); err != nil {
		return nil, errors.Join(err, c.Close())
	}
	if err := c.waitReplicas(o.Masters*o.Replicas, clusterReadyTimeout); err != nil {
		return nil, errors.Join(err, c.Close())
	}
	return c, nil
}

// create assigns the slots evenly and joins the nodes, replicas to each
// master.
func (c *Cluster) create(cli string, replicas int) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	args := append([]string{"--cluster", "create"}, c.Addrs...)
	args = append(args, "--cluster-replicas", strconv.Itoa(replicas), "--cluster-yes")
	out, err := exec.CommandContext(ctx, cli, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("redis-cli --cluster create: %w\n%s", err, out)
	}
	return nil
}

// waitReady waits until every node is in state ok and reports the same
// complete slot map.
func (c *Cluster) waitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		err := c.checkReady()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("cluster not ready after %v: %w", timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (c *Cluster) checkReady() error {
	var first string
	for _, addr := range c.Addrs {
		reply, err := redisDo(addr, time.Second, "CLUSTER", "INFO")
		if err != nil {
			return fmt.Errorf("%s: cluster info: %w", addr, err)
		}
		if info, _ := reply.(string); !strings.Contains(info, "cluster_state:ok") {
			return fmt.Errorf("%s: cluster_state is not ok", addr)
		}
		slots, err := slotMap(addr)
		if err != nil {
			return err
		}
		if first == "" {
			first = slots
		} else if slots != first {
			return fmt.Errorf("%s disagrees on slots: %s vs %s", addr, slots, first)
		}
	}
	return nil
}

// slotMap returns addr's view of the slot assignment as a canonical
// string ("0-5460@127.0.0.1:P1 ..."), and an error unless it covers all
// 16384 slots.
func slotMap(addr string) (string, error) {
	reply, err := redisDo(addr, time.Second, "CLUSTER", "SLOTS")
	if err != nil {
		return "", fmt.Errorf("%s: cluster slots: %w", addr, err)
	}
	ranges, _ := reply.([]any)
	var parts []string
	covered := int64(0)
	for _, r := range ranges {
		// Each entry: [start, end, [ip, port, id, ...], replicas...].
		entry, _ := r.([]any)
		if len(entry) < 3 {
			return "", fmt.Errorf("%s: malformed CLUSTER SLOTS entry %v", addr, r)
		}
		start, _ := entry[0].(int64)
		end, _ := entry[1].(int64)
		master, _ := entry[2].([]any)
		if len(master) < 2 {
			return "", fmt.Errorf("%s: malformed CLUSTER SLOTS master %v", addr, entry[2])
		}
		covered += end - start + 1
		parts = append(parts, fmt.Sprintf("%d-%d@%v:%v", start, end, master[0], master[1]))
	}
	if covered != clusterSlots {
		return "", fmt.Errorf("%s: slots cover %d of %d", addr, covered, clusterSlots)
	}
	slices.Sort(parts)
	return strings.Join(parts, " "), nil
}

// Close stops every node and removes the cluster directory.
func (c *Cluster) Close() error {
	var errs []error
	for _, n := range c.Nodes {
		errs = append(errs, n.Close())
	}
	errs = append(errs, cleanupDir(c.Dir, true))
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close redis cluster: %w", err)
	}
	return nil
}
