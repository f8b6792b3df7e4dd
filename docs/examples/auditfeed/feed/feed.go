// Package feed is an external audit consumer of the backup ledger: it
// copies the events of the JetStream stream LEDGER to a JSON Lines file,
// one event per line, each the event's message body exactly as stored
// (docs/events.md), through a durable consumer of its own.
//
// It runs with the audit role's NATS login (docs/security.md). Each batch
// of events is written, the file is fsynced, and only then is the batch
// acknowledged, so an acknowledged event is on disk. The file holds every
// event of the filter once, in stream order:
//
//   - A restart resumes after the last acknowledged event. The events
//     delivered after it, to a run that stopped before acknowledging them,
//     end the file if that run wrote them; those it did not write are read
//     from the stream and written at the start. When they are delivered
//     again, they are skipped.
//   - An event whose delivery went astray while running (to a fetch that
//     had ended) shows as a gap in the consumer's delivery numbers; the
//     events of the gap are read from the stream and written before the
//     next one.
package feed

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Names on the server (docs/events.md, docs/security.md).
const (
	// Stream is the stream that holds the ledger's events.
	Stream = "LEDGER"
	// SubjectAll matches the events of every app and the identity events.
	SubjectAll = "ledger.events.>"
	// subjectPrefix starts every event's subject.
	subjectPrefix = "ledger.events."
)

// Defaults of Config.
const (
	DefaultDurable = "audit-feed"
	DefaultBatch   = 256
	DefaultMaxWait = 5 * time.Second
	DefaultAckWait = 30 * time.Second
)

// reserved are the durable consumers of backupd itself, which the audit
// role may not use.
var reserved = []string{"backup-worker", "notifier"}

// Config configures Run. Zero fields take their defaults.
type Config struct {
	// Out is the JSON Lines file the events are appended to; required. It
	// is created (mode 0640) if it does not exist.
	Out string
	// Durable is the name of the durable consumer on LEDGER, which
	// remembers where the feed stopped (default "audit-feed"). Two feeds
	// with the same name share one position: give each file its own name.
	// It may not be one of backupd's own consumers, "backup-worker" and
	// "notifier".
	Durable string
	// Filter is the subject filter (default "ledger.events.>", every app;
	// "ledger.events.crm" for one app).
	Filter string
	// Batch is how many events are fetched, written and fsynced at once at
	// most (default 256); twice as many may wait for their acknowledgement.
	// An event that comes while the feed is caught up is written at once.
	// One acknowledgement covers every event before it (AckAll).
	Batch int
	// MaxWait is how long one fetch waits for a new event when the feed
	// is caught up (default 5s); a stop waits for no fetch.
	MaxWait time.Duration
	// AckWait is how long the server waits for a batch's acknowledgement
	// before it delivers the batch again (default 30s). After a crash the
	// unacknowledged events come again once it has passed.
	AckWait time.Duration
	// Logger gets a line per start and per batch (debug); default: none.
	Logger *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.Durable == "" {
		c.Durable = DefaultDurable
	}
	if c.Filter == "" {
		c.Filter = SubjectAll
	}
	if c.Batch == 0 {
		c.Batch = DefaultBatch
	}
	if c.MaxWait == 0 {
		c.MaxWait = DefaultMaxWait
	}
	if c.AckWait == 0 {
		c.AckWait = DefaultAckWait
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Validate reports every invalid setting of c (after defaults) at once.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	if c.Out == "" {
		errs = append(errs, errors.New("out: the output file must be set"))
	}
	if c.Durable == "" || strings.ContainsAny(c.Durable, ".*> \t\r\n") {
		errs = append(errs, fmt.Errorf("durable %q: a consumer name has no dots, wildcards or spaces", c.Durable))
	}
	for _, r := range reserved {
		if c.Durable == r {
			errs = append(errs, fmt.Errorf("durable %q is backupd's own consumer: choose another name", c.Durable))
		}
	}
	if !strings.HasPrefix(c.Filter, subjectPrefix) {
		errs = append(errs, fmt.Errorf("filter %q: events are on subjects %s", c.Filter, SubjectAll))
	}
	if c.Batch < 1 {
		errs = append(errs, fmt.Errorf("batch %d: must be at least 1", c.Batch))
	}
	if c.MaxWait < 100*time.Millisecond {
		errs = append(errs, fmt.Errorf("max wait %s: must be at least 100ms", c.MaxWait))
	}
	if c.AckWait < time.Second {
		errs = append(errs, fmt.Errorf("ack wait %s: must be at least 1s", c.AckWait))
	}
	return errors.Join(errs...)
}

// ConsumerConfig returns the configuration of the durable consumer of cfg:
// every event from the first one, acknowledged a batch at a time (an
// acknowledgement covers the events before it).
func ConsumerConfig(cfg Config) jetstream.ConsumerConfig {
	cfg = cfg.withDefaults()
	return jetstream.ConsumerConfig{
		Durable:       cfg.Durable,
		Description:   "audit feed to a JSON Lines file (docs/audit.md)",
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckAllPolicy,
		AckWait:       cfg.AckWait,
		MaxDeliver:    -1,
		// One batch at a time waits for its acknowledgement; room for a
		// second lets a restart go on at once while the deliveries of a
		// crashed run wait for their AckWait to pass.
		MaxAckPending: 2 * cfg.Batch,
		FilterSubject: cfg.Filter,
	}
}

// Run copies events to cfg.Out until ctx ends, then returns nil (after
// writing and acknowledging the batch at hand). nc must be logged in with
// the audit role's rights, its inbox prefix set (nats.CustomInboxPrefix).
//
// Run returns ErrMismatch when the file holds lines but not the events the
// consumer acknowledged last (another consumer's file, or one edited),
// and other errors for an invalid cfg, when the file cannot be opened,
// written or synced, when the consumer cannot be created (no such stream,
// no permission), and when a fetch, a read or an acknowledgement fails; a
// caller may run it again, and it resumes.
func Run(ctx context.Context, nc *nats.Conn, cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	cfg = cfg.withDefaults()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	st, err := js.Stream(ctx, Stream)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("stream %s: %w", Stream, err)
	}
	cons, err := st.CreateOrUpdateConsumer(ctx, ConsumerConfig(cfg))
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("consumer %s of %s: %w", cfg.Durable, Stream, err)
	}
	out, err := openOut(cfg.Out)
	if err != nil {
		return err
	}
	defer out.close()
	f := &feeder{cfg: cfg, stream: st, cons: cons, out: out}
	if err := f.resume(ctx, cons.CachedInfo()); err != nil {
		return err
	}
	wait := false
	for ctx.Err() == nil {
		n, err := f.batch(ctx, wait)
		if err != nil {
			return err
		}
		// Caught up: wait for the next event, then take what has come
		// with it.
		wait = n == 0
	}
	return nil
}

// ErrMismatch is returned by Run when the output file and the durable
// consumer do not belong together.
var ErrMismatch = errors.New("the output file does not end with the events its consumer delivered: " +
	"use a new (or empty) file, or the consumer name that wrote this one")

// feeder is one run of the feed.
type feeder struct {
	cfg    Config
	stream jetstream.Stream
	cons   jetstream.Consumer
	out    *outFile
	// lastSeq is the stream sequence of the file's last event: every
	// event of the filter up to it is in the file.
	lastSeq uint64
	// nextDelivery is the consumer sequence the next delivery has unless
	// one went astray: the server numbers every delivery of the consumer,
	// and one to a fetch this feed no longer listens to is not seen here.
	nextDelivery uint64
}

// resume makes the file hold every event up to the last one delivered to
// the consumer (info). The events after the acknowledged ones were
// delivered to a run that stopped before it acknowledged them: it may have
// written some of them (then they end the file), or none. Those missing are
// read from the stream and written now, in order; their deliveries, when
// they come again, are skipped.
func (f *feeder) resume(ctx context.Context, info *jetstream.ConsumerInfo) error {
	floor, delivered := info.AckFloor.Stream, info.Delivered.Stream
	f.nextDelivery = info.Delivered.Consumer + 1
	var unacked []*jetstream.RawStreamMsg
	for seq := floor + 1; seq <= delivered; {
		m, err := f.next(ctx, seq)
		if err != nil {
			return err
		}
		if m == nil || m.Sequence > delivered {
			break
		}
		unacked = append(unacked, m)
		seq = m.Sequence + 1
	}
	lines, err := f.out.lastLines(len(unacked) + 1)
	if err != nil {
		return err
	}
	// The file ends with the first k of them.
	k := min(len(unacked), len(lines))
	for ; k > 0; k-- {
		if endsWith(lines, unacked[:k]) {
			break
		}
	}
	// An empty file starts after the acknowledged events (a new file, or
	// one rotated away); a file with lines must end with the event
	// acknowledged last, then those k.
	if before := lines[:len(lines)-k]; len(lines) > 0 {
		if floor == 0 && len(before) > 0 {
			return fmt.Errorf("%s: %w", f.out.path, ErrMismatch)
		}
		if floor > 0 {
			m, err := f.stream.GetMsg(ctx, floor)
			if err != nil {
				return fmt.Errorf("read event %d: %w", floor, err)
			}
			if len(before) == 0 || !bytes.Equal(before[len(before)-1], m.Data) {
				return fmt.Errorf("%s: %w", f.out.path, ErrMismatch)
			}
		}
	}
	for _, m := range unacked[k:] {
		if err := f.out.write(m.Data); err != nil {
			return err
		}
	}
	if len(unacked) > k {
		if err := f.out.sync(); err != nil {
			return err
		}
	}
	f.lastSeq = floor
	if len(unacked) > 0 {
		f.lastSeq = unacked[len(unacked)-1].Sequence
	}
	f.cfg.Logger.Info("audit feed started", "durable", f.cfg.Durable, "filter", f.cfg.Filter, "out", f.out.path,
		"seq", f.lastSeq, "pending", info.NumPending, "truncated_bytes", f.out.truncated,
		"unacked", len(unacked), "unacked_written_now", len(unacked)-k)
	return nil
}

// endsWith reports whether lines end with the bodies of msgs.
func endsWith(lines [][]byte, msgs []*jetstream.RawStreamMsg) bool {
	if len(msgs) > len(lines) {
		return false
	}
	tail := lines[len(lines)-len(msgs):]
	for i, m := range msgs {
		if !bytes.Equal(tail[i], m.Data) {
			return false
		}
	}
	return true
}

// next returns the first event of the filter at or after stream sequence
// seq, read from the stream; nil when there is none.
func (f *feeder) next(ctx context.Context, seq uint64) (*jetstream.RawStreamMsg, error) {
	m, err := f.stream.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(f.cfg.Filter))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the event after %d: %w", seq-1, err)
	}
	return m, nil
}

// batch fetches one batch, writes it, syncs the file and acknowledges the
// batch, and returns the number of deliveries in it. Without wait, the
// batch is what the server holds now, up to cfg.Batch events; with wait,
// it is the next event, as soon as it comes, or none after cfg.MaxWait.
func (f *feeder) batch(ctx context.Context, wait bool) (int, error) {
	var batch jetstream.MessageBatch
	var err error
	if wait {
		fctx, cancel := context.WithTimeout(ctx, f.cfg.MaxWait)
		defer cancel()
		batch, err = f.cons.Fetch(1, jetstream.FetchContext(fctx))
	} else {
		batch, err = f.cons.FetchNoWait(f.cfg.Batch)
	}
	if err != nil {
		if ctx.Err() != nil {
			return 0, nil
		}
		return 0, fmt.Errorf("fetch from %s: %w", f.cfg.Durable, err)
	}
	// Reads and the acknowledgement finish even when ctx ends meanwhile.
	octx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	var (
		ack                      jetstream.Msg // the delivery of the highest sequence
		ackSeq                   uint64
		n, written, filled, skip int
	)
	for msg := range batch.Messages() {
		n++
		md, err := msg.Metadata()
		if err != nil {
			return 0, fmt.Errorf("event metadata: %w", err)
		}
		seq := md.Sequence.Stream
		astray := md.Sequence.Consumer != f.nextDelivery
		f.nextDelivery = md.Sequence.Consumer + 1
		switch {
		case seq <= f.lastSeq:
			skip++ // delivered again: in the file already
		default:
			if astray && seq > f.lastSeq+1 {
				k, err := f.fill(octx, seq)
				if err != nil {
					return 0, err
				}
				filled += k
			}
			if err := f.out.write(msg.Data()); err != nil {
				return 0, err
			}
			f.lastSeq = seq
			written++
		}
		if ack == nil || seq > ackSeq {
			ack, ackSeq = msg, seq
		}
	}
	if ack != nil {
		if err := f.out.sync(); err != nil {
			return 0, err
		}
		// With AckAll, this acknowledges every event up to ackSeq, all of
		// which are on disk now.
		if err := ack.DoubleAck(octx); err != nil {
			return 0, fmt.Errorf("acknowledge up to stream sequence %d: %w", ackSeq, err)
		}
		f.cfg.Logger.Debug("audit feed batch", "written", written, "filled", filled, "skipped", skip, "seq", f.lastSeq)
	}
	switch err := batch.Error(); {
	case err == nil, ctx.Err() != nil,
		errors.Is(err, nats.ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		return n, nil
	default:
		return 0, fmt.Errorf("fetch from %s: %w", f.cfg.Durable, err)
	}
}

// fill writes the events of the filter between the file's last one and
// the stream sequence seq, read from the stream: their deliveries went
// astray (to a fetch that had ended). It returns how many it wrote.
func (f *feeder) fill(ctx context.Context, seq uint64) (int, error) {
	k := 0
	for next := f.lastSeq + 1; next < seq; {
		m, err := f.next(ctx, next)
		if err != nil {
			return k, err
		}
		if m == nil || m.Sequence >= seq {
			break
		}
		if err := f.out.write(m.Data); err != nil {
			return k, err
		}
		f.lastSeq, next = m.Sequence, m.Sequence+1
		k++
	}
	return k, nil
}
