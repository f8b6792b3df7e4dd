package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	njs "github.com/nats-io/nats.go/jetstream"

	"github.com/backupledger/backupledger/adapters/jetstream"
	"github.com/backupledger/backupledger/cmd/backupbench/loadgen"
	"github.com/backupledger/backupledger/cmd/backupd/daemon"
)

// coldStart is what a restart of backupd on a long ledger measured.
type coldStart struct {
	natsVersion string
	apps        int
	events      uint64        // in LEDGER at the restart
	ready       time.Duration // from the process's start to /readyz answering 200, from the snapshot of the stop
	rawTime     time.Duration // an ordered consumer's replay of the same stream
	rss         int64         // VmRSS once ready after the restart
	idleRSS     int64         // VmRSS once ready on an empty data dir
	// snapshotSeq is the sequence of the snapshot the restart loaded (0:
	// none); fullReady and fullRSS are of a restart without a snapshot,
	// folding the ledger from the start.
	snapshotSeq uint64
	fullReady   time.Duration
	fullRSS     int64
}

func (c *coldStart) rate() float64     { return float64(c.events) / c.ready.Seconds() }
func (c *coldStart) fullRate() float64 { return float64(c.events) / c.fullReady.Seconds() }
func (c *coldStart) rawRate() float64  { return float64(c.events) / c.rawTime.Seconds() }

// measureColdStart starts backupd on an empty data dir (its idle memory),
// fills LEDGER with renames of apps apps until it holds events events,
// stops it (which leaves a snapshot of the projection), and times its
// restart to /readyz; then removes the snapshot and times a restart that
// folds the ledger from the start; both against an ordered consumer's
// replay of the same stream.
func measureColdStart(ctx context.Context, bin, dir string, apps, events int, clients int) (*coldStart, error) {
	args := func() []string {
		return []string{"--nats-listen", freeAddr(), "--sync", "interval", "--admin-token", "bench",
			"--log-level", "warn", "--min-interval", "0s"}
	}
	d, err := startProcess(ctx, bin, dir, args())
	if err != nil {
		return nil, err
	}
	defer func() { d.stop() }()
	c := &coldStart{apps: apps}
	if c.idleRSS, err = procStatus(d.cmd.Process.Pid, "VmRSS"); err != nil {
		return nil, err
	}
	fmt.Fprintf(os.Stderr, "cold start: setting up %d apps...\n", apps)
	ids, err := loadgen.Setup(ctx, d.base, "bench", "bench", apps)
	if err != nil {
		return nil, err
	}
	nc, js, err := connectAs(dir, daemon.RoleBackupd)
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	producer, _, err := connectAs(dir, daemon.RoleProducer)
	if err != nil {
		return nil, err
	}
	defer producer.Close()
	fmt.Fprintf(os.Stderr, "cold start: writing %d events...\n", events)
	for round := 1; ; round++ {
		last, err := loadgen.LastSeq(ctx, js)
		if err != nil {
			return nil, err
		}
		if last >= uint64(events) {
			break
		}
		res, err := loadgen.Run(ctx, loadgen.Config{Targets: []loadgen.Target{&loadgen.NATS{Conn: producer, Token: "bench"}},
			Apps: ids, Clients: clients, Duration: 5 * time.Second, RunID: fmt.Sprintf("fill%d-%d", round, time.Now().Unix())})
		if err != nil {
			return nil, err
		}
		if res.ErrorCount > 0 {
			return nil, fmt.Errorf("filling the ledger: %v", res.Errors[:min(3, len(res.Errors))])
		}
	}
	producer.Close()
	nc.Close()
	d.stop()

	restart := func() (time.Duration, int64, error) {
		start := time.Now()
		if d, err = startProcess(ctx, bin, dir, args()); err != nil {
			return 0, 0, err
		}
		ready := time.Since(start)
		rss, err := procStatus(d.cmd.Process.Pid, "VmRSS")
		if err != nil {
			return 0, 0, err
		}
		if d.nc, d.js, err = connectAs(dir, daemon.RoleBackupd); err != nil {
			return 0, 0, err
		}
		return ready, rss, nil
	}
	if c.ready, c.rss, err = restart(); err != nil {
		return nil, err
	}
	c.natsVersion = d.nc.ConnectedServerVersion()
	if c.events, err = loadgen.LastSeq(ctx, d.js); err != nil {
		return nil, err
	}
	if c.snapshotSeq, err = snapshotSeq(ctx, d.js); err != nil {
		return nil, err
	}
	if c.rawTime, err = replay(ctx, d.js, c.events); err != nil {
		return nil, err
	}
	// Without the snapshot: removed, and the process killed, so that it
	// makes none at its stop.
	if err := deleteSnapshot(ctx, d.js); err != nil {
		return nil, err
	}
	d.nc.Close()
	d.cmd.Process.Kill()
	d.cmd.Wait()
	if c.fullReady, c.fullRSS, err = restart(); err != nil {
		return nil, err
	}
	if seq, err := snapshotSeq(ctx, d.js); err != nil || seq != 0 {
		return nil, fmt.Errorf("the restart without a snapshot found one after seq %d (%v)", seq, err)
	}
	return c, nil
}

// snapshotSeq returns the sequence of the projection's stored snapshot, 0
// if none is stored.
func snapshotSeq(ctx context.Context, js njs.JetStream) (uint64, error) {
	obs, err := js.ObjectStore(ctx, jetstream.SnapshotBucket)
	if err != nil {
		return 0, err
	}
	info, err := obs.GetInfo(ctx, "projection")
	if errors.Is(err, njs.ErrObjectNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return strconv.ParseUint(info.Metadata["seq"], 10, 64)
}

// deleteSnapshot removes the projection's stored snapshot.
func deleteSnapshot(ctx context.Context, js njs.JetStream) error {
	obs, err := js.ObjectStore(ctx, jetstream.SnapshotBucket)
	if err != nil {
		return err
	}
	return obs.Delete(ctx, "projection")
}

// replay reads LEDGER from its first message to last with an ordered
// consumer, decoding nothing, and returns how long it took.
func replay(ctx context.Context, js njs.JetStream, last uint64) (time.Duration, error) {
	start := time.Now()
	cons, err := js.OrderedConsumer(ctx, jetstream.StreamName, njs.OrderedConsumerConfig{DeliverPolicy: njs.DeliverAllPolicy})
	if err != nil {
		return 0, err
	}
	it, err := cons.Messages(njs.PullMaxMessages(4096))
	if err != nil {
		return 0, err
	}
	defer it.Stop()
	for n := uint64(0); n < last; {
		msg, err := it.Next()
		if err != nil {
			return 0, err
		}
		md, err := msg.Metadata()
		if err != nil {
			return 0, err
		}
		n = md.Sequence.Stream
	}
	return time.Since(start), nil
}
