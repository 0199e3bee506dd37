package pgserver

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The methods in this file inject the faults of the fault run
// (internal/faultrun): a crash-like stop and a stall of the whole server.
// Start brings a stopped server back on the same data directory and port.

// StopImmediate stops the server the way `pg_ctl stop -m immediate` does,
// by running it: every session ends at once, nothing is checkpointed, and
// the next start recovers from the WAL, as after a crash. It returns once
// the server has exited. Stop may still be called afterwards.
func (s *Server) StopImmediate(ctx context.Context) error {
	if s.cmd.Process == nil {
		return errors.New("stop postgres: the server was never started")
	}
	bin, err := BinDir()
	if err != nil {
		return err
	}
	dataDir, err := s.dataDir()
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, filepath.Join(bin, "pg_ctl"), "stop", "-D", dataDir, "-m", "immediate", "-w", "-t", "30")
	// pg_ctl refuses to run as root; it runs as the server's own user.
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cmd.SysProcAttr.Credential}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("pg_ctl stop -m immediate: %w: %s", err, strings.TrimSpace(string(out)))
	}
	select {
	case werr := <-s.done:
		// Put it back, so that Stop (which waits on done) returns at once.
		s.done <- werr
		return nil
	case <-time.After(30 * time.Second):
		return errors.New("stop postgres: pg_ctl returned but the server did not exit within 30s")
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Freeze stops (SIGSTOP) the postmaster and every process it forked: the
// server holds its connections open but answers nothing, as during a
// storage stall or a long lock. It returns the frozen pids for Thaw.
func (s *Server) Freeze() ([]int, error) {
	if s.cmd.Process == nil {
		return nil, errors.New("freeze postgres: the server was never started")
	}
	root := s.cmd.Process.Pid
	// The postmaster first, so that it forks no backend that the walk misses.
	if err := syscall.Kill(root, syscall.SIGSTOP); err != nil {
		return nil, fmt.Errorf("freeze postgres %d: %w", root, err)
	}
	pids := append([]int{root}, descendants(root)...)
	for _, pid := range pids[1:] {
		// A backend may have exited since the walk; that is fine.
		_ = syscall.Kill(pid, syscall.SIGSTOP)
	}
	return pids, nil
}

// Thaw resumes (SIGCONT) what Freeze stopped, and anything the postmaster
// forked since. It is safe to call on a server that is not frozen.
func (s *Server) Thaw(pids []int) {
	if s.cmd.Process == nil {
		return
	}
	seen := map[int]bool{}
	for _, pid := range append(descendants(s.cmd.Process.Pid), pids...) {
		if !seen[pid] {
			seen[pid] = true
			_ = syscall.Kill(pid, syscall.SIGCONT)
		}
	}
	_ = syscall.Kill(s.cmd.Process.Pid, syscall.SIGCONT)
}

// dataDir reads the -D argument the server was started with.
func (s *Server) dataDir() (string, error) {
	args := s.cmd.Args
	for i := 0; i+1 < len(args); i++ {
		if args[i] == "-D" {
			return args[i+1], nil
		}
	}
	return "", errors.New("postgres was started without -D")
}

// descendants lists the processes below pid, from /proc.
func descendants(pid int) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	children := map[int][]int{}
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if pp, ok := parentOf(p); ok {
			children[pp] = append(children[pp], p)
		}
	}
	var out []int
	queue := []int{pid}
	for len(queue) > 0 {
		next := queue[0]
		queue = queue[1:]
		for _, c := range children[next] {
			out = append(out, c)
			queue = append(queue, c)
		}
	}
	return out
}

// parentOf reads the parent pid from /proc/<pid>/stat. The command name
// (field 2) is in parentheses and may hold spaces, so the fields are read
// after its closing parenthesis.
func parentOf(pid int) (int, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, false
	}
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, false
	}
	fields := strings.Fields(string(b[i+1:]))
	if len(fields) < 2 {
		return 0, false
	}
	pp, err := strconv.Atoi(fields[1])
	return pp, err == nil
}
