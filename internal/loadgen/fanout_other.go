//go:build !unix

package loadgen

import "time"

// RaiseFileLimit does nothing where there is no RLIMIT_NOFILE; a dial
// that runs out of handles fails the run with its own error.
func RaiseFileLimit(int) error { return nil }

// processCPU is unknown here: the report shows none.
func processCPU() time.Duration { return 0 }
