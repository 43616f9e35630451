//go:build !unix

package bootstorm

import "time"

// processCPU is not measured here: the bench then reports no CPU per release.
func processCPU() time.Duration { return 0 }
