package jetstream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	njs "github.com/nats-io/nats.go/jetstream"

	"github.com/backupledger/backupledger/adapters/internal/ensure"
	"github.com/backupledger/backupledger/domain"
)

// followerBatch is how many messages the follower's ordered consumer asks
// for at once: large, so that a replay of the ledger runs at the stream's
// speed rather than at the speed of pull requests.
const followerBatch = 1000

// followerRetry is how long the follower waits before it creates its
// consumer again after an error the ordered consumer did not recover from.
const followerRetry = time.Second

// Follower feeds the in-memory projection: it reads every event of the
// stream in order, from the start, with an ordered consumer, and hands each
// to apply. The ordered consumer recreates itself after a reconnect or a
// server restart and resumes after the last message it delivered.
type Follower struct {
	js      njs.JetStream
	prepare func(domain.StoredMessage) func()
	log     *slog.Logger

	applied atomic.Uint64
	target  atomic.Uint64

	caughtUp     chan struct{}
	caughtUpOnce sync.Once
	stopped      chan struct{}
	stopOnce     sync.Once
	runErr       error // set before stopped is closed
}

// NewFollower returns a Follower that calls apply for every message of the
// stream, in stream order, from one goroutine, with its own copy of the
// body, its subject's token, signature headers and store time. log may be
// nil.
func NewFollower(js njs.JetStream, apply func(domain.StoredMessage), log *slog.Logger) *Follower {
	return NewPreparingFollower(js, func(m domain.StoredMessage) func() { return func() { apply(m) } }, log)
}

// NewPreparingFollower returns a Follower that hands every message of the
// stream to prepare as soon as it is read, from one goroutine, and calls
// the func prepare returned, in stream order, from another, so that
// preparing the next messages (projections.Store.Prepare) and applying
// the last ones use two cores. log may be nil.
func NewPreparingFollower(js njs.JetStream, prepare func(domain.StoredMessage) func(), log *slog.Logger) *Follower {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Follower{js: js, prepare: prepare, log: log, caughtUp: make(chan struct{}), stopped: make(chan struct{})}
}

// StartAfter makes Run follow the stream from the message after seq, the
// last one of a snapshot the projection loaded; call it before Run.
func (f *Follower) StartAfter(seq uint64) { f.applied.Store(seq) }

// followerResets is how often the follower's ordered consumer tries to
// recreate itself after a failover before the follower starts a new one.
const followerResets = 5

// Run reads the stream until ctx is cancelled; call it once. At its start it
// reads the stream's last sequence, the mark that WaitCaughtUp waits for.
// It returns nil when ctx is cancelled, and an error, wrapped, when the
// stream cannot be read at the start or the connection is closed.
func (f *Follower) Run(ctx context.Context) error {
	err := f.run(ctx)
	f.runErr = err
	f.stopOnce.Do(func() { close(f.stopped) })
	return err
}

func (f *Follower) run(ctx context.Context) error {
	st, err := ensure.Retry(ctx, func(ctx context.Context) (njs.Stream, error) { return f.js.Stream(ctx, StreamName) })
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("follow stream %s: %w", StreamName, err)
	}
	last := st.CachedInfo().State.LastSeq
	f.target.Store(last)
	f.log.Info("following the ledger", "last_seq", last)
	if last <= f.applied.Load() {
		f.markCaughtUp()
	}
	for {
		err := f.follow(ctx, st)
		if ctx.Err() != nil {
			return nil
		}
		if f.js.Conn().IsClosed() {
			return fmt.Errorf("follow stream %s: %w", StreamName, err)
		}
		f.log.Warn("ledger follower restarts", "seq", f.applied.Load(), "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(followerRetry):
		}
	}
}

// follow runs one ordered consumer from the message after the last applied
// one until ctx is cancelled or it fails.
func (f *Follower) follow(ctx context.Context, st njs.Stream) error {
	// A reset of the ordered consumer (after a failover) is tried a few
	// times, then this consumer ends and Run starts a new one: by default
	// nats.go tries for ever, also on a closed connection, and ignores the
	// context of Next meanwhile.
	cfg := njs.OrderedConsumerConfig{FilterSubjects: []string{SubjectAll}, DeliverPolicy: njs.DeliverAllPolicy,
		MaxResetAttempts: followerResets}
	if next := f.applied.Load() + 1; next > 1 {
		cfg.DeliverPolicy = njs.DeliverByStartSequencePolicy
		cfg.OptStartSeq = next
	}
	cons, err := st.OrderedConsumer(ctx, cfg)
	if err != nil {
		return fmt.Errorf("ordered consumer: %w", err)
	}
	defer func() {
		// The server would drop the consumer after 5 idle minutes anyway.
		if info := cons.CachedInfo(); info != nil {
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
			_ = st.DeleteConsumer(dctx, info.Name)
			cancel()
		}
	}()
	it, err := cons.Messages(njs.PullMaxMessages(followerBatch))
	if err != nil {
		return fmt.Errorf("consume: %w", err)
	}
	defer it.Stop()
	// Stop also ends a reset in progress, which Next's context does not.
	defer context.AfterFunc(ctx, it.Stop)()
	next := njs.NextContext(ctx)
	target := f.target.Load()
	// One goroutine reads, preparers prepare (in parallel, one per core),
	// this one applies in stream order; the reader ends with the iterator
	// (on an error, or ctx's end), and everything read is applied before
	// follow returns.
	type item struct {
		seq   uint64
		m     domain.StoredMessage
		apply func()
		ready chan struct{} // closed once apply is set
	}
	ordered := make(chan *item, followerBatch)
	work := make(chan *item, followerBatch)
	var readErr error
	go func() {
		defer close(ordered)
		defer close(work)
		for {
			msg, err := it.Next(next)
			if err != nil {
				readErr = fmt.Errorf("next message: %w", err)
				return
			}
			md, err := msg.Metadata()
			if err != nil {
				// Not a JetStream message: nothing to apply, nothing to ack.
				f.log.Error("skip message without metadata", "subject", msg.Subject(), "err", err)
				continue
			}
			x := &item{seq: md.Sequence.Stream, m: storedMessage(msg, md), ready: make(chan struct{})}
			ordered <- x
			work <- x
		}
	}()
	for range preparers() {
		go func() {
			for x := range work {
				x.apply = f.prepare(x.m)
				close(x.ready)
			}
		}()
	}
	for x := range ordered {
		<-x.ready
		if x.seq <= f.applied.Load() {
			continue // already applied before a restart of the consumer
		}
		x.apply()
		f.applied.Store(x.seq)
		if x.seq >= target {
			f.markCaughtUp()
		}
	}
	return readErr
}

// preparers is how many goroutines prepare the follower's messages: one
// per core.
func preparers() int { return max(1, runtime.GOMAXPROCS(0)) }

func (f *Follower) markCaughtUp() {
	f.caughtUpOnce.Do(func() {
		f.log.Info("ledger follower caught up", "seq", f.applied.Load())
		close(f.caughtUp)
	})
}

// Applied returns the stream sequence of the last message handed to apply,
// 0 before the first.
func (f *Follower) Applied() uint64 { return f.applied.Load() }

// CaughtUp reports whether apply has seen every message that the stream
// held when Run started (for /readyz).
func (f *Follower) CaughtUp() bool {
	select {
	case <-f.caughtUp:
		return true
	default:
		return false
	}
}

// WaitCaughtUp returns nil once apply has seen every message that the stream
// held when Run started. It returns ctx's error when ctx ends first, and an
// error when Run stops before catching up (wrapping Run's error, if any).
func (f *Follower) WaitCaughtUp(ctx context.Context) error {
	select {
	case <-f.caughtUp:
		return nil
	case <-f.stopped:
		if f.CaughtUp() {
			return nil
		}
		if f.runErr != nil {
			return fmt.Errorf("ledger follower stopped before catching up: %w", f.runErr)
		}
		return errors.New("ledger follower stopped before catching up")
	case <-ctx.Done():
		return fmt.Errorf("wait for ledger follower to catch up: %w", ctx.Err())
	}
}
