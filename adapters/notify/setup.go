package notify

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/backupledger/backupledger/adapters/internal/ensure"
)

// consumerMaxAckPending bounds the unacknowledged jobs of the consumer over
// all processes. Workers fetch only as many jobs as they have free slots, so
// this is a ceiling, not a prefetch; jobs waiting for a retry do not count.
const consumerMaxAckPending = 1000

// ackWaitMargin is how much longer than the longest delivery the consumer
// waits for an acknowledgement; deliveries also send a heartbeat every
// third of the ack wait.
const ackWaitMargin = 30 * time.Second

// StreamConfig returns the configuration of the stream NOTIFY for cfg (zero
// fields take their defaults): work-queue retention, file storage, the
// subjects notify.> and a duplicate window of DuplicateWindow.
func StreamConfig(cfg Config) jetstream.StreamConfig {
	cfg = cfg.withDefaults()
	return jetstream.StreamConfig{
		Name:        StreamName,
		Description: "backup ledger notifications to deliver: webhook POSTs and e-mails",
		Subjects:    []string{SubjectAll},
		Retention:   jetstream.WorkQueuePolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    cfg.Replicas,
		Discard:     jetstream.DiscardOld,
		MaxMsgs:     -1,
		MaxBytes:    -1,
		Duplicates:  DuplicateWindow,
	}
}

// LogStreamConfig returns the configuration of the stream NOTIFY_LOG for cfg
// (zero fields take their defaults): limits retention, file storage, the
// subjects notifylog.>, at most cfg.LogPerWebhook messages per subject and
// none older than cfg.LogMaxAge.
func LogStreamConfig(cfg Config) jetstream.StreamConfig {
	cfg = cfg.withDefaults()
	return jetstream.StreamConfig{
		Name:              LogStreamName,
		Description:       "backup ledger notifications: the delivery log of every webhook",
		Subjects:          []string{LogSubjectAll},
		Retention:         jetstream.LimitsPolicy,
		Storage:           jetstream.FileStorage,
		Replicas:          cfg.Replicas,
		Discard:           jetstream.DiscardOld,
		MaxMsgs:           -1,
		MaxBytes:          -1,
		MaxAge:            cfg.LogMaxAge,
		MaxMsgsPerSubject: int64(cfg.LogPerWebhook),
		AllowDirect:       true,
	}
}

// ConsumerConfig returns the configuration of the durable consumer
// notify-worker for cfg (zero fields take their defaults): explicit
// acknowledgements, unbounded deliveries (cfg.RetryFor bounds them), and an
// ack wait 30s above the longer of cfg.Timeout and cfg.SMTP.Timeout.
func ConsumerConfig(cfg Config) jetstream.ConsumerConfig {
	cfg = cfg.withDefaults()
	return jetstream.ConsumerConfig{
		Durable:       ConsumerName,
		Description:   "backup ledger notifications, shared by the workers of every process",
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       max(cfg.Timeout, cfg.SMTP.Timeout) + ackWaitMargin,
		MaxDeliver:    -1,
		MaxAckPending: consumerMaxAckPending,
		FilterSubject: SubjectAll,
		ReplayPolicy:  jetstream.ReplayInstantPolicy,
	}
}

// Setup creates the streams NOTIFY and NOTIFY_LOG and the durable consumer
// notify-worker, or updates them to cfg (zero fields take their defaults).
// It is idempotent and runs at every start. It returns the joined errors of
// Config.Validate for an invalid cfg, and the server's error, wrapped, when
// a stream or the consumer cannot be created or updated.
func Setup(ctx context.Context, js jetstream.JetStream, cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("notify config: %w", err)
	}
	if _, err := ensure.Stream(ctx, js, StreamConfig(cfg)); err != nil {
		return fmt.Errorf("create or update stream %s: %w", StreamName, err)
	}
	if _, err := ensure.Stream(ctx, js, LogStreamConfig(cfg)); err != nil {
		return fmt.Errorf("create or update stream %s: %w", LogStreamName, err)
	}
	if _, err := ensure.Consumer(ctx, js, StreamName, ConsumerConfig(cfg)); err != nil {
		return fmt.Errorf("create or update consumer %s: %w", ConsumerName, err)
	}
	return nil
}
