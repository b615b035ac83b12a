package localserver

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// ClusterOptions shape StartClusterOf's cluster.
type ClusterOptions struct {
	Masters  int // at least 3, as redis-cli requires
	Replicas int // per master (0: masters only)
	// NodeTimeout is cluster-node-timeout: how long a master is unreachable
	// before its replica takes over (default 5 s, the deploy guide's; a
	// failover drill sets less, to be quick).
	NodeTimeout time.Duration
	Node        RedisOptions // every node's (its Dir aside, as StartClusterWith)
}

func (o ClusterOptions) nodeTimeout() string {
	return strconv.FormatInt(cmp.Or(o.NodeTimeout, 5*time.Second).Milliseconds(), 10)
}

// StartClusterOf starts a cluster of o.Masters masters with o.Replicas
// replicas each, and returns once every node agrees on the slot map (as
// StartCluster) and every replica has finished its first sync with its
// master.
func StartClusterOf(o ClusterOptions) (*Cluster, error) {
	c, err := startCluster(o)
	if err != nil {
		return nil, fmt.Errorf("start redis cluster: %w", err)
	}
	return c, nil
}

// Node is the node listening on addr, nil if none of the cluster's.
func (c *Cluster) Node(addr string) *Redis {
	for _, n := range c.Nodes {
		if n.Addr == addr {
			return n
		}
	}
	return nil
}

// replication is a node's INFO replication, as key → value.
func replication(addr string) (map[string]string, error) {
	reply, err := redisDo(addr, time.Second, "INFO", "replication")
	if err != nil {
		return nil, fmt.Errorf("%s: info replication: %w", addr, err)
	}
	info, _ := reply.(string)
	m := map[string]string{}
	for line := range strings.SplitSeq(info, "\r\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			m[k] = v
		}
	}
	return m, nil
}

// waitReplicas waits until want replicas have their link to their master
// up and its first sync done.
func (c *Cluster) waitReplicas(want int, timeout time.Duration) error {
	if want == 0 {
		return nil
	}
	deadline := time.Now().Add(timeout)
	for {
		up, err := 0, error(nil)
		for _, addr := range c.Addrs {
			var r map[string]string
			if r, err = replication(addr); err != nil {
				break
			}
			if r["role"] == "slave" && r["master_link_status"] == "up" && r["master_sync_in_progress"] == "0" {
				up++
			}
		}
		if err == nil && up == want {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d replicas in sync after %v: %w", up, want, timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// WaitReplicasSynced waits until every replica of the running nodes has
// every write its master had when it was called (its replication offset
// reached the master's): what a failover drill waits for before it starts,
// so that what the failover loses is what was written since.
func (c *Cluster) WaitReplicasSynced(timeout time.Duration) error {
	want := map[string]int64{} // replica → its master's offset now
	for _, n := range c.Nodes {
		if n.proc.exited() {
			continue
		}
		r, err := replication(n.Addr)
		if err != nil {
			return err
		}
		if r["role"] != "slave" {
			continue
		}
		m, err := replication(r["master_host"] + ":" + r["master_port"])
		if err != nil {
			return err
		}
		if want[n.Addr], err = strconv.ParseInt(m["master_repl_offset"], 10, 64); err != nil {
			return fmt.Errorf("%s:%s: master_repl_offset %q: %w", r["master_host"], r["master_port"], m["master_repl_offset"], err)
		}
	}
	deadline := time.Now().Add(timeout)
	for addr, off := range want {
		for {
			r, err := replication(addr)
			if err == nil {
				got, _ := strconv.ParseInt(r["slave_repl_offset"], 10, 64)
				if r["master_link_status"] == "up" && got >= off {
					break
				}
				err = fmt.Errorf("link %s, offset %d of %d", r["master_link_status"], got, off)
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("replica %s not in sync after %v: %w", addr, timeout, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return nil
}

// SlotOwner is the address of the master serving slot, as addr sees it.
func SlotOwner(addr string, slot int) (string, error) {
	reply, err := redisDo(addr, time.Second, "CLUSTER", "SLOTS")
	if err != nil {
		return "", fmt.Errorf("%s: cluster slots: %w", addr, err)
	}
	ranges, _ := reply.([]any)
	for _, r := range ranges {
		entry, _ := r.([]any)
		if len(entry) < 3 {
			continue
		}
		lo, _ := entry[0].(int64)
		hi, _ := entry[1].(int64)
		master, _ := entry[2].([]any)
		if int64(slot) >= lo && int64(slot) <= hi && len(master) >= 2 {
			return fmt.Sprintf("%v:%v", master[0], master[1]), nil
		}
	}
	return "", fmt.Errorf("%s: slot %d has no owner", addr, slot)
}

// WaitFailover waits until the cluster has recovered from the loss of the
// master at dead: every node still running reports cluster_state:ok and
// the same complete slot map, in which slot is served by another master
// (its replica, promoted). It returns that master's address.
func (c *Cluster) WaitFailover(dead string, slot int, timeout time.Duration) (string, error) {
	deadline := time.Now().Add(timeout)
	for {
		owner, err := c.agreedOwner(dead, slot)
		if err == nil && owner == dead {
			err = fmt.Errorf("slot %d still served by %s", slot, dead)
		}
		if err == nil {
			return owner, nil
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("no failover of %s after %v: %w", dead, timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// agreedOwner is the master of slot, once every running node but skip
// reports cluster_state:ok and the same complete slot map.
func (c *Cluster) agreedOwner(skip string, slot int) (string, error) {
	var first, owner string
	for _, n := range c.Nodes {
		if n.Addr == skip || n.proc.exited() {
			continue
		}
		reply, err := redisDo(n.Addr, time.Second, "CLUSTER", "INFO")
		if err != nil {
			return "", fmt.Errorf("%s: cluster info: %w", n.Addr, err)
		}
		if info, _ := reply.(string); !strings.Contains(info, "cluster_state:ok") {
			return "", fmt.Errorf("%s: cluster_state is not ok", n.Addr)
		}
		slots, err := slotMap(n.Addr)
		if err != nil {
			return "", err
		}
		if first == "" {
			first = slots
		} else if slots != first {
			return "", fmt.Errorf("%s disagrees on slots: %s vs %s", n.Addr, slots, first)
		}
		if owner, err = SlotOwner(n.Addr, slot); err != nil {
			return "", err
		}
	}
	if owner == "" {
		return "", errors.New("no node running")
	}
	return owner, nil
}

// MigrateSlot moves slot from the master at from to the master at to, by
// the steps of a resharding (as `redis-cli --cluster reshard` takes them):
// CLUSTER SETSLOT IMPORTING on to and MIGRATING on from, MIGRATE of its
// keys batch at a time, pause after each batch (clients meanwhile meet
// ASK and TRYAGAIN), then SETSLOT NODE on to, from and every other master.
// It returns how many keys it moved.
func (c *Cluster) MigrateSlot(slot int, from, to string, batch int, pause time.Duration) (int, error) {
	n, err := c.migrateSlot(slot, from, to, batch, pause)
	if err != nil {
		return n, fmt.Errorf("migrate slot %d from %s to %s: %w", slot, from, to, err)
	}
	return n, nil
}

func (c *Cluster) migrateSlot(slot int, from, to string, batch int, pause time.Duration) (moved int, err error) {
	fromID, err := redisDo(from, time.Second, "CLUSTER", "MYID")
	if err != nil {
		return 0, err
	}
	toID, err := redisDo(to, time.Second, "CLUSTER", "MYID")
	if err != nil {
		return 0, err
	}
	s := strconv.Itoa(slot)
	if _, err := redisDo(to, time.Second, "CLUSTER", "SETSLOT", s, "IMPORTING", fromID.(string)); err != nil {
		return 0, fmt.Errorf("importing: %w", err)
	}
	if _, err := redisDo(from, time.Second, "CLUSTER", "SETSLOT", s, "MIGRATING", toID.(string)); err != nil {
		return 0, fmt.Errorf("migrating: %w", err)
	}
	host, port, _ := strings.Cut(to, ":")
	for {
		reply, err := redisDo(from, time.Second, "CLUSTER", "GETKEYSINSLOT", s, strconv.Itoa(batch))
		if err != nil {
			return moved, fmt.Errorf("getkeysinslot: %w", err)
		}
		keys, _ := reply.([]any)
		if len(keys) == 0 {
			break
		}
		args := []string{"MIGRATE", host, port, "", "0", "10000", "KEYS"}
		for _, k := range keys {
			args = append(args, k.(string))
		}
		if _, err := redisDo(from, 15*time.Second, args...); err != nil {
			return moved, fmt.Errorf("%v: %w", args, err)
		}
		moved += len(keys)
		time.Sleep(pause)
	}
	// The new owner first, so that it serves the slot before the old one
	// redirects there (redis-cli's order).
	var errs []error
	for _, addr := range append([]string{to, from}, c.mastersBut(to, from)...) {
		if _, err := redisDo(addr, time.Second, "CLUSTER", "SETSLOT", s, "NODE", toID.(string)); err != nil {
			errs = append(errs, fmt.Errorf("%s: setslot node: %w", addr, err))
		}
	}
	return moved, errors.Join(errs...)
}

// mastersBut are the running masters other than those in but.
func (c *Cluster) mastersBut(but ...string) []string {
	var out []string
	for _, n := range c.Nodes {
		if n.proc.exited() || slices.Contains(but, n.Addr) {
			continue
		}
		if r, err := replication(n.Addr); err == nil && r["role"] == "master" {
			out = append(out, n.Addr)
		}
	}
	return out
}

// WaitSlotOwner waits until every running node reports cluster_state:ok, the
// same complete slot map, and slot served by owner: a resharding has
// reached every node.
func (c *Cluster) WaitSlotOwner(slot int, owner string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		got, err := c.agreedOwner("", slot)
		if err == nil && got == owner {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("slot %d not served by %s on every node after %v (owner %q): %w", slot, owner, timeout, got, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// StallReplica cuts master's replication: it freezes master's replica
// (SIGSTOP) and closes their link (CLIENT KILL TYPE replica), so that what
// master acknowledges from then on is on master alone, as when replication
// has fallen behind; a failover drill kills master a moment later, and the
// writes of that moment are lost with it. Thaw the replica it returns to
// let it go on (and take over).
func (c *Cluster) StallReplica(master string) (*Redis, error) {
	var replica *Redis
	for _, n := range c.Nodes {
		if n.proc.exited() {
			continue
		}
		if r, err := replication(n.Addr); err == nil && r["role"] == "slave" && r["master_host"]+":"+r["master_port"] == master {
			replica = n
		}
	}
	if replica == nil {
		return nil, fmt.Errorf("stall the replica of %s: it has none running", master)
	}
	if err := replica.Freeze(); err != nil {
		return nil, err
	}
	if _, err := redisDo(master, time.Second, "CLIENT", "KILL", "TYPE", "replica"); err != nil {
		replica.Thaw()
		return nil, fmt.Errorf("stall the replica of %s: client kill: %w", master, err)
	}
	return replica, nil
}
