package main

import (
	"context"
	"fmt"
	"os"
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
	ready       time.Duration // from the process's start to /readyz answering 200
	rawTime     time.Duration // an ordered consumer's replay of the same stream
	rss         int64         // VmRSS once ready after the restart
	idleRSS     int64         // VmRSS once ready on an empty data dir
}

func (c *coldStart) rate() float64    { return float64(c.events) / c.ready.Seconds() }
func (c *coldStart) rawRate() float64 { return float64(c.events) / c.rawTime.Seconds() }

// measureColdStart starts backupd on an empty data dir (its idle memory),
// fills LEDGER with renames of apps apps until it holds events events,
// stops it, and times its restart to /readyz against an ordered
// consumer's replay of the same stream.
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

	start := time.Now()
	d, err = startProcess(ctx, bin, dir, args())
	if err != nil {
		return nil, err
	}
	c.ready = time.Since(start)
	if c.rss, err = procStatus(d.cmd.Process.Pid, "VmRSS"); err != nil {
		return nil, err
	}
	if d.nc, d.js, err = connectAs(dir, daemon.RoleBackupd); err != nil {
		return nil, err
	}
	c.natsVersion = d.nc.ConnectedServerVersion()
	if c.events, err = loadgen.LastSeq(ctx, d.js); err != nil {
		return nil, err
	}
	if c.rawTime, err = replay(ctx, d.js, c.events); err != nil {
		return nil, err
	}
	return c, nil
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
