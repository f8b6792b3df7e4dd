package jetstream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	njs "github.com/nats-io/nats.go/jetstream"

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
// changes an existing one (its start is fixed when it is made).
func (r *Reactor) Setup(ctx context.Context) error {
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

// Run hands events to the handler until ctx ends, then returns nil. It
// returns an error when the consumer does not exist (see Setup) or the
// connection is closed.
func (r *Reactor) Run(ctx context.Context) error {
	cons, err := r.js.Consumer(ctx, StreamName, r.durable)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("consumer %s: %w", r.durable, err)
	}
	for ctx.Err() == nil {
		batch, err := cons.Fetch(64, njs.FetchMaxWait(fetchWait))
		if err != nil {
			if r.js.Conn().IsClosed() {
				return fmt.Errorf("fetch %s: %w", r.durable, err)
			}
			r.log.Warn("fetch events", "err", err)
			pause(ctx)
			continue
		}
		for msg := range batch.Messages() {
			r.one(ctx, msg)
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) {
			if r.js.Conn().IsClosed() {
				return fmt.Errorf("fetch %s: %w", r.durable, err)
			}
			r.log.Warn("fetch events", "err", err)
			pause(ctx)
		}
	}
	return nil
}

// one handles one message and settles it.
func (r *Reactor) one(ctx context.Context, msg njs.Msg) {
	md, err := msg.Metadata()
	if err != nil {
		r.log.Error("event without metadata", "subject", msg.Subject(), "err", err)
		return
	}
	log := r.log.With("seq", md.Sequence.Stream)
	env, err := decodeEnvelope(msg.Data())
	if err != nil {
		log.Warn("event not decodable; skipped", "err", err)
		if err := msg.Term(); err != nil {
			log.Warn("terminate event", "err", err)
		}
		return
	}
	if ctx.Err() != nil {
		_ = msg.Nak() // another process takes it at once
		return
	}
	if err := r.handle(ctx, md.Sequence.Stream, env, msg.Data()); err != nil {
		log.Warn("event not handled; delivered again later", "type", env.Type, "app", env.App, "err", err, "retry_in", r.retry)
		if err := msg.NakWithDelay(r.retry); err != nil {
			log.Warn("nak event", "err", err)
		}
		return
	}
	if err := msg.Ack(); err != nil {
		log.Warn("ack event", "err", err)
	}
}
