package jetstream

import (
	"context"
	"fmt"

	njs "github.com/nats-io/nats.go/jetstream"

	"github.com/backupledger/backupledger/adapters/internal/ensure"
)

// jobConsumerMaxAckPending bounds the unacknowledged messages of the job
// consumer over all processes. Workers fetch only as many messages as they
// have free slots, so this is a ceiling, not a prefetch.
const jobConsumerMaxAckPending = 1000

// StreamConfig returns the configuration of the stream LEDGER for cfg (with
// defaults applied to its zero fields): file storage, one subject per app,
// the duplicate window, messages that can be neither deleted nor purged,
// direct gets, and no limits.
func StreamConfig(cfg Config) njs.StreamConfig {
	cfg = cfg.withDefaults()
	return njs.StreamConfig{
		Name:        StreamName,
		Description: "backup ledger: one subject per app, every change is an event",
		Subjects:    []string{SubjectAll},
		Retention:   njs.LimitsPolicy,
		Storage:     njs.FileStorage,
		Replicas:    cfg.Replicas,
		Discard:     njs.DiscardOld,
		MaxAge:      0,
		MaxMsgs:     -1,
		MaxBytes:    -1,
		Duplicates:  cfg.DuplicateWindow,
		DenyDelete:  true,
		DenyPurge:   true,
		AllowDirect: true,
	}
}

// JobConsumerConfig returns the configuration of the durable job consumer
// ConsumerName for cfg (with defaults applied to its zero fields).
func JobConsumerConfig(cfg Config) njs.ConsumerConfig {
	cfg = cfg.withDefaults()
	return njs.ConsumerConfig{
		Durable:       ConsumerName,
		Description:   "backup jobs, shared by the workers of every backupd",
		DeliverPolicy: njs.DeliverAllPolicy,
		AckPolicy:     njs.AckExplicitPolicy,
		AckWait:       cfg.AckWait,
		MaxDeliver:    cfg.MaxDeliver,
		MaxAckPending: jobConsumerMaxAckPending,
		FilterSubject: SubjectAll,
		ReplayPolicy:  njs.ReplayInstantPolicy,
	}
}

// Setup creates the stream LEDGER and the durable job consumer, or updates
// them to cfg (zero fields take their defaults). It is idempotent and runs
// at every start. It returns the joined errors of Config.Validate for an
// invalid cfg, and the server's error, wrapped, when the stream or the
// consumer cannot be created or updated (e.g. a storage change, which
// JetStream refuses).
func Setup(ctx context.Context, js njs.JetStream, cfg Config) error {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("jetstream config: %w", err)
	}
	if _, err := ensure.Stream(ctx, js, StreamConfig(cfg)); err != nil {
		return fmt.Errorf("create or update stream %s: %w", StreamName, err)
	}
	if _, err := ensure.Consumer(ctx, js, StreamName, JobConsumerConfig(cfg)); err != nil {
		return fmt.Errorf("create or update consumer %s: %w", ConsumerName, err)
	}
	return nil
}

// Retry calls f until it succeeds, fails in a way a retry cannot cure, or
// ctx ends; each try is bounded (5 s) and the pause between tries grows.
// It is for the steps of set-up at start that make several calls to NATS
// (the signing keys), so that backupd starting on a cluster just started
// or just healed waits for it instead of failing; f must be safe to run
// again.
func Retry(ctx context.Context, f func(ctx context.Context) error) error {
	_, err := ensure.Retry(ctx, func(ctx context.Context) (struct{}, error) { return struct{}{}, f(ctx) })
	return err
}

// The audit mirror's contract with the NATS accounts of
// docs/nats/accounts.conf: the mirror's account reaches the consumer API
// of LEDGER's account under MirrorLedgerAPI, and the mirror's consumer
// delivers under MirrorDeliverPrefix, which LEDGER's account exports to it
// as a stream.
const (
	MirrorLedgerAPI     = "$JS.ledger.API"
	MirrorDeliverPrefix = "ledger.mirror.audit"
)

// MirrorConfig returns the configuration of the audit consumers' copy of
// LEDGER: a stream of the same name in the mirror's account, mirroring
// LEDGER's messages with their sequences, headers and store times, with
// direct gets.
func MirrorConfig(replicas int) njs.StreamConfig {
	return njs.StreamConfig{
		Name:        StreamName,
		Description: "backup ledger, mirrored for audit consumers (read-only)",
		Retention:   njs.LimitsPolicy,
		Storage:     njs.FileStorage,
		Replicas:    max(replicas, 1),
		Discard:     njs.DiscardOld,
		MaxMsgs:     -1,
		MaxBytes:    -1,
		AllowDirect: true,
		Mirror: &njs.StreamSource{
			Name:     StreamName,
			External: &njs.ExternalStream{APIPrefix: MirrorLedgerAPI, DeliverPrefix: MirrorDeliverPrefix},
		},
	}
}

// SetupAuditMirror creates the audit mirror of LEDGER (MirrorConfig) in the
// account whose JetStream API js reaches, or updates it; the server then
// keeps it in step with LEDGER. It is idempotent and runs at every start.
// It returns the server's error, wrapped, when the stream cannot be created
// or updated (e.g. no responders when the account is not configured).
func SetupAuditMirror(ctx context.Context, js njs.JetStream, replicas int) error {
	if _, err := ensure.Stream(ctx, js, MirrorConfig(replicas)); err != nil {
		return fmt.Errorf("create or update the audit mirror of %s: %w", StreamName, err)
	}
	return nil
}
