// Package pgserver runs a PostgreSQL server from the machine's own server
// binaries, for the local stack and the test harness.
package pgserver

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"

	"github.com/ordersaga/ordersaga/internal/localstack/ports"
)

// Options describe the server to run.
type Options struct {
	// DataDir holds the cluster; it is initialised on first use and reused after.
	DataDir string
	// Port is the TCP port on 127.0.0.1.
	Port int
	// Database is created if missing; the DSN points at it.
	Database string
	// Ephemeral trades durability for speed (fsync off): for tests only.
	Ephemeral bool
	Logger    *zap.Logger
}

// Server is a running PostgreSQL server that this process started.
type Server struct {
	cmd  *exec.Cmd
	done chan error
	dsn  string
	log  *zap.Logger
}

// ErrNoBinaries says the PostgreSQL server binaries are not installed.
var ErrNoBinaries = errors.New("PostgreSQL server binaries (initdb, postgres) not found on PATH or under /usr/lib/postgresql/*/bin: install them (apt-get install postgresql postgresql-contrib) or set DATABASE_URL")

// BinDir finds the directory holding initdb and postgres.
func BinDir() (string, error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		dir := filepath.Dir(p)
		if _, err := os.Stat(filepath.Join(dir, "postgres")); err == nil {
			return dir, nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	// Highest major version first.
	sort.Slice(dirs, func(i, j int) bool { return versionOf(dirs[i]) > versionOf(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	return "", ErrNoBinaries
}

// hasLibrary reports whether the server in binDir has the module lib
// installed, where the usual layouts put it beside the binaries: Debian's
// /usr/lib/postgresql/<v>/lib, or <prefix>/lib and <prefix>/lib/postgresql.
// binDir may hold links to the binaries (/usr/local/bin), so the server's
// binary is resolved first.
func hasLibrary(binDir, lib string) bool {
	server, err := filepath.EvalSymlinks(filepath.Join(binDir, "postgres"))
	if err != nil {
		return false
	}
	prefix := filepath.Dir(filepath.Dir(server))
	for _, dir := range []string{filepath.Join(prefix, "lib"), filepath.Join(prefix, "lib", "postgresql")} {
		for _, ext := range []string{".so", ".dylib"} {
			if _, err := os.Stat(filepath.Join(dir, lib+ext)); err == nil {
				return true
			}
		}
	}
	return false
}

func versionOf(binDir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return v
}

// Start initialises opts.DataDir if it is empty and runs the server on
// opts.Port until Stop or ctx ends. It returns once the server accepts
// connections and opts.Database exists.
func Start(ctx context.Context, opts Options) (*Server, error) {
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	bin, err := BinDir()
	if err != nil {
		return nil, err
	}
	if err := ports.CheckFree(opts.Port, "PostgreSQL", "set DEV_POSTGRES_PORT, or DATABASE_URL to use a running server"); err != nil {
		return nil, err
	}
	dataDir, err := filepath.Abs(opts.DataDir)
	if err != nil {
		return nil, err
	}
	cred, err := serverUser(dataDir)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(dataDir, "PG_VERSION")); errors.Is(err, os.ErrNotExist) {
		if err := initdb(ctx, bin, dataDir, cred, opts.Ephemeral); err != nil {
			return nil, err
		}
	}
	args := []string{
		"-D", dataDir,
		"-p", strconv.Itoa(opts.Port),
		"-c", "listen_addresses=127.0.0.1",
		"-c", "unix_socket_directories=" + dataDir,
		"-c", "max_connections=300",
		"-c", "shared_buffers=128MB",
	}
	// pg_stat_statements gives the monitoring its slowest statements; it
	// must be loaded when the server starts. The server would not start
	// without the library (postgresql-contrib), so it is loaded only if
	// installed: the monitoring says when it is missing.
	if hasLibrary(bin, "pg_stat_statements") {
		args = append(args, "-c", "shared_preload_libraries=pg_stat_statements")
	}
	if opts.Ephemeral {
		args = append(args, "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off")
	}
	cmd := exec.Command(filepath.Join(bin, "postgres"), args...)
	// Pdeathsig: if this process dies, the server shuts down (fast) instead of lingering.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: cred, Pdeathsig: syscall.SIGINT}
	logFile, err := os.OpenFile(filepath.Join(dataDir, "server.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("postgres log: %w", err)
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start postgres: %w", err)
	}
	s := &Server{cmd: cmd, done: make(chan error, 1), log: opts.Logger}
	go func() { s.done <- cmd.Wait(); logFile.Close() }()

	db := opts.Database
	if db == "" {
		db = "postgres"
	}
	admin := fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", opts.Port)
	if err := s.waitReady(ctx, admin, filepath.Join(dataDir, "server.log")); err != nil {
		s.Stop()
		return nil, err
	}
	if err := createDatabase(ctx, admin, db); err != nil {
		s.Stop()
		return nil, err
	}
	s.dsn = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", opts.Port, db)
	return s, nil
}

// DSN is the URL of the server's database, as superuser postgres.
func (s *Server) DSN() string { return s.dsn }

// Stop shuts the server down (fast mode: sessions are ended, data is safe)
// and waits for it to exit.
func (s *Server) Stop() {
	if s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-s.done:
	case <-time.After(20 * time.Second):
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		<-s.done
	}
}

func (s *Server) waitReady(ctx context.Context, dsn, logPath string) error {
	deadline := time.After(60 * time.Second)
	for {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		conn, err := pgx.Connect(cctx, dsn)
		cancel()
		if err == nil {
			conn.Close(ctx)
			return nil
		}
		select {
		case err := <-s.done:
			s.done <- err
			return fmt.Errorf("postgres exited during start (%v); see %s: %s", err, logPath, tail(logPath))
		case <-deadline:
			return fmt.Errorf("postgres did not accept connections within 60s; see %s", logPath)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func initdb(ctx context.Context, bin, dataDir string, cred *syscall.Credential, ephemeral bool) error {
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", dataDir, err)
	}
	if cred != nil {
		if err := os.Chown(dataDir, int(cred.Uid), int(cred.Gid)); err != nil {
			return fmt.Errorf("chown %s: %w", dataDir, err)
		}
	}
	args := []string{"-D", dataDir, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C"}
	if ephemeral {
		args = append(args, "--no-sync")
	}
	cmd := exec.CommandContext(ctx, filepath.Join(bin, "initdb"), args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("initdb %s: %w: %s", dataDir, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// serverUser returns the credentials to run the server with. PostgreSQL
// refuses to run as root, so as root it runs as the "postgres" (or "nobody")
// user, which must be able to reach the data directory.
func serverUser(dataDir string) (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	var u *user.User
	var err error
	for _, name := range []string{"postgres", "nobody"} {
		if u, err = user.Lookup(name); err == nil {
			break
		}
	}
	if u == nil {
		return nil, errors.New("running as root and neither a postgres nor a nobody user exists: PostgreSQL will not run as root")
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	// Every parent must be searchable by that user.
	for dir := filepath.Dir(dataDir); ; dir = filepath.Dir(dir) {
		if st, err := os.Stat(dir); err == nil && st.Mode().Perm()&0o001 == 0 {
			if err := os.Chmod(dir, st.Mode().Perm()|0o011); err != nil {
				return nil, fmt.Errorf("make %s reachable for user %s: %w", dir, u.Username, err)
			}
		}
		if dir == "/" || dir == "." {
			break
		}
	}
	if st, err := os.Stat(dataDir); err == nil {
		if sys, ok := st.Sys().(*syscall.Stat_t); ok && int(sys.Uid) != uid {
			if err := chownR(dataDir, uid, gid); err != nil {
				return nil, err
			}
		}
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

func chownR(dir string, uid, gid int) error {
	return filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, gid)
	})
}

func createDatabase(ctx context.Context, adminDSN, name string) error {
	conn, err := pgx.Connect(ctx, adminDSN)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		return fmt.Errorf("look up database %s: %w", name, err)
	}
	if exists {
		return nil
	}
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return fmt.Errorf("create database %s: %w", name, err)
	}
	return nil
}

func tail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 5 {
		lines = lines[len(lines)-5:]
	}
	return strings.Join(lines, " | ")
}
