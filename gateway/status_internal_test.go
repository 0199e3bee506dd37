package gateway

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"go.temporal.io/api/enums/v1"
	workerpb "go.temporal.io/api/worker/v1"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// TestJudgeHeartbeats: what the status says of a queue's workers from
// their newest heartbeats, including the cases a test cannot stage with a
// real worker in one process (one that died without a word, one whose
// clock runs ahead, several instances).
func TestJudgeHeartbeats(t *testing.T) {
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	hb := func(status enums.WorkerStatus, ago time.Duration) *workerpb.WorkerHeartbeat {
		return &workerpb.WorkerHeartbeat{Status: status, HeartbeatTime: timestamppb.New(now.Add(-ago))}
	}
	running, stopping, stopped := enums.WORKER_STATUS_RUNNING, enums.WORKER_STATUS_SHUTTING_DOWN, enums.WORKER_STATUS_SHUTDOWN
	tests := []struct {
		name       string
		heartbeats []*workerpb.WorkerHeartbeat
		up         bool
		lastSeen   time.Duration // ago; -1: none
		detail     string
	}{
		{"none", nil, false, -1, "no worker has sent a heartbeat"},
		{"running", []*workerpb.WorkerHeartbeat{hb(running, 4*time.Second)}, true, 4 * time.Second, ""},
		{"running, clock ahead", []*workerpb.WorkerHeartbeat{hb(running, -2*time.Second)}, true, -2 * time.Second, ""},
		{"three heartbeats missing", []*workerpb.WorkerHeartbeat{hb(running, 15*time.Second)}, false, 15 * time.Second, "not heard from for 15s"},
		{"died long ago", []*workerpb.WorkerHeartbeat{hb(running, 10*time.Minute)}, false, 10 * time.Minute, "not heard from for 10m0s"},
		{"stopping", []*workerpb.WorkerHeartbeat{hb(stopping, time.Second)}, false, time.Second, "stopped"},
		{"stopped", []*workerpb.WorkerHeartbeat{hb(stopped, time.Second)}, false, time.Second, "stopped"},
		{"restarted: the old instance stopped, the new one runs",
			[]*workerpb.WorkerHeartbeat{hb(stopping, 20*time.Second), hb(running, 3*time.Second)}, true, 3 * time.Second, ""},
		{"one of two stopped just now",
			[]*workerpb.WorkerHeartbeat{hb(stopping, time.Second), hb(running, 3*time.Second)}, true, 3 * time.Second, ""},
		{"two running", []*workerpb.WorkerHeartbeat{hb(running, time.Second), hb(running, 2*time.Second)}, true, time.Second, "2 workers running"},
		{"unspecified status", []*workerpb.WorkerHeartbeat{hb(enums.WORKER_STATUS_UNSPECIFIED, time.Second)}, false, time.Second, "reports status Unspecified"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var st componentStatus
			judgeHeartbeats(&st, tt.heartbeats, now)
			if st.Up != tt.up || st.Detail != tt.detail {
				t.Errorf("up %v, detail %q; want %v, %q", st.Up, st.Detail, tt.up, tt.detail)
			}
			switch {
			case tt.lastSeen == -1 && st.LastSeen != nil:
				t.Errorf("last_seen %s, want none", st.LastSeen)
			case tt.lastSeen != -1 && (st.LastSeen == nil || !st.LastSeen.Equal(now.Add(-tt.lastSeen))):
				t.Errorf("last_seen %v, want %s", st.LastSeen, now.Add(-tt.lastSeen))
			}
		})
	}
}

// TestHeartbeatsByTheGatewaysClock: a worker whose clock runs 30 s behind
// shows up from its second heartbeat on; one whose clock runs ahead and
// then dies shows down three intervals after its last heartbeat, by the
// gateway's clock.
func TestHeartbeatsByTheGatewaysClock(t *testing.T) {
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	running := enums.WORKER_STATUS_RUNNING
	beat := func(key string, sent time.Time) []*workerpb.WorkerHeartbeat {
		return []*workerpb.WorkerHeartbeat{{WorkerInstanceKey: key, Status: running, HeartbeatTime: timestamppb.New(sent)}}
	}
	var c heartbeatClock
	judge := func(hbs []*workerpb.WorkerHeartbeat, at time.Time) componentStatus {
		var st componentStatus
		judgeHeartbeats(&st, c.localize(hbs, at), at)
		return st
	}

	behind := -30 * time.Second
	if st := judge(beat("slow-clock", now.Add(behind)), now); st.Up {
		t.Errorf("first heartbeat of a clock 30 s behind: up; its age cannot be told yet")
	}
	if st := judge(beat("slow-clock", now.Add(5*time.Second+behind)), now.Add(5*time.Second)); !st.Up {
		t.Errorf("second heartbeat of a clock 30 s behind: %+v, want up", st)
	}

	ahead := 40 * time.Second
	last := now.Add(ahead)
	if st := judge(beat("fast-clock", last), now); !st.Up || !st.LastSeen.Equal(now) {
		t.Errorf("a clock 40 s ahead: %+v, want up, last seen now", st)
	}
	// It dies: the server keeps listing its last heartbeat.
	if st := judge(beat("fast-clock", last), now.Add(10*time.Second)); !st.Up {
		t.Errorf("10 s after the last heartbeat: %+v, want still up", st)
	}
	if st := judge(beat("fast-clock", last), now.Add(16*time.Second)); st.Up || st.Detail != "not heard from for 16s" {
		t.Errorf("16 s after the last heartbeat of a clock 40 s ahead: %+v, want down", st)
	}
}

// TestSharedComputesOnceForConcurrentCallers: callers that miss the cache
// together share one computation, and one caller's cancellation does not
// cancel it for the others.
func TestSharedComputesOnceForConcurrentCallers(t *testing.T) {
	c := shared[int]{ttl: time.Second, timeout: time.Second}
	var calls atomic.Int32
	release := make(chan struct{})
	compute := func(ctx context.Context) (int, error) {
		calls.Add(1)
		select {
		case <-release:
			return 42, nil
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
	gone, cancel := context.WithCancel(context.Background())
	results := make(chan error, 6)
	for i := range 6 {
		ctx := context.Background()
		if i == 0 {
			ctx = gone
		}
		go func() {
			v, err := c.get(ctx, time.Now, compute)
			if err == nil && v != 42 {
				err = fmt.Errorf("got %d", v)
			}
			results <- err
		}()
	}
	time.Sleep(50 * time.Millisecond)
	cancel()
	close(release)
	var failed int
	for range 6 {
		if err := <-results; err != nil {
			failed++
		}
	}
	if failed != 1 || calls.Load() != 1 {
		t.Errorf("%d callers failed, %d computations; want only the cancelled caller to fail, and one computation", failed, calls.Load())
	}
	if v, err := c.get(context.Background(), time.Now, compute); v != 42 || err != nil || calls.Load() != 1 {
		t.Errorf("within the TTL: %d, %v after %d computations; want the cached 42", v, err, calls.Load())
	}
}
