package daemon

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/backupledger/backupledger/adapters/jetstream"
)

// healthEvery is how often the daemon looks at whether it can take writes.
const healthEvery = time.Second

// health is what the daemon last found about whether it can serve: why
// not (reason, "" when it can), and the ledger's last sequence over the
// last probes, to tell how far behind the projection is.
type health struct {
	mu      sync.Mutex
	reason  string
	samples []seqSample
}

// seqSample is the ledger's last sequence at a time.
type seqSample struct {
	at  time.Time
	seq uint64
}

// set records the outcome of a probe.
func (h *health) set(reason string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.reason = reason
}

// get returns the outcome of the last probe.
func (h *health) get() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.reason
}

// behind records that the ledger ended at seq at now, and returns the
// last sequence the ledger had maxLag ago (0 when no probe is that old):
// a projection that has not applied it is more than maxLag behind.
func (h *health) behind(now time.Time, seq uint64, maxLag time.Duration) uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.samples = append(h.samples, seqSample{at: now, seq: seq})
	var old uint64
	i := 0
	for ; i < len(h.samples) && now.Sub(h.samples[i].at) >= maxLag; i++ {
		old = h.samples[i].seq
	}
	// Keep the newest sample at least maxLag old, and those after it.
	if i > 1 {
		h.samples = h.samples[i-1:]
	}
	return old
}

// watchHealth probes every healthEvery until ctx ends (Readiness).
func (d *Daemon) watchHealth(ctx context.Context) error {
	t := time.NewTicker(healthEvery)
	defer t.Stop()
	for {
		reason := d.probe(ctx)
		if old := d.health.get(); old != reason && ctx.Err() == nil {
			if reason == "" {
				d.log.Info("ready again")
			} else {
				d.log.Warn("not ready", "reason", reason)
			}
		}
		d.health.set(reason)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// probe returns why this process cannot serve writes now, or "": the NATS
// connection is down, the ledger stream does not answer or has no leader,
// or the projection is more than the allowed lag behind the stream.
func (d *Daemon) probe(ctx context.Context) string {
	if st := d.nc.Status(); st != nats.CONNECTED {
		return "not connected to NATS (" + st.String() + ")"
	}
	ctx, cancel := context.WithTimeout(ctx, healthEvery)
	defer cancel()
	st, err := d.js.Stream(ctx, jetstream.StreamName)
	if err != nil {
		return fmt.Sprintf("the ledger stream does not answer: %v", err)
	}
	info := st.CachedInfo()
	if info.Cluster != nil && info.Cluster.Leader == "" {
		return "the ledger stream has no leader"
	}
	if old := d.health.behind(time.Now(), info.State.LastSeq, d.cfg.Ledger.ReadyMaxLag); d.proj.Applied() < old {
		return fmt.Sprintf("the projection is more than %s behind the ledger (applied %d, the ledger had %d then)", d.cfg.Ledger.ReadyMaxLag, d.proj.Applied(), old)
	}
	return ""
}

// Readiness returns why this process is not ready to serve, or nil: its
// projections have not caught up since it started, or the last probe found
// that it cannot take writes (probe). It becomes ready again by itself.
func (d *Daemon) Readiness() error {
	if !d.follower.CaughtUp() {
		return fmt.Errorf("the projections have not caught up with the ledger yet")
	}
	if r := d.health.get(); r != "" {
		return fmt.Errorf("%s", r)
	}
	return nil
}
