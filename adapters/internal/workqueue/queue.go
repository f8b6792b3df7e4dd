// Package workqueue is the one runner of JetStream work queues that the
// adapters share: the backup jobs, the reactor and the timers of
// adapters/jetstream, and the notifications of adapters/notify. It fetches
// the messages of a durable pull consumer, hands each to a Handler, runs
// the slow part on workers with heartbeats, and settles each message: ack,
// retry after a backoff, hand back, or terminate a poison message.
//
// It lies under adapters/internal so that every adapter may import it
// (adapters import no other adapter); it imports only the standard library
// and the NATS client.
package workqueue

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// FetchWait is how long one pull request of a work queue waits for
// messages. Run waits for the open request to end before it returns, so
// that no pull request outlives the process and strands a message until its
// ack wait (DESIGN §10); this bounds how long that takes. A handler that
// hands a message back while stopping may delay it by FetchWait, so that
// the open request does not get it again.
const FetchWait = time.Second

// fetchRetry is how long Run waits after a failed pull request.
const fetchRetry = time.Second

// minHeartbeat is the shortest heartbeat interval, whatever the ack wait.
const minHeartbeat = 10 * time.Millisecond

// ackSyncTimeout is how long an acknowledgement waits for the server's
// confirmation with Config.AckSync.
const ackSyncTimeout = 5 * time.Second

// Queue runs the messages of one durable pull consumer through a Handler,
// in explicit steps:
//
//  1. fetch: one pull request at a time, for at most as many messages as
//     there are free workers (Config.Workers);
//  2. handle: the Handler looks at each message in the fetch loop and
//     returns its Outcome: settle it now, or run a Task;
//  3. work: a task runs in a goroutine, on a worker or beside them, and
//     tells the server every Heartbeat that the message is in progress;
//  4. settle: Ack (done), Retry after a backoff (failed; Msg.Backoff),
//     HandBack (this process stops) or Term (poison: never again). The last
//     delivery of a message is marked Msg.Final, so that the handler can
//     give up for good instead of retrying.
//
// Any number of processes may run a queue over the same consumer: each
// message goes to one of them.
type Queue struct {
	js  jetstream.JetStream
	cfg Config
	log *slog.Logger

	inFlight atomic.Int64
	freed    chan struct{}
}

// New returns a queue over the consumer cfg.Durable of stream cfg.Stream.
// log may be nil. It returns the joined errors of Config.Validate for an
// invalid cfg, and an error when js is nil.
func New(js jetstream.JetStream, cfg Config, log *slog.Logger) (*Queue, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("work queue config: %w", err)
	}
	if js == nil {
		return nil, errors.New("work queue needs a jetstream context")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Queue{js: js, cfg: cfg.withDefaults(), log: log, freed: make(chan struct{}, 1)}, nil
}

// InFlight returns how many tasks run on the queue's workers (GoBeside
// tasks do not count).
func (q *Queue) InFlight() int { return int(q.inFlight.Load()) }

// queueRun is the state of one Run.
type queueRun struct {
	q          *Queue
	handle     Handler
	heartbeat  time.Duration
	maxDeliver int
	workCtx    context.Context
	wg         sync.WaitGroup
}

// Run fetches messages and handles them until ctx ends; call it once at a
// time. Then it stops fetching, lets its open pull request end (at most
// about a second; what it still delivers goes to the handler, whose ctx has
// ended), gives the running tasks up to Grace to finish, cancels the rest,
// settles them as they return, flushes the acknowledgements and returns
// nil. It returns an error, wrapped, when the consumer does not exist or the
// connection is closed.
func (q *Queue) Run(ctx context.Context, handle Handler) error {
	w := q.cfg.Words
	cons, err := q.js.Consumer(ctx, q.cfg.Stream, q.cfg.Durable)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("%s %s: %w", w.Consumer, q.cfg.Durable, err)
	}
	r := &queueRun{q: q, handle: handle, heartbeat: q.cfg.Heartbeat, maxDeliver: q.cfg.MaxDeliver}
	info := cons.CachedInfo().Config
	if r.maxDeliver == 0 {
		r.maxDeliver = info.MaxDeliver
	}
	if r.heartbeat == 0 {
		ackWait := q.cfg.AckWait
		if ackWait == 0 {
			ackWait = info.AckWait
		}
		if ackWait <= 0 {
			ackWait = q.cfg.FallbackAckWait
		}
		r.heartbeat = max(ackWait/3, minHeartbeat)
	}
	// Tasks are cancelled only once no pull request is open any more: a
	// message handed back earlier could be delivered again to this
	// process's expiring request, and would be handed back once more.
	workCtx, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	r.workCtx = workCtx
	defer r.stop(cancelWork)
	for ctx.Err() == nil {
		n := q.cfg.Batch
		if q.cfg.Workers > 0 {
			free := q.cfg.Workers - q.InFlight()
			if free <= 0 {
				select {
				case <-q.freed:
				case <-ctx.Done():
				}
				continue
			}
			n = min(n, free)
		}
		batch, err := cons.Fetch(n, jetstream.FetchMaxWait(FetchWait))
		if err == nil {
			// Drain the whole batch, also when ctx ends meanwhile: the pull
			// request stays open on the server until it expires, and
			// whatever it delivers is handled.
			for msg := range batch.Messages() {
				r.dispatch(ctx, msg)
			}
			err = batch.Error()
		}
		if err != nil && !errors.Is(err, nats.ErrTimeout) {
			if q.js.Conn().IsClosed() {
				return fmt.Errorf("%s: %w", w.FetchError, err)
			}
			q.log.Warn(w.Fetch, "err", err)
			pause(ctx)
		}
	}
	return nil
}

// pause waits fetchRetry or until ctx ends: after a failed fetch.
func pause(ctx context.Context) {
	t := time.NewTimer(fetchRetry)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// stop lets the running tasks finish within the grace period, cancels the
// rest, waits for them, and flushes the last acknowledgements.
func (r *queueRun) stop(cancelWork context.CancelFunc) {
	done := make(chan struct{})
	go func() { r.wg.Wait(); close(done) }()
	if g := r.q.cfg.Grace; g > 0 {
		t := time.NewTimer(g)
		select {
		case <-done:
		case <-t.C:
		}
		t.Stop()
	}
	cancelWork()
	<-done
	// Make sure the last acknowledgements reach the server before the
	// caller closes the connection.
	if err := r.q.js.Conn().FlushTimeout(time.Second); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		r.q.log.Warn(r.q.cfg.Words.Flush, "err", err)
	}
}

// dispatch hands one message to the handler and carries out its outcome.
// ctx is Run's.
func (r *queueRun) dispatch(ctx context.Context, raw jetstream.Msg) {
	q := r.q
	md, err := raw.Metadata()
	if err != nil {
		q.log.Error(q.cfg.Words.NoMetadata, "subject", raw.Subject(), "err", err)
		return // cannot be settled either
	}
	m := &Msg{
		msg:      raw,
		backoff:  q.cfg.Backoff,
		Seq:      md.Sequence.Stream,
		Delivery: int(md.NumDelivered),
		Final:    r.maxDeliver > 0 && md.NumDelivered >= uint64(r.maxDeliver),
		Stored:   md.Timestamp,
		Log:      q.log.With("seq", md.Sequence.Stream),
	}
	out := r.handle(ctx, m)
	switch {
	case out.task == nil:
		q.settle(m, out)
	case q.cfg.Workers == 0:
		r.work(m, out.task)
	default:
		if !out.beside {
			q.inFlight.Add(1)
		}
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			if !out.beside {
				defer q.release()
			}
			r.work(m, out.task)
		}()
	}
}

// release frees a worker and wakes Run if it waits for one.
func (q *Queue) release() {
	q.inFlight.Add(-1)
	select {
	case q.freed <- struct{}{}:
	default:
	}
}

// work runs task with heartbeats and settles m with its outcome.
func (r *queueRun) work(m *Msg, task Task) {
	stop := r.beat(m)
	out := task(r.workCtx)
	stop()
	r.q.settle(m, out)
}

// beat tells the server every heartbeat interval that m is still in
// progress, until the returned function is called.
func (r *queueRun) beat(m *Msg) (stop func()) {
	log, what := m.Log, r.q.cfg.Words.Heartbeat
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(r.heartbeat)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				if err := m.msg.InProgress(); err != nil {
					log.Warn(what, "err", err)
				}
			}
		}
	})
	return func() {
		close(done)
		wg.Wait()
	}
}

// settle settles m as out says, and logs a failure.
func (q *Queue) settle(m *Msg, out Outcome) {
	var err error
	switch out.settle {
	case SettleAck:
		err = q.ack(m)
	case SettleNak, SettleHandBack:
		if out.delay > 0 {
			err = m.msg.NakWithDelay(out.delay)
		} else {
			err = m.msg.Nak()
		}
	case SettleTerm:
		if out.reason == "" {
			err = m.msg.Term()
		} else {
			err = m.msg.TermWithReason(out.reason)
		}
	default:
		return // unsettled: the ack wait delivers it again
	}
	if err != nil {
		q.cfg.Words.SettleFailed(m.Log, m, out.settle, err)
	}
}

// ack acknowledges m, and with AckSync waits for the server's
// confirmation.
func (q *Queue) ack(m *Msg) error {
	if !q.cfg.AckSync {
		return m.msg.Ack()
	}
	ctx, cancel := context.WithTimeout(context.Background(), ackSyncTimeout)
	defer cancel()
	return m.msg.DoubleAck(ctx)
}
