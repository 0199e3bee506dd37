package loadgen

import (
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/prometheus/procfs"
)

// SelfProcess is the group under which a CPUMeter counts the load tool's
// own process: its clients and, for the ceiling, its no-op workers.
const SelfProcess = "this load process"

// CPUMeter reads the CPU time of a stack that runs on this machine: the
// process that listens on the gateway's port and all its descendants (for
// `make dev`, the one ordersaga process with its PostgreSQL and Temporal
// server children), grouped by command name, and the load process itself.
// Dividing the CPU a run used by its orders gives CPU per order for each
// process, which is where the order path's time goes when the cores are
// saturated.
type CPUMeter struct {
	fs   procfs.FS
	root int
	self int
}

// NewCPUMeter finds the process listening on port. It needs Linux's /proc,
// and to see the other process's file descriptors (the same user, or root).
func NewCPUMeter(port int) (*CPUMeter, error) {
	fs, err := procfs.NewDefaultFS()
	if err != nil {
		return nil, fmt.Errorf("cpu meter needs /proc: %w", err)
	}
	root, err := listener(fs, port)
	if err != nil {
		return nil, err
	}
	return &CPUMeter{fs: fs, root: root, self: os.Getpid()}, nil
}

// listener is the pid of the process holding the socket that listens on port.
func listener(fs procfs.FS, port int) (int, error) {
	const tcpListen = 0x0A
	inodes := map[string]bool{}
	//lint:ignore SA1019 /proc/net/tcp is all a benchmark needs to find one listener; sock_diag over netlink, which procfs points to, would be a dependency and a protocol for the same answer.
	for _, read := range []func() (procfs.NetTCP, error){fs.NetTCP, fs.NetTCP6} {
		lines, err := read()
		if err != nil {
			continue // a kernel without IPv6 has no tcp6 table
		}
		for _, l := range lines {
			if l.LocalPort == uint64(port) && l.St == tcpListen {
				inodes[fmt.Sprintf("socket:[%d]", l.Inode)] = true
			}
		}
	}
	if len(inodes) == 0 {
		return 0, fmt.Errorf("cpu meter: nothing listens on port %d of this machine", port)
	}
	procs, err := fs.AllProcs()
	if err != nil {
		return 0, fmt.Errorf("cpu meter: list processes: %w", err)
	}
	for _, p := range procs {
		targets, err := p.FileDescriptorTargets()
		if err != nil {
			continue // gone, or not ours to read
		}
		if slices.ContainsFunc(targets, func(t string) bool { return inodes[t] }) {
			return p.PID, nil
		}
	}
	return 0, fmt.Errorf("cpu meter: cannot see which process listens on port %d (run as its user or root)", port)
}

// CPU is CPU time by process group: a command name ("ordersaga",
// "temporal", "postgres") or SelfProcess.
type CPU map[string]time.Duration

// Read returns the CPU time used so far by the stack's processes and by
// this one (when it is not the stack's process: a test harness runs the
// services in its own process). A process's own time counts to its command name; the time of
// its children that have exited (a PostgreSQL backend that closed) counts
// to the parent's name, as the kernel reports it, so nothing is lost
// between two readings.
func (m *CPUMeter) Read() (CPU, error) {
	procs, err := m.fs.AllProcs()
	if err != nil {
		return nil, fmt.Errorf("cpu meter: list processes: %w", err)
	}
	stats := map[int]procfs.ProcStat{}
	children := map[int][]int{}
	for _, p := range procs {
		st, err := p.Stat()
		if err != nil {
			continue // exited while we looked
		}
		stats[p.PID] = st
		children[st.PPID] = append(children[st.PPID], p.PID)
	}
	if _, ok := stats[m.root]; !ok {
		return nil, fmt.Errorf("cpu meter: the stack's process %d has exited", m.root)
	}
	out := CPU{}
	add := func(group string, st procfs.ProcStat) {
		ticks := int64(st.UTime+st.STime) + int64(st.CUTime+st.CSTime)
		out[group] += time.Duration(ticks) * time.Second / 100 // USER_HZ is 100 on Linux
	}
	for queue := []int{m.root}; len(queue) > 0; queue = queue[1:] {
		pid := queue[0]
		if pid == m.self && pid != m.root {
			continue // counted below, as SelfProcess
		}
		add(stats[pid].Comm, stats[pid])
		queue = append(queue, children[pid]...)
	}
	if st, ok := stats[m.self]; ok && m.self != m.root {
		add(SelfProcess, st)
	}
	return out, nil
}

// Sub is the CPU used between an earlier reading and this one.
func (c CPU) Sub(earlier CPU) CPU {
	out := CPU{}
	for k, v := range c {
		out[k] = v - earlier[k]
	}
	return out
}
