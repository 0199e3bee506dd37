package faultrun

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.uber.org/zap"
)

// Service is one ordersaga service run as its own OS process, as in
// production: `ordersaga gateway`, `ordersaga ws`, `ordersaga worker …`.
type Service struct {
	Name string
	Args []string
	// Env is added to the run's environment (KEY=VALUE).
	Env []string
	// Ready answers 200 once the service is up.
	Ready string
}

// Procs runs the service processes: it starts them, kills them for a
// fault, and restarts any that exits by itself (as a supervisor would),
// reporting that exit, since a service must survive what the run does.
type Procs struct {
	ctx    context.Context
	bin    string
	logDir string
	env    []string
	log    *zap.Logger
	onExit func(service string, err error)

	// armed is set once every service has started: before, an exit is a
	// start that failed, which Start reports.
	armed atomic.Bool

	mu    sync.Mutex
	procs map[string]*proc
}

// Arm starts watching for exits the run did not cause.
func (p *Procs) Arm() { p.armed.Store(true) }

type proc struct {
	svc Service

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
	// want says the process should be running: an exit while it is set
	// was not the run's doing.
	want bool
}

// NewProcs returns a runner of bin's services with env as their common
// environment, logging each to logDir/<name>.log. onExit hears of every
// exit the run did not cause. ctx bounds the automatic restarts.
func NewProcs(ctx context.Context, bin, logDir string, env []string, log *zap.Logger, onExit func(service string, err error)) *Procs {
	return &Procs{ctx: ctx, bin: bin, logDir: logDir, env: env, log: log, onExit: onExit, procs: map[string]*proc{}}
}

// BuildBinary builds cmd/ordersaga of the module at root into dir.
func BuildBinary(ctx context.Context, root, dir string) (string, error) {
	bin := filepath.Join(dir, "ordersaga")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/ordersaga")
	cmd.Dir = root
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("build ordersaga: %w: %s", err, strings.TrimSpace(out.String()))
	}
	return bin, nil
}

// Start runs svc and waits until it is ready.
func (p *Procs) Start(ctx context.Context, svc Service) error {
	p.mu.Lock()
	pr := &proc{svc: svc}
	p.procs[svc.Name] = pr
	p.mu.Unlock()
	return p.startAndWait(ctx, pr)
}

// Restart starts a service that Kill stopped, and waits until it is ready.
func (p *Procs) Restart(ctx context.Context, name string) error {
	pr, err := p.get(name)
	if err != nil {
		return err
	}
	return p.startAndWait(ctx, pr)
}

// Kill ends the service with SIGKILL, as a crash or the OOM killer would:
// no shutdown hook runs.
func (p *Procs) Kill(name string) error {
	pr, err := p.get(name)
	if err != nil {
		return err
	}
	pr.mu.Lock()
	pr.want = false
	cmd, exited := pr.cmd, pr.exited
	pr.mu.Unlock()
	if cmd == nil {
		return fmt.Errorf("kill %s: not running", name)
	}
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	select {
	case <-exited:
		return nil
	case <-time.After(15 * time.Second):
		return fmt.Errorf("kill %s: still running 15s after SIGKILL", name)
	}
}

// StopAll asks every service to stop (SIGTERM) and kills those that have
// not stopped within 20 seconds.
func (p *Procs) StopAll() {
	p.mu.Lock()
	all := make([]*proc, 0, len(p.procs))
	for _, pr := range p.procs {
		all = append(all, pr)
	}
	p.mu.Unlock()
	var wg sync.WaitGroup
	for _, pr := range all {
		pr.mu.Lock()
		pr.want = false
		cmd, exited := pr.cmd, pr.exited
		pr.mu.Unlock()
		if cmd == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
			select {
			case <-exited:
			case <-time.After(20 * time.Second):
				p.log.Warn("service did not stop in time; killing it", zap.String("service", pr.svc.Name))
				_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
				<-exited
			}
		}()
	}
	wg.Wait()
}

func (p *Procs) get(name string) (*proc, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	pr, ok := p.procs[name]
	if !ok {
		return nil, fmt.Errorf("no service %q", name)
	}
	return pr, nil
}

func (p *Procs) startAndWait(ctx context.Context, pr *proc) error {
	exited, err := p.start(pr)
	if err != nil {
		return err
	}
	return waitReady(ctx, pr.svc, exited)
}

// start runs the process; the goroutine it leaves waits for its exit.
func (p *Procs) start(pr *proc) (chan struct{}, error) {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	if pr.cmd != nil {
		return nil, fmt.Errorf("start %s: already running", pr.svc.Name)
	}
	logFile, err := os.OpenFile(filepath.Join(p.logDir, logName(pr.svc.Name)), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", pr.svc.Name, err)
	}
	fmt.Fprintf(logFile, "=== faultrun: %s started at %s ===\n", pr.svc.Name, time.Now().UTC().Format(time.RFC3339Nano))
	cmd := exec.Command(p.bin, pr.svc.Args...)
	cmd.Env = append(append([]string(nil), p.env...), pr.svc.Env...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// Its own group, so that a kill reaches all of it; and it dies with the
	// run, so that a crashed run leaves no service behind.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start %s: %w", pr.svc.Name, err)
	}
	exited := make(chan struct{})
	pr.cmd, pr.exited, pr.want = cmd, exited, true
	go p.wait(pr, cmd, exited, logFile)
	return exited, nil
}

func (p *Procs) wait(pr *proc, cmd *exec.Cmd, exited chan struct{}, logFile *os.File) {
	err := cmd.Wait()
	fmt.Fprintf(logFile, "=== faultrun: %s exited at %s: %v ===\n", pr.svc.Name, time.Now().UTC().Format(time.RFC3339Nano), err)
	logFile.Close()
	pr.mu.Lock()
	unplanned := pr.want && pr.cmd == cmd
	pr.cmd = nil
	pr.mu.Unlock()
	close(exited)
	if !unplanned || !p.armed.Load() {
		return
	}
	if err == nil {
		err = errors.New("exit status 0")
	}
	p.log.Warn("service exited by itself; restarting it", zap.String("service", pr.svc.Name), zap.Error(err))
	p.onExit(pr.svc.Name, err)
	select {
	case <-p.ctx.Done():
		return
	case <-time.After(2 * time.Second):
	}
	pr.mu.Lock()
	again := pr.cmd == nil && pr.want
	pr.mu.Unlock()
	if again {
		if _, err := p.start(pr); err != nil {
			p.log.Error("restart failed", zap.String("service", pr.svc.Name), zap.Error(err))
		}
	}
}

// waitReady polls the service's ready URL until it answers 200.
func waitReady(ctx context.Context, svc Service, exited chan struct{}) error {
	deadline := time.Now().Add(90 * time.Second)
	client := &http.Client{Timeout: 2 * time.Second}
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, svc.Ready, nil)
		if err != nil {
			return err
		}
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-exited:
			return fmt.Errorf("%s exited while starting; see its log %s", svc.Name, logName(svc.Name))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s was not ready within 90s (%s)", svc.Name, svc.Ready)
		}
	}
}

func logName(service string) string { return strings.ReplaceAll(service, " ", "-") + ".log" }
