package bench

import (
	"testing"

	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
)

// TestMain starts no servers (each bench.Run starts its own); Main removes
// the pushpipe binary pipelinetest.Binary built for the tests, if it built one.
func TestMain(m *testing.M) { pipelinetest.Main(m, pipelinetest.EnvOptions{}, nil) }
