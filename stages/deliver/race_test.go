//go:build race

package deliver

// raceEnabled scales the process tests down: the race detector makes the
// in-process fake providers several times slower.
const raceEnabled = true
