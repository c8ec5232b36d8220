package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"

	"golang.org/x/sys/unix"
)

// Pinning: by default "run" binds the load client to one CPU and each
// server to another, each process with GOMAXPROCS 1, so that client and
// server never take turns on the same core and the scheduler moves
// neither. Unpinned, on two cores shared with other work, a round lands
// in a fast or a slow regime (the same library's echo CPU per message
// moved between 5.6 and 8.5 µs from one round to the next), and the
// libraries' ratios followed the regime rather than the library.
const (
	clientCPU = 0
	serverCPU = 1
)

// canPin reports whether this machine has the two CPUs pinning uses.
func canPin() bool {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return false
	}
	return set.IsSet(clientCPU) && set.IsSet(serverCPU)
}

// pinProcess binds every thread of this process to cpu and sets
// GOMAXPROCS to 1. Threads the runtime starts later are cloned from
// pinned ones and inherit the binding; a thread started while the
// bindings are being set is caught by the next pass.
func pinProcess(cpu int) error {
	var want unix.CPUSet
	want.Set(cpu)
	runtime.GOMAXPROCS(1)
	for pass := 0; ; pass++ {
		tasks, err := os.ReadDir("/proc/self/task")
		if err != nil {
			return err
		}
		changed := false
		for _, t := range tasks {
			tid, err := strconv.Atoi(t.Name())
			if err != nil {
				continue
			}
			var got unix.CPUSet
			if err := unix.SchedGetaffinity(tid, &got); err == nil && got == want {
				continue
			}
			if err := unix.SchedSetaffinity(tid, &want); err != nil && err != unix.ESRCH {
				return fmt.Errorf("binding thread %d to CPU %d: %w", tid, cpu, err)
			}
			changed = true
		}
		if !changed {
			return nil
		}
		if pass == 10 {
			return fmt.Errorf("threads kept appearing while binding to CPU %d", cpu)
		}
	}
}
