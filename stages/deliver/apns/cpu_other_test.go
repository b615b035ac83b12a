//go:build !unix

package apns

import "time"

// processCPU is not measured here; the benches then report 0 CPU per send.
func processCPU() time.Duration { return 0 }
