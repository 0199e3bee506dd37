package faultrun

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/ordersaga/ordersaga/internal/localstack/kafkabroker"
	"github.com/ordersaga/ordersaga/internal/localstack/pgserver"
	"github.com/ordersaga/ordersaga/internal/localstack/ports"
	"github.com/ordersaga/ordersaga/internal/localstack/temporalserver"
)

// Stack is the servers of the run, started as the local stack starts them
// (PostgreSQL from the machine's binaries, kfake with a data directory, the
// Temporal dev server with a SQLite file), each on a free port with its
// data under the run's directory, so that each can be stopped, frozen or
// killed and brought back on the same port with its data.
type Stack struct {
	log *zap.Logger

	mu       sync.Mutex
	pgOpts   pgserver.Options
	pg       *pgserver.Server
	frozen   []int
	deadman  *exec.Cmd
	kOpts    kafkabroker.Options
	kafka    *kafkabroker.Broker
	tOpts    temporalserver.Options
	temporal *temporalserver.Server
}

// StartStack starts PostgreSQL, the broker and Temporal under dir.
func StartStack(ctx context.Context, dir, temporalCLI string, log *zap.Logger) (*Stack, error) {
	s := &Stack{
		log: log,
		// Durable (fsync on), as the local stack runs it: an immediate stop
		// must lose nothing that was committed.
		pgOpts: pgserver.Options{DataDir: filepath.Join(dir, "postgres"), Database: "ordersaga", Logger: log},
		kOpts:  kafkabroker.Options{DataDir: filepath.Join(dir, "kafka")},
		tOpts: temporalserver.Options{CLI: temporalCLI, DBFile: filepath.Join(dir, "temporal.db"),
			LogFile: filepath.Join(dir, "logs", "temporal.log"), Logger: log},
	}
	for _, start := range []struct {
		port *int
		run  func(context.Context) error
	}{{&s.pgOpts.Port, s.StartPostgres}, {&s.kOpts.Port, s.StartBroker}, {&s.tOpts.Port, s.StartTemporal}} {
		if err := onFreePort(ctx, start.port, start.run); err != nil {
			s.Close()
			return nil, err
		}
	}
	return s, nil
}

// onFreePort runs start on a free port, and again on another one when
// something else took the port between the choice and the start (other
// test binaries pick free ports on this machine too). The port it started
// on is kept in *port, for restarts.
func onFreePort(ctx context.Context, port *int, start func(context.Context) error) error {
	var err error
	for range 5 {
		if *port, err = ports.Free(); err != nil {
			return fmt.Errorf("find a free port: %w", err)
		}
		if err = start(ctx); err == nil || !portTaken(err) {
			return err
		}
	}
	return err
}

func portTaken(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "already taken") || strings.Contains(msg, "address already in use")
}

// DSN is the database's URL.
func (s *Stack) DSN() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", s.pgOpts.Port, s.pgOpts.Database)
}

// Brokers are the broker's addresses; they survive a restart.
func (s *Stack) Brokers() []string { return []string{"127.0.0.1:" + strconv.Itoa(s.kOpts.Port)} }

// TemporalAddress is the frontend's address; it survives a restart.
func (s *Stack) TemporalAddress() string { return "127.0.0.1:" + strconv.Itoa(s.tOpts.Port) }

// StartPostgres starts (or restarts) PostgreSQL on its port and data.
func (s *Stack) StartPostgres(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	pg, err := pgserver.Start(ctx, s.pgOpts)
	if err != nil {
		return fmt.Errorf("start postgres: %w", err)
	}
	s.pg = pg
	return nil
}

// StopPostgresImmediate runs `pg_ctl stop -m immediate`.
func (s *Stack) StopPostgresImmediate(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pg == nil {
		return fmt.Errorf("stop postgres: not running")
	}
	if err := s.pg.StopImmediate(ctx); err != nil {
		return err // still running: Close stops it
	}
	s.pg = nil
	return nil
}

// FreezePostgres stops every process of the cluster with SIGSTOP. A
// frozen server would outlive a run that is killed outright (its
// parent-death signal waits for a SIGCONT), so a detached dead man's
// switch thaws it after atMost whatever becomes of this process.
func (s *Stack) FreezePostgres(atMost time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pg == nil {
		return fmt.Errorf("freeze postgres: not running")
	}
	pids, err := s.pg.Freeze()
	s.frozen = pids
	if len(pids) > 0 {
		list := make([]string, len(pids))
		for i, p := range pids {
			list[i] = strconv.Itoa(p)
		}
		cmd := exec.Command("sh", "-c", fmt.Sprintf("sleep %d; kill -CONT %s", int(atMost.Seconds())+1, strings.Join(list, " ")))
		// Its own group and no parent-death signal: it must outlive us.
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if serr := cmd.Start(); serr != nil {
			s.log.Warn("no dead man's switch for the freeze", zap.Error(serr))
		} else {
			s.deadman = cmd
		}
	}
	return err
}

// ThawPostgres resumes what FreezePostgres stopped.
func (s *Stack) ThawPostgres() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.thawLocked()
}

func (s *Stack) thawLocked() {
	if s.pg != nil {
		s.pg.Thaw(s.frozen)
	}
	s.frozen = nil
	if s.deadman != nil {
		_ = s.deadman.Process.Kill()
		_ = s.deadman.Wait()
		s.deadman = nil
	}
}

// StartBroker starts (or restarts) the broker on its port and data.
func (s *Stack) StartBroker(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, err := kafkabroker.Start(ctx, s.kOpts)
	if err != nil {
		return fmt.Errorf("start kafka broker: %w", err)
	}
	s.kafka = b
	return nil
}

// StopBroker closes the broker; its data stays on disk.
func (s *Stack) StopBroker() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.kafka != nil {
		s.kafka.Stop()
		s.kafka = nil
	}
}

// StartTemporal starts (or restarts) the Temporal dev server on its port
// and SQLite file.
func (s *Stack) StartTemporal(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, err := temporalserver.Start(ctx, s.tOpts)
	if err != nil {
		return fmt.Errorf("start temporal: %w", err)
	}
	s.temporal = t
	return nil
}

// KillTemporal ends the Temporal server with SIGKILL.
func (s *Stack) KillTemporal() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.temporal == nil {
		return fmt.Errorf("kill temporal: not running")
	}
	if err := s.temporal.Kill(); err != nil {
		return err // perhaps still running: Close stops it
	}
	s.temporal = nil
	return nil
}

// Close stops every server that is running, thawing PostgreSQL first: a
// stopped process would not even see the signal that ends it.
func (s *Stack) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.thawLocked()
	if s.temporal != nil {
		s.temporal.Stop()
		s.temporal = nil
	}
	if s.kafka != nil {
		s.kafka.Stop()
		s.kafka = nil
	}
	if s.pg != nil {
		s.pg.Stop()
		s.pg = nil
	}
}
