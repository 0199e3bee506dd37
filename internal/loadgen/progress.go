package loadgen

import (
	"context"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// progress shows a run's live figures: a progress bar on a terminal, or a
// line every few seconds elsewhere (a CI log, a file), where a redrawn
// bar would be noise.
type progress struct {
	w        io.Writer
	terminal bool
	total    int64 // orders, or seconds with a duration only
	byTime   bool
}

func newProgress(cfg Config) *progress {
	if cfg.Progress == nil {
		return nil
	}
	p := &progress{w: cfg.Progress, total: int64(cfg.Orders)}
	if f, ok := cfg.Progress.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		p.terminal = true
	}
	if cfg.Orders <= 0 {
		p.total, p.byTime = int64(cfg.Duration/time.Second), true
	}
	return p
}

// start shows the figures of g until the returned stop is called.
func (p *progress) start(ctx context.Context, g *generator) (stop func()) {
	if p == nil {
		return func() {}
	}
	began := time.Now()
	line := func() string {
		placed, ended, errs, inFlight := g.live()
		secs := time.Since(began).Seconds()
		return fmt.Sprintf("%d placed, %d ended (%.1f/s), %d in flight, %d errors", placed, ended, float64(ended)/max(secs, 1e-3), inFlight, errs)
	}
	at := func() int64 {
		if p.byTime {
			return int64(time.Since(began) / time.Second)
		}
		_, ended, _, _ := g.live()
		return int64(ended)
	}
	var bar *progressbar.ProgressBar
	every := 5 * time.Second
	if p.terminal {
		every = 200 * time.Millisecond
		bar = progressbar.NewOptions64(p.total,
			progressbar.OptionSetWriter(p.w),
			progressbar.OptionSetWidth(30),
			progressbar.OptionShowDescriptionAtLineEnd(),
			progressbar.OptionSetElapsedTime(true),
			progressbar.OptionSetPredictTime(false),
			progressbar.OptionThrottle(100*time.Millisecond),
		)
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if bar != nil {
				bar.Describe(line())
				_ = bar.Set64(min(at(), p.total))
			} else {
				fmt.Fprintln(p.w, line())
			}
		}
	})
	return func() {
		cancel()
		wg.Wait()
		if bar != nil {
			bar.Describe(line())
			_ = bar.Finish()
			fmt.Fprintln(p.w)
		} else {
			fmt.Fprintln(p.w, line())
		}
	}
}
