package jetstream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	njs "github.com/nats-io/nats.go/jetstream"

	"github.com/backupledger/backupledger/adapters/internal/workqueue"
	"github.com/backupledger/backupledger/domain"
)

// ReactorConsumerName is the durable consumer of the notifications: a
// contract, like ConsumerName.
const ReactorConsumerName = "notifier"

// Reactor hands every ledger event, at least once, to a handler, through
// a durable consumer that all processes share: each event goes to one of
// them, and one whose handler failed is delivered again after a delay. The
// consumer starts with the events appended after it was first made, so
// that adding it to a ledger with a history does not replay the history.
type Reactor struct {
	js      njs.JetStream
	durable string
	handle  func(ctx context.Context, seq uint64, env *domain.Envelope, raw []byte) error
	wants   func(typ string) bool
	retry   time.Duration
	log     *slog.Logger
}

// NewReactor returns a reactor over the durable consumer durable. handle
// returns nil when the event is dealt with; an error has it delivered
// again after retry (default 5 s).
func NewReactor(js njs.JetStream, durable string, retry time.Duration, handle func(ctx context.Context, seq uint64, env *domain.Envelope, raw []byte) error, log *slog.Logger) *Reactor {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if retry <= 0 {
		retry = 5 * time.Second
	}
	return &Reactor{js: js, durable: durable, handle: handle, retry: retry, log: log.With("consumer", durable)}
}

// ReactorConsumerConfig is the configuration of a reactor's consumer.
func ReactorConsumerConfig(durable string) njs.ConsumerConfig {
	return njs.ConsumerConfig{
		Durable:       durable,
		Description:   "ledger events for " + durable + ", shared by every backupd",
		DeliverPolicy: njs.DeliverNewPolicy,
		AckPolicy:     njs.AckExplicitPolicy,
		AckWait:       time.Minute,
		MaxDeliver:    -1,
		MaxAckPending: 256,
		FilterSubject: SubjectAll,
		ReplayPolicy:  njs.ReplayInstantPolicy,
	}
}

// Setup creates the reactor's consumer if it does not exist; it never
// changes an existing one (its start is fixed when it is made). It is
// tried again while the cluster cannot answer (Retry).
func (r *Reactor) Setup(ctx context.Context) error {
	return Retry(ctx, r.setup)
}

func (r *Reactor) setup(ctx context.Context) error {
	if _, err := r.js.Consumer(ctx, StreamName, r.durable); err == nil {
		return nil
	} else if !errors.Is(err, njs.ErrConsumerNotFound) {
		return fmt.Errorf("consumer %s: %w", r.durable, err)
	}
	if _, err := r.js.CreateOrUpdateConsumer(ctx, StreamName, ReactorConsumerConfig(r.durable)); err != nil {
		return fmt.Errorf("create consumer %s: %w", r.durable, err)
	}
	return nil
}

// reactorBatch is the most events one pull request of a reactor asks for.
const reactorBatch = 64

// Run hands events to the handler, one after another, until ctx ends,
// then returns nil. It returns an error when the consumer does not exist
// (see Setup) or the connection is closed.
func (r *Reactor) Run(ctx context.Context) error {
	q, err := workqueue.New(r.js, workqueue.Config{
		Stream:  StreamName,
		Durable: r.durable,
		Batch:   reactorBatch,
		Backoff: workqueue.ConstantBackoff(r.retry),
		Words: workqueue.Wording{
			Fetch:        "fetch events",
			FetchError:   "fetch " + r.durable,
			NoMetadata:   "event without metadata",
			SettleFailed: eventSettleFailed,
		},
	}, r.log)
	if err != nil {
		return err
	}
	return q.Run(ctx, r.one)
}

// Wants makes the reactor hand the handler only the events whose type
// (its HeaderEventType, which backupd sets on every event) wants accepts:
// the others are acknowledged without being decoded. Call it before Run.
func (r *Reactor) Wants(wants func(typ string) bool) { r.wants = wants }

// one hands one event to the handler.
func (r *Reactor) one(ctx context.Context, m *workqueue.Msg) workqueue.Outcome {
	if typ := m.Headers().Get(HeaderEventType); typ != "" && r.wants != nil && !r.wants(typ) {
		return workqueue.Ack()
	}
	env, err := decodeEnvelope(m.Data())
	if err != nil {
		m.Log.Warn("event not decodable; skipped", "err", err)
		return workqueue.Term("")
	}
	if ctx.Err() != nil {
		return workqueue.HandBack(0) // another process takes it at once
	}
	if err := r.handle(ctx, m.Seq, env, m.Data()); err != nil {
		delay := m.Backoff()
		m.Log.Warn("event not handled; delivered again later", "type", env.Type, "app", env.App, "err", err, "retry_in", delay)
		return workqueue.Retry(delay)
	}
	return workqueue.Ack()
}

// eventSettleFailed logs a failed settle step of an event. A failed
// hand-back is not logged: the ack wait delivers the event again.
func eventSettleFailed(log *slog.Logger, _ *workqueue.Msg, s workqueue.Settle, err error) {
	switch s {
	case workqueue.SettleAck:
		log.Warn("ack event", "err", err)
	case workqueue.SettleNak:
		log.Warn("nak event", "err", err)
	case workqueue.SettleTerm:
		log.Warn("terminate event", "err", err)
	}
}
