// Package temporalserver runs the official Temporal CLI's dev server (with
// its web UI) as a child process, for the local stack and the test harness.
// The CLI is pinned in the tools module and built by go on first use.
package temporalserver

import (
	"bytes"
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

	"go.temporal.io/sdk/client"
	"go.uber.org/zap"

	"github.com/ordersaga/ordersaga/internal/localstack/ports"
)

// Options describe the dev server to run.
type Options struct {
	// CLI is the temporal binary; empty means the pinned one (see Binary).
	CLI string
	// DBFile persists workflows across restarts; empty keeps them in memory.
	DBFile string
	// Port is the frontend gRPC port on 127.0.0.1; 0 picks a free one.
	Port int
	// UIPort serves the web UI; 0 runs headless.
	UIPort int
	// Namespaces are created at start, besides "default".
	Namespaces []string
	// LogFile receives the server's output; empty discards it.
	LogFile string
	Logger  *zap.Logger
	// WithoutWorkerHeartbeats runs the server as 1.29 runs by default,
	// keeping no worker heartbeats and refusing ListWorkers, for the test
	// of what the system status does on such a server.
	WithoutWorkerHeartbeats bool
	// SQLiteDefaults keeps SQLite's own journal and syncs for DBFile
	// instead of the write-ahead log: only for the benchmark that measures
	// what the pragmas buy.
	SQLiteDefaults bool
}

// Server is a running dev server that this process started.
type Server struct {
	cmd    *exec.Cmd
	done   chan error
	addr   string
	uiPort int
}

// Start runs the dev server and returns once its frontend answers.
func Start(ctx context.Context, opts Options) (*Server, error) {
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	cli := opts.CLI
	if cli == "" {
		var err error
		if cli, err = Binary(ctx, opts.Logger); err != nil {
			return nil, err
		}
	}
	if opts.Port == 0 {
		p, err := ports.Free()
		if err != nil {
			return nil, err
		}
		opts.Port = p
	} else if err := ports.CheckFree(opts.Port, "the Temporal server", "set DEV_TEMPORAL_PORT, or TEMPORAL_ADDRESS to use a running server"); err != nil {
		return nil, err
	}
	// The dev server also opens an HTTP API and a metrics port; give them
	// free ports so that two servers (a test run beside `make dev`) never collide.
	httpPort, err := ports.Free()
	if err != nil {
		return nil, err
	}
	metricsPort, err := ports.Free()
	if err != nil {
		return nil, err
	}
	args := []string{"server", "start-dev",
		"--ip", "127.0.0.1",
		"--port", strconv.Itoa(opts.Port),
		"--http-port", strconv.Itoa(httpPort),
		"--metrics-port", strconv.Itoa(metricsPort),
		"--log-level", "warn",
		// Let search attributes be used right after they are added.
		"--dynamic-config-value", "system.forceSearchAttributesCacheRefreshOnRead=true",
	}
	if !opts.WithoutWorkerHeartbeats {
		// Keep the workers' heartbeats and answer ListWorkers (both off by
		// default in server 1.29): the system status tells a stopped worker
		// from a running one by them within seconds, where pollers take a
		// minute to be forgotten.
		args = append(args,
			"--dynamic-config-value", "frontend.WorkerHeartbeatsEnabled=true",
			"--dynamic-config-value", "frontend.ListWorkersEnabled=true")
	}
	if opts.UIPort == 0 {
		args = append(args, "--headless")
	} else {
		if err := ports.CheckFree(opts.UIPort, "the Temporal UI", "set DEV_TEMPORAL_UI_PORT"); err != nil {
			return nil, err
		}
		args = append(args, "--ui-port", strconv.Itoa(opts.UIPort))
	}
	if opts.DBFile != "" {
		if err := os.MkdirAll(filepath.Dir(opts.DBFile), 0o755); err != nil {
			return nil, err
		}
		args = append(args, "--db-filename", opts.DBFile)
	}
	if opts.DBFile != "" && !opts.SQLiteDefaults {
		args = append(args,
			// SQLite's defaults (a rollback journal, a sync on every
			// commit) make the dev server's file the bottleneck of every
			// order: with a write-ahead log and syncs at checkpoints only,
			// the same server runs several times the workflows per second
			// (issue 13 measured 3.4x), and a crash of the machine, not of
			// the server, is what could lose its last commits.
			"--sqlite-pragma", "journal_mode=wal",
			"--sqlite-pragma", "synchronous=normal")
	}
	for _, ns := range opts.Namespaces {
		args = append(args, "--namespace", ns)
	}
	cmd := exec.Command(cli, args...)
	// Its own process group, so Stop reaches every process it forks.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	var out *os.File
	if opts.LogFile != "" {
		if out, err = os.OpenFile(opts.LogFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644); err != nil {
			return nil, err
		}
		cmd.Stdout, cmd.Stderr = out, out
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start temporal dev server: %w", err)
	}
	s := &Server{cmd: cmd, done: make(chan error, 1), addr: fmt.Sprintf("127.0.0.1:%d", opts.Port), uiPort: opts.UIPort}
	go func() {
		s.done <- cmd.Wait()
		if out != nil {
			out.Close()
		}
	}()
	if err := s.waitReady(ctx, opts.LogFile); err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

// Addr is the frontend's host:port.
func (s *Server) Addr() string { return s.addr }

// UIURL is the web UI's address, or "" when headless.
func (s *Server) UIURL() string {
	if s.uiPort == 0 {
		return ""
	}
	return fmt.Sprintf("http://127.0.0.1:%d", s.uiPort)
}

// Stop ends the server and waits for it to exit.
func (s *Server) Stop() {
	if s.cmd.Process == nil {
		return
	}
	_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(15 * time.Second):
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		<-s.done
	}
}

func (s *Server) waitReady(ctx context.Context, logFile string) error {
	deadline := time.Now().Add(90 * time.Second)
	for {
		err := Ping(ctx, s.addr, "default")
		if err == nil {
			return nil
		}
		select {
		case werr := <-s.done:
			s.done <- werr
			hint := ""
			if logFile != "" {
				hint = "; see " + logFile
			}
			return fmt.Errorf("temporal dev server exited during start (%v)%s", werr, hint)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("temporal dev server did not answer within 90s: %w", err)
		}
	}
}

// Ping returns nil when the server at addr answers a health check.
func Ping(ctx context.Context, addr, namespace string) error {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	c, err := client.DialContext(ctx, client.Options{HostPort: addr, Namespace: namespace, Logger: quiet{}})
	if err != nil {
		return err
	}
	defer c.Close()
	_, err = c.CheckHealth(ctx, &client.CheckHealthRequest{})
	return err
}

// Binary returns the path of the pinned Temporal CLI, building it from the
// tools module into .bin/ the first time (a few minutes; later runs reuse it).
func Binary(ctx context.Context, log *zap.Logger) (string, error) {
	root, err := ModuleRoot()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(root, ".bin", "temporal")
	if st, err := os.Stat(bin); err == nil && st.Mode()&0o111 != 0 {
		return bin, nil
	}
	log.Info("building the pinned Temporal CLI (once; takes a few minutes)", zap.String("into", bin))
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/temporalio/cli/cmd/temporal")
	cmd.Dir = filepath.Join(root, "tools")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("build the Temporal CLI from tools/go.mod (needs the Go module proxy, or set TEMPORAL_CLI): %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	return bin, nil
}

// ModuleRoot finds the ordersaga checkout by walking up from the working directory.
func ModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.HasPrefix(b, []byte("module github.com/ordersaga/ordersaga\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("not inside the ordersaga checkout: run from it, or set TEMPORAL_CLI (or TEMPORAL_ADDRESS)")
		}
		dir = parent
	}
}

// quiet drops the SDK's log lines while probing a server that is still starting.
type quiet struct{}

func (quiet) Debug(string, ...interface{}) {}
func (quiet) Info(string, ...interface{})  {}
func (quiet) Warn(string, ...interface{})  {}
func (quiet) Error(string, ...interface{}) {}
