package jetstream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	njs "github.com/nats-io/nats.go/jetstream"
)

// fetchWait is how long one pull request of a work queue waits for
// messages. Run waits for the open request to end before it returns, so
// that no pull request outlives the process and strands a message until its
// ack wait (DESIGN §10); this bounds how long that takes.
const fetchWait = time.Second

// fetchRetry is how long Run waits after a failed pull request.
const fetchRetry = time.Second

// minHeartbeat is the shortest heartbeat interval, whatever the ack wait.
const minHeartbeat = 10 * time.Millisecond

// WorkQueue runs the messages of one durable pull consumer through a
// Handler, in explicit steps:
//
//  1. fetch: one pull request at a time, for at most as many messages as
//     there are free workers (WorkQueueConfig.Workers);
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
type WorkQueue struct {
	js  njs.JetStream
	cfg WorkQueueConfig
	log *slog.Logger

	inFlight atomic.Int64
	freed    chan struct{}
}

// WorkQueueConfig configures a WorkQueue. A zero field takes its default.
type WorkQueueConfig struct {
	// Stream is the stream of the consumer (required).
	Stream string
	// Durable is the durable pull consumer that the queue binds to
	// (required); Run does not create it. It is a contract: every process of
	// an installation binds to the same name.
	Durable string
	// Batch is the most messages one pull request asks for: default
	// Workers, or 1 without workers. With workers, a pull request asks for
	// no more than the free ones.
	Batch int
	// Workers is how many tasks (Go) run at once. 0 runs a task in the fetch
	// loop, before the next message is handled.
	Workers int
	// AckWait is the consumer's ack wait; 0 takes it from the consumer.
	AckWait time.Duration
	// Heartbeat is how often a running task tells the server that its
	// message is still in progress: default AckWait/3.
	Heartbeat time.Duration
	// MaxDeliver is how often the server delivers a message at most; the
	// last delivery is marked Msg.Final. 0 takes it from the consumer, -1
	// means unbounded.
	MaxDeliver int
	// Backoff is how long a message waits after a failed delivery
	// (Msg.Backoff): default ConstantBackoff(DefaultRetryDelay).
	Backoff Backoff
	// Grace is how long a stopping Run lets running tasks finish before it
	// cancels them; 0 cancels them at once.
	Grace time.Duration
	// Words are the texts of the queue's logs and errors.
	Words Wording
}

// Wording holds the texts of a queue's logs and errors. Operators and tests
// match them, so each queue keeps its own; an empty field takes a generic
// default.
type Wording struct {
	// Consumer names the consumer in Run's error when it cannot be looked
	// up: Consumer, the durable name, and the cause. Default "consumer".
	Consumer string
	// Fetch is the warning of a failed pull request. Default "fetch " and
	// the durable name.
	Fetch string
	// FetchError starts Run's error when the connection is closed. Default
	// Fetch.
	FetchError string
	// NoMetadata is the error logged for a message without JetStream
	// metadata, which can be neither handled nor settled. Default "message
	// without metadata".
	NoMetadata string
	// Heartbeat is the warning of a failed heartbeat. Default "heartbeat".
	Heartbeat string
	// Flush is the warning when the last acknowledgements cannot be flushed
	// as Run returns. Default "flush acknowledgements".
	Flush string
	// SettleFailed logs a failed settle step with the message's logger;
	// nil logs "settle message" with the keys step, subject and err.
	SettleFailed func(log *slog.Logger, m *Msg, s Settle, err error)
}

// Backoff returns how long a message waits after its delivery-th delivery
// failed (delivery counts from 1).
type Backoff func(delivery int) time.Duration

// ConstantBackoff returns a Backoff that waits d after every failure.
func ConstantBackoff(d time.Duration) Backoff {
	return func(int) time.Duration { return d }
}

// withDefaults returns c with every zero field set to its default, except
// AckWait and MaxDeliver, which Run takes from the consumer.
func (c WorkQueueConfig) withDefaults() WorkQueueConfig {
	if c.Batch == 0 {
		c.Batch = max(c.Workers, 1)
	}
	if c.Backoff == nil {
		c.Backoff = ConstantBackoff(DefaultRetryDelay)
	}
	w := &c.Words
	if w.Consumer == "" {
		w.Consumer = "consumer"
	}
	if w.Fetch == "" {
		w.Fetch = "fetch " + c.Durable
	}
	if w.FetchError == "" {
		w.FetchError = w.Fetch
	}
	if w.NoMetadata == "" {
		w.NoMetadata = "message without metadata"
	}
	if w.Heartbeat == "" {
		w.Heartbeat = "heartbeat"
	}
	if w.Flush == "" {
		w.Flush = "flush acknowledgements"
	}
	if w.SettleFailed == nil {
		w.SettleFailed = func(log *slog.Logger, m *Msg, s Settle, err error) {
			log.Warn("settle message", "step", s.String(), "subject", m.Subject(), "err", err)
		}
	}
	return c
}

// Validate reports every invalid field at once (errors.Join). A zero field
// is valid: it takes its default.
func (c WorkQueueConfig) Validate() error {
	var errs []error
	if c.Stream == "" || c.Durable == "" {
		errs = append(errs, errors.New("work queue needs a stream and a durable consumer"))
	}
	if c.Batch < 0 || c.Workers < 0 {
		errs = append(errs, fmt.Errorf("batch and workers must not be negative, got %d and %d", c.Batch, c.Workers))
	}
	if c.AckWait < 0 || c.Heartbeat < 0 || c.Grace < 0 {
		errs = append(errs, fmt.Errorf("ack wait, heartbeat and grace must not be negative, got %s, %s and %s", c.AckWait, c.Heartbeat, c.Grace))
	}
	if c.AckWait > 0 && c.Heartbeat >= c.AckWait {
		errs = append(errs, fmt.Errorf("heartbeat %s must be shorter than the ack wait %s", c.Heartbeat, c.AckWait))
	}
	if c.MaxDeliver < -1 {
		errs = append(errs, fmt.Errorf("max deliver must be -1 (unbounded) or more, got %d", c.MaxDeliver))
	}
	return errors.Join(errs...)
}

// NewWorkQueue returns a queue over the consumer cfg.Durable of stream
// cfg.Stream. log may be nil. It returns the joined errors of
// WorkQueueConfig.Validate for an invalid cfg, and an error when js is nil.
func NewWorkQueue(js njs.JetStream, cfg WorkQueueConfig, log *slog.Logger) (*WorkQueue, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("work queue config: %w", err)
	}
	if js == nil {
		return nil, errors.New("work queue needs a jetstream context")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &WorkQueue{js: js, cfg: cfg.withDefaults(), log: log, freed: make(chan struct{}, 1)}, nil
}

// InFlight returns how many tasks run on the queue's workers (GoBeside
// tasks do not count).
func (q *WorkQueue) InFlight() int { return int(q.inFlight.Load()) }

// Handler decides what becomes of one message: it returns the Outcome
// that settles it, or a task (Go, GoBeside) whose outcome will. It runs in
// the fetch loop, so it must be quick. ctx is Run's: once it has ended, the
// queue is stopping and a handler usually hands the message back.
type Handler func(ctx context.Context, m *Msg) Outcome

// Task is the slow part of handling a message. Its ctx ends when the
// stopping Run's grace has passed; it must return soon after. It returns
// the outcome that settles the message; Go and GoBeside leave it unsettled.
type Task func(ctx context.Context) Outcome

// Msg is one delivery of a message of the queue. The runner settles it,
// as its Outcome says.
type Msg struct {
	msg     njs.Msg
	backoff Backoff

	// Seq is the message's stream sequence.
	Seq uint64
	// Delivery counts the deliveries of the message, from 1; a hand-back
	// counts too.
	Delivery int
	// Final is set on the last delivery the server makes (MaxDeliver):
	// what fails now fails for good.
	Final bool
	// Stored is when the stream stored the message.
	Stored time.Time
	// Log is the queue's logger with the key seq. The runner logs the
	// heartbeats and the settling of the message with it; a handler may
	// replace it, a task must not.
	Log *slog.Logger
}

// Subject returns the message's subject.
func (m *Msg) Subject() string { return m.msg.Subject() }

// Data returns the message's body.
func (m *Msg) Data() []byte { return m.msg.Data() }

// Headers returns the message's headers.
func (m *Msg) Headers() nats.Header { return m.msg.Headers() }

// Backoff returns how long the message waits when this delivery fails:
// the queue's Backoff of Delivery.
func (m *Msg) Backoff() time.Duration { return m.backoff(m.Delivery) }

// Settle is a way to settle a message.
type Settle int

// The ways to settle a message.
const (
	// SettleAck acknowledges the message: it is done.
	SettleAck Settle = iota + 1
	// SettleNak has the message delivered again, after a delay.
	SettleNak
	// SettleHandBack has the message delivered again because this process
	// stops.
	SettleHandBack
	// SettleTerm ends the message for good.
	SettleTerm
)

// String returns "ack", "nak", "hand back" or "term".
func (s Settle) String() string {
	switch s {
	case SettleAck:
		return "ack"
	case SettleNak:
		return "nak"
	case SettleHandBack:
		return "hand back"
	case SettleTerm:
		return "term"
	}
	return fmt.Sprintf("settle(%d)", int(s))
}

// Outcome says what the runner does with a message once its Handler or
// Task returns. The zero Outcome leaves the message unsettled: the server
// delivers it again after the ack wait.
type Outcome struct {
	settle Settle
	delay  time.Duration
	reason string
	task   Task
	beside bool
}

// Ack returns the outcome that acknowledges the message: it is done.
func Ack() Outcome { return Outcome{settle: SettleAck} }

// Retry returns the outcome of a failed delivery: the message is delivered
// again, to any process, after delay (usually Msg.Backoff), or at once
// when delay is 0. On a Final delivery the server does not deliver it
// again.
func Retry(delay time.Duration) Outcome { return Outcome{settle: SettleNak, delay: delay} }

// HandBack returns the outcome of a process that stops before the message
// is done: it is delivered again, to any process, after delay, or at once
// when delay is 0. A hand-back counts as a delivery.
func HandBack(delay time.Duration) Outcome { return Outcome{settle: SettleHandBack, delay: delay} }

// Term returns the outcome of a poison message, one that can never be
// handled (e.g. it does not decode): it is never delivered again. reason,
// if not empty, goes into the server's advisory.
func Term(reason string) Outcome { return Outcome{settle: SettleTerm, reason: reason} }

// Go returns the outcome that runs task on one of the queue's workers, in
// its own goroutine with heartbeats, and settles the message with the
// task's outcome.
func Go(task Task) Outcome { return Outcome{task: task} }

// GoBeside is Go without taking a worker: for a task that may wait for the
// task of another message (a restore waits for its pre-restore backup).
func GoBeside(task Task) Outcome { return Outcome{task: task, beside: true} }

// queueRun is the state of one Run.
type queueRun struct {
	q          *WorkQueue
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
func (q *WorkQueue) Run(ctx context.Context, handle Handler) error {
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
		batch, err := cons.Fetch(n, njs.FetchMaxWait(fetchWait))
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
func (r *queueRun) dispatch(ctx context.Context, raw njs.Msg) {
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
func (q *WorkQueue) release() {
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
func (q *WorkQueue) settle(m *Msg, out Outcome) {
	var err error
	switch out.settle {
	case SettleAck:
		err = m.msg.Ack()
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
