package pgserver

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ordersaga/ordersaga/internal/localstack/ports"
)

// A frozen server answers nothing until it is thawed; an immediate stop
// loses nothing committed, and Start brings the server back on its port.
func TestFreezeThawAndImmediateStop(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	port, err := ports.Free()
	if err != nil {
		t.Fatal(err)
	}
	opts := Options{DataDir: filepath.Join(t.TempDir(), "data"), Port: port, Database: "faults"}
	s, err := Start(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if s != nil {
			s.Stop()
		}
	}()
	exec := func(sql string, timeout time.Duration) error {
		qctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		conn, err := pgx.Connect(qctx, s.DSN())
		if err != nil {
			return err
		}
		defer conn.Close(context.Background())
		_, err = conn.Exec(qctx, sql)
		return err
	}
	if err := exec(`CREATE TABLE kept (n int); INSERT INTO kept VALUES (42)`, 10*time.Second); err != nil {
		t.Fatal(err)
	}

	// A session opened before the freeze must stall too, not only new ones.
	before, err := pgx.Connect(ctx, s.DSN())
	if err != nil {
		t.Fatal(err)
	}
	defer before.Close(context.Background())

	pids, err := s.Freeze()
	if err != nil {
		t.Fatal(err)
	}
	if len(pids) < 2 {
		t.Fatalf("froze %v: want the postmaster and its background processes", pids)
	}
	if err := exec(`SELECT 1`, 2*time.Second); err == nil {
		s.Thaw(pids)
		t.Fatal("a frozen server accepted a connection")
	}
	qctx, cancelQ := context.WithTimeout(ctx, 2*time.Second)
	_, err = before.Exec(qctx, `SELECT 1`)
	cancelQ()
	if err == nil {
		s.Thaw(pids)
		t.Fatal("a frozen server answered on a session opened before the freeze")
	}
	s.Thaw(pids)
	if err := exec(`SELECT 1`, 10*time.Second); err != nil {
		t.Fatalf("after the thaw: %v", err)
	}

	if err := s.StopImmediate(ctx); err != nil {
		t.Fatal(err)
	}
	if err := exec(`SELECT 1`, 2*time.Second); err == nil {
		t.Fatal("a stopped server answered")
	}
	if s, err = Start(ctx, opts); err != nil {
		t.Fatalf("start after an immediate stop: %v", err)
	}
	qctx, cancel2 := context.WithTimeout(ctx, 10*time.Second)
	defer cancel2()
	conn, err := pgx.Connect(qctx, s.DSN())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var n int
	if err := conn.QueryRow(qctx, `SELECT n FROM kept`).Scan(&n); err != nil || n != 42 {
		t.Fatalf("committed row after recovery: %d, %v", n, err)
	}
}
