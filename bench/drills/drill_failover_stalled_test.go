//go:build drill_wip

package drills

import "testing"

// (g') Drill (g) with writes lost: the master is killed after 200 devices
// of its partitions were sent while its replica was behind. Not run by
// `make test` (build tag drill_wip): it fails about one run in three. The
// campaign ends done with every device reached and the duplicates inside
// the window, but the sent count short, and `pushpipe replay --resplit`
// sends and counts nothing more: 19,067 and 19,873 of 20,000 seen (in the
// second, partition 4 on the dead master: 2,495 devices reached, 2,368
// counted). Both failing runs had sends to the dead master's partitions
// accepted within 10 ms after the kill (in flight at it); the passing runs
// none for about 4 s. Run it with
//
//	go test -tags drill_wip -race -run TestDrillClusterFailoverLosingWrites -count=3 ./bench/drills
func TestDrillClusterFailoverLosingWrites(t *testing.T) { failoverDrill(t, 200) }
