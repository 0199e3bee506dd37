//go:build unix

package loadgen

import (
	"fmt"
	"syscall"
	"time"
)

// RaiseFileLimit raises this process's soft limit of open files to its
// hard limit, and fails if even that is below need: each websocket is a
// file descriptor.
func RaiseFileLimit(need int) error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("read the open-file limit: %w", err)
	}
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			return fmt.Errorf("raise the open-file limit to %d: %w", lim.Max, err)
		}
	}
	if lim.Cur < uint64(need) {
		return fmt.Errorf("this process may open %d files, and the run needs about %d: raise the hard limit (ulimit -Hn, or /etc/security/limits.conf) or run fewer clients",
			lim.Cur, need)
	}
	return nil
}

// processCPU is the CPU time this process has used, user and system.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
