package daemon

import (
	"testing"
	"time"
)

func TestHealthBehind(t *testing.T) {
	var h health
	t0 := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	lag := 10 * time.Second
	// The ledger grows by 100 a second; no probe is 10 s old for 10 s.
	for i := range 10 {
		if old := h.behind(t0.Add(time.Duration(i)*time.Second), uint64(100*i), lag); old != 0 {
			t.Fatalf("probe %d: behind = %d, want 0 before any probe is %s old", i, old, lag)
		}
	}
	// At 10 s, the ledger had 0 ten seconds ago; at 15 s, 500.
	if old := h.behind(t0.Add(10*time.Second), 1000, lag); old != 0 {
		t.Errorf("at 10s: %d, want 0 (the ledger then)", old)
	}
	for i := 11; i <= 15; i++ {
		h.behind(t0.Add(time.Duration(i)*time.Second), uint64(100*i), lag)
	}
	if old := h.behind(t0.Add(16*time.Second), 1600, lag); old != 600 {
		t.Errorf("at 16s: %d, want 600, the ledger 10 s before", old)
	}
	if n := len(h.samples); n > 12 {
		t.Errorf("%d samples kept, want about %s of probes", n, lag)
	}
}
