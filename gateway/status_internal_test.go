package gateway

import (
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
