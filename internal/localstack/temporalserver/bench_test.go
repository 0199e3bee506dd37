package temporalserver_test

import (
	"context"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/ordersaga/ordersaga/internal/loadgen"
	"github.com/ordersaga/ordersaga/internal/localstack/temporalserver"
	"github.com/ordersaga/ordersaga/internal/testkit"
)

// BenchmarkSQLite measures what the dev server's SQLite settings cost the
// order's workflow: the ceiling (OrderWorkflow with no-op activities, 300
// workflows, 20 in flight) on three servers started side by side, one
// with a file in SQLite's default journal (a sync on every commit), one
// with the file in write-ahead-log mode as `make dev` runs it, and one
// in memory (what the tests use, and the most a file could reach). Rounds
// alternate between the servers so that all three see the same machine;
// it reports the median orders/s and p50 of each and the ratios to the
// default journal.
//
// Run: go test -run '^$' -bench SQLite -benchtime 1x ./internal/localstack/temporalserver/
func BenchmarkSQLite(b *testing.B) {
	dir := b.TempDir()
	setups := []struct {
		name string
		opts temporalserver.Options
	}{
		{"default-journal", temporalserver.Options{DBFile: filepath.Join(dir, "default.db"), SQLiteDefaults: true}},
		{"wal", temporalserver.Options{DBFile: filepath.Join(dir, "wal.db")}},
		{"memory", temporalserver.Options{}},
	}
	type figures struct{ perSecond, p50 []float64 }
	results := make([]figures, len(setups))
	var clients []func() (*loadgen.CeilingResult, error)
	for _, s := range setups {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		s.opts.Namespaces = []string{loadgen.CeilingNamespace}
		srv, err := temporalserver.Start(ctx, s.opts)
		cancel()
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(srv.Stop)
		c := testkit.TemporalClient(b, srv.Addr(), loadgen.CeilingNamespace)
		if err := loadgen.PrepareCeiling(context.Background(), c); err != nil {
			b.Fatal(err)
		}
		clients = append(clients, func() (*loadgen.CeilingResult, error) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			r, err := loadgen.Ceiling(ctx, c, 300, 20)
			return &r, err
		})
	}
	b.ResetTimer()
	for range b.N {
		for round := range 3 {
			for i, run := range clients {
				r, err := run()
				if err != nil {
					b.Fatalf("%s: %v", setups[i].name, err)
				}
				b.Logf("round %d %s: %.1f orders/s, p50 %s", round+1, setups[i].name, r.PerSecond, r.P50.Round(time.Millisecond))
				results[i].perSecond = append(results[i].perSecond, r.PerSecond)
				results[i].p50 = append(results[i].p50, r.P50.Seconds())
			}
		}
	}
	b.StopTimer()
	base := results[0]
	for i, s := range setups {
		rate, p50 := median(results[i].perSecond), median(results[i].p50)
		b.ReportMetric(rate, s.name+"-orders/s")
		b.ReportMetric(p50*1000, s.name+"-p50-ms")
		b.Logf("%s: median %.1f orders/s (%.2fx the default journal), p50 %.0f ms (%.2fx)", s.name,
			rate, rate/median(base.perSecond), p50*1000, p50/median(base.p50))
	}
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}
