//go:build unix

package spec

import (
	"syscall"
	"time"
)

// cpuTime is the process's user+system CPU, GC included, for the benchmarks' cpu-ms/op.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
