package pipelinetest

import (
	"fmt"
	"os"
	"sync"
	"testing"

	"github.com/pushpipe/pushpipe/bench/localserver"
)

// shared is the cluster SharedClusterT starts once per test binary; Main
// closes it after the tests.
var shared struct {
	main    bool // Main runs the tests: it will close the cluster
	once    sync.Once
	cluster *Cluster
	err     error
}

// SharedClusterT is a 3-master Redis Cluster shared by every test of the
// binary that asks for it: the first caller starts it (a cluster's start is
// seconds on a loaded machine, and a package's cluster tests each paid it),
// and Main closes it after the last test. Only for tests that keep to keys
// of their own (a random key prefix) and leave the cluster whole: none may
// flush, kill, freeze, reshard or reconfigure it, nor read keys it did not
// write (SCAN, DBSIZE, INFO keyspace); such a test takes ClusterT. A
// cluster that failed to start fails every caller. The package's TestMain
// must be Main, which closes it: nothing else would stop its nodes.
func SharedClusterT(t testing.TB) *Cluster {
	t.Helper()
	if !shared.main {
		t.Fatal("SharedClusterT needs pipelinetest.Main as the package's TestMain, which closes the cluster")
	}
	shared.once.Do(func() {
		shared.cluster, shared.err = localserver.StartCluster(localserver.ClusterMasters)
	})
	if shared.err != nil {
		t.Fatal(shared.err)
	}
	return shared.cluster
}

// closeShared stops the cluster SharedClusterT started, if it did; false
// when that failed, which fails the run (it would leave nodes behind).
func closeShared() bool {
	if shared.cluster == nil {
		return true
	}
	if err := shared.cluster.Close(); err != nil {
		fmt.Fprintf(os.Stderr, "pipelinetest: shared cluster: %v\n", err)
		return false
	}
	return true
}
