package temporalserver

import (
	"errors"
	"syscall"
	"time"
)

// Kill ends the server with SIGKILL, as a crash or an OOM kill would: it
// gets no chance to flush or close anything. The fault run
// (internal/faultrun) uses it; Start with the same DBFile and Port brings
// the server back with its workflows. Stop may still be called afterwards.
func (s *Server) Kill() error {
	if s.cmd.Process == nil {
		return errors.New("kill temporal: the server was never started")
	}
	// The whole process group: the CLI may have forked helpers.
	_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
	select {
	case err := <-s.done:
		// Put it back, so that Stop (which waits on done) returns at once.
		s.done <- err
		return nil
	case <-time.After(15 * time.Second):
		return errors.New("kill temporal: the server did not exit within 15s of SIGKILL")
	}
}
