//go:build drill_wip

package drills

import "testing"

// (g') Drill (g) with writes lost: the master is killed after 200 devices
// of its partitions were sent while its replica was behind. Not run by
// `make test` (build tag drill_wip): it fails about one run in two or
// three, the campaign done with everyone reached but its sent count short
// (19,067 and 19,565 of 20,000 seen) even after `pushpipe replay
// --resplit`. Run it with
//
//	go test -tags drill_wip -race -run TestDrillClusterFailoverLosingWrites -count=3 ./bench/drills
func TestDrillClusterFailoverLosingWrites(t *testing.T) { failoverDrill(t, 200) }
