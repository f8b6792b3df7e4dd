package jetstream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	njs "github.com/nats-io/nats.go/jetstream"

	"github.com/backupledger/backupledger/adapters/internal/workqueue"
	"github.com/backupledger/backupledger/domain"
)

// Jobs runs the backup jobs of this process. All processes share the work
// through the durable consumer ConsumerName: each fetches only as many
// messages as it has free workers, runs every backup.requested event as a
// job, forgets the archives of backup.deleted events, and acknowledges every
// other event at once.
type Jobs struct {
	cfg    Config
	run    func(ctx context.Context, j domain.Job) error
	forget func(ctx context.Context, backupID string) error
	log    *slog.Logger
	queue  *workqueue.Queue
	opts   JobsOptions
}

// JobsOptions are what Jobs take beyond their configuration; the zero
// value runs no restores and tells no one about jobs.
type JobsOptions struct {
	// Restores runs the restores (restore.requested); nil hands them to
	// another process.
	Restores RestoreRunner
	// Hooks are told about jobs (metrics).
	Hooks JobHooks
}

// JobHooks are told about jobs, for metrics; nil fields are skipped. They
// must be quick.
type JobHooks struct {
	// Redelivered: a job (backup or restore) came again after an earlier
	// delivery.
	Redelivered func()
	// FailedFinal: a job failed on its last delivery.
	FailedFinal func()
}

func (h JobHooks) redelivered(n int) {
	if n > 1 && h.Redelivered != nil {
		h.Redelivered()
	}
}

func (h JobHooks) failedFinal() {
	if h.FailedFinal != nil {
		h.FailedFinal()
	}
}

// RestoreRunner drives restores: *service.Restores.
type RestoreRunner interface {
	// Run drives a restore, requested at stream sequence seq, to its end;
	// an error means run it again later.
	Run(ctx context.Context, app, restoreID string, seq uint64, heartbeat func()) error
	// Fail records that a restore failed in step.
	Fail(ctx context.Context, app, restoreID, step, reason string) error
}

// StepRunner names the step of a restore whose runner gave up.
const StepRunner = "runner"

// NewJobs returns Jobs with cfg (zero fields take their defaults). run does
// one job: nil means it is settled and is acknowledged, an error means it is
// delivered again (after cfg.RetryDelay, or at once to another process when
// this one is stopping); run must return soon after its ctx is cancelled.
// forget removes the archive of a deleted backup; opts adds restores and
// hooks. log may be nil. It returns
// the joined errors of Config.Validate for an invalid cfg, and an error when
// js, run or forget is nil.
func NewJobs(js njs.JetStream, cfg Config, run func(ctx context.Context, j domain.Job) error, forget func(ctx context.Context, backupID string) error, opts JobsOptions, log *slog.Logger) (*Jobs, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("jetstream config: %w", err)
	}
	if run == nil || forget == nil {
		return nil, errors.New("jobs need a run and a forget function")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("worker", cfg.WorkerName)
	queue, err := workqueue.New(js, workqueue.Config{
		Stream:     StreamName,
		Durable:    ConsumerName,
		Batch:      cfg.Workers,
		Workers:    cfg.Workers,
		AckWait:    cfg.AckWait,
		MaxDeliver: cfg.MaxDeliver,
		Backoff:    workqueue.ConstantBackoff(cfg.RetryDelay),
		Grace:      cfg.Grace,
		Words: workqueue.Wording{
			Consumer:   "job consumer",
			Fetch:      "fetch jobs",
			NoMetadata: "job message without metadata",
			Flush:      "flush job acknowledgements",
			SettleFailed: func(log *slog.Logger, m *workqueue.Msg, s workqueue.Settle, err error) {
				log.Warn("job message "+s.String(), "subject", m.Subject(), "err", err)
			},
		},
	}, log)
	if err != nil {
		return nil, err
	}
	return &Jobs{cfg: cfg, run: run, forget: forget, log: log, queue: queue, opts: opts}, nil
}

// InFlight returns how many jobs this process is running.
func (j *Jobs) InFlight() int { return j.queue.InFlight() }

// Run fetches and handles messages of the job consumer until ctx is
// cancelled; call it once. Then it stops fetching, lets its open pull
// request end (at most about a second; jobs it still delivers are handed
// back at once), gives the running jobs up to Config.Grace to finish,
// cancels the rest, hands back those that return an
// error (a negative acknowledgement without delay, so that another process
// takes them at once; the hand-back counts as a delivery), and returns nil
// once they have all ended. A job on its final delivery is not cancelled at
// once, since the server would not deliver it again: it keeps up to AckWait
// to finish. Run returns an error, wrapped, when the consumer does not exist
// (see Setup) or the connection is closed.
func (j *Jobs) Run(ctx context.Context) error {
	return j.queue.Run(ctx, j.handle)
}

// handle dispatches one message by its event type: backups run on a
// worker, restores beside the workers, the archives of deleted backups are
// forgotten at once. ctx is Run's.
func (j *Jobs) handle(ctx context.Context, m *workqueue.Msg) workqueue.Outcome {
	typ := m.Headers().Get(HeaderEventType)
	var env *domain.Envelope
	if typ == "" {
		var err error
		if env, err = decodeEnvelope(m.Data()); err != nil {
			return undecodable(m, err)
		}
		typ = env.Type
	}
	switch typ {
	case domain.TypeBackupRequested:
		job, err := decodeJob(env, m)
		if err != nil {
			return undecodable(m, err)
		}
		if ctx.Err() != nil {
			return workqueue.HandBack(0)
		}
		j.opts.Hooks.redelivered(m.Delivery)
		m.Log = j.log.With("app", job.App, "backup_id", job.BackupID, "seq", job.Seq, "attempt", job.Attempt)
		return workqueue.Go(func(ctx context.Context) workqueue.Outcome { return j.runJob(ctx, m, job) })
	case domain.TypeRestoreRequested:
		app, rid, err := decodeRestore(env, m.Data())
		if err != nil {
			return undecodable(m, err)
		}
		if ctx.Err() != nil || j.opts.Restores == nil {
			return workqueue.HandBack(j.cfg.RetryDelay)
		}
		j.opts.Hooks.redelivered(m.Delivery)
		m.Log = j.log.With("app", app, "restore_id", rid, "delivery", m.Delivery)
		// Restores do not take a worker: one may wait for its pre-restore
		// backup, which needs one.
		return workqueue.GoBeside(func(ctx context.Context) workqueue.Outcome { return j.runRestore(ctx, m, app, rid) })
	case domain.TypeBackupDeleted, domain.TypeBackupExpired:
		id, err := decodeDeleted(env, m.Data())
		if err != nil {
			return undecodable(m, err)
		}
		if err := j.forget(ctx, id); err != nil {
			m.Log.Warn("forget archive of deleted backup", "backup_id", id, "err", err)
			return workqueue.Retry(m.Backoff())
		}
		return workqueue.Ack()
	default:
		return workqueue.Ack()
	}
}

// undecodable logs a message that does not decode and terminates it: it
// never would.
func undecodable(m *workqueue.Msg, err error) workqueue.Outcome {
	m.Log.Error("terminate undecodable ledger message", "subject", m.Subject(), "err", err)
	return workqueue.Term("undecodable: " + err.Error())
}

// runJob runs one job; ctx ends when Run has stopped and its grace has
// passed.
func (j *Jobs) runJob(ctx context.Context, m *workqueue.Msg, job domain.Job) workqueue.Outcome {
	log := m.Log
	var (
		jobCtx context.Context
		cancel context.CancelFunc
	)
	if job.Final {
		// The server will not deliver the final delivery again: when this
		// process stops, give the job AckWait to end on its own.
		jobCtx, cancel = context.WithCancel(context.WithoutCancel(ctx))
		stop := context.AfterFunc(ctx, func() { time.AfterFunc(j.cfg.AckWait, cancel) })
		defer stop()
	} else {
		jobCtx, cancel = context.WithCancel(ctx)
	}
	defer cancel()

	log.Debug("job started", "final", job.Final)
	err := j.run(jobCtx, job)
	switch {
	case err == nil:
		log.Debug("job done")
		return workqueue.Ack()
	case ctx.Err() != nil && !job.Final:
		log.Info("job handed back", "err", err)
		return workqueue.HandBack(0)
	case job.Final:
		j.opts.Hooks.failedFinal()
		log.Error("job failed on its final delivery; it is not delivered again", "err", err)
		return workqueue.Retry(0)
	default:
		delay := m.Backoff()
		log.Warn("job failed; it is delivered again", "err", err, "retry_in", delay)
		return workqueue.Retry(delay)
	}
}

// decodeEnvelope decodes a message body into its envelope.
func decodeEnvelope(body []byte) (*domain.Envelope, error) {
	var env domain.Envelope
	if err := json.Unmarshal(body, &env); err != nil {
		return nil, fmt.Errorf("decode envelope: %w", err)
	}
	if err := validSubject(env.App); err != nil {
		return nil, fmt.Errorf("envelope: %w", err)
	}
	return &env, nil
}

// decodeJob turns a backup.requested message into a job. env is the decoded
// envelope or nil.
func decodeJob(env *domain.Envelope, m *workqueue.Msg) (domain.Job, error) {
	if env == nil {
		var err error
		if env, err = decodeEnvelope(m.Data()); err != nil {
			return domain.Job{}, err
		}
	}
	if env.Type != domain.TypeBackupRequested {
		return domain.Job{}, fmt.Errorf("header says %s, envelope says %q", domain.TypeBackupRequested, env.Type)
	}
	var data domain.BackupRequested
	if err := json.Unmarshal(env.Data, &data); err != nil {
		return domain.Job{}, fmt.Errorf("decode %s data: %w", env.Type, err)
	}
	if data.BackupID == "" {
		return domain.Job{}, fmt.Errorf("%s without backup id", env.Type)
	}
	return domain.Job{
		App:           env.App,
		BackupID:      data.BackupID,
		Seq:           m.Seq,
		Attempt:       m.Delivery,
		Final:         m.Final,
		EventID:       env.ID,
		CorrelationID: env.CorrelationID,
	}, nil
}

// decodeRestore returns the app and restore id of a restore.requested
// message. env is the decoded envelope or nil.
func decodeRestore(env *domain.Envelope, body []byte) (string, string, error) {
	if env == nil {
		var err error
		if env, err = decodeEnvelope(body); err != nil {
			return "", "", err
		}
	}
	var data domain.RestoreRequested
	if err := json.Unmarshal(env.Data, &data); err != nil {
		return "", "", fmt.Errorf("decode %s data: %w", env.Type, err)
	}
	if data.RestoreID == "" || env.App == "" {
		return "", "", fmt.Errorf("%s without restore id or app", env.Type)
	}
	return env.App, data.RestoreID, nil
}

// runRestore drives one restore: done, handed back (this process stops),
// or on its final delivery recorded as failed. The runner's heartbeats keep
// other processes from getting its message meanwhile.
func (j *Jobs) runRestore(ctx context.Context, m *workqueue.Msg, app, restoreID string) workqueue.Outcome {
	log := m.Log
	log.Info("restore runner started")
	err := j.opts.Restores.Run(ctx, app, restoreID, m.Seq, nil)
	switch {
	case err == nil:
		log.Info("restore runner done")
		return workqueue.Ack()
	case m.Final:
		j.opts.Hooks.failedFinal()
		log.Error("restore runner gave up on its final delivery", "err", err)
		fctx, fcancel := context.WithTimeout(context.WithoutCancel(ctx), j.cfg.AckWait)
		defer fcancel()
		reason := fmt.Sprintf("the restore runner gave up after %d deliveries: %v", m.Delivery, err)
		if ferr := j.opts.Restores.Fail(fctx, app, restoreID, StepRunner, reason); ferr != nil {
			log.Error("record the failed restore", "err", ferr)
			return workqueue.Retry(0)
		}
		return workqueue.Ack()
	case ctx.Err() != nil:
		log.Info("restore handed back", "err", err)
		return workqueue.HandBack(0)
	default:
		delay := m.Backoff()
		log.Warn("restore step failed; it runs again", "err", err, "retry_in", delay)
		return workqueue.Retry(delay)
	}
}

// decodeDeleted returns the backup id of a backup.deleted or backup.expired
// message. env is
// the decoded envelope or nil.
func decodeDeleted(env *domain.Envelope, body []byte) (string, error) {
	if env == nil {
		var err error
		if env, err = decodeEnvelope(body); err != nil {
			return "", err
		}
	}
	var data struct {
		BackupID string `json:"backup_id"`
	}
	if err := json.Unmarshal(env.Data, &data); err != nil {
		return "", fmt.Errorf("decode %s data: %w", env.Type, err)
	}
	if data.BackupID == "" {
		return "", fmt.Errorf("%s without backup id", env.Type)
	}
	return data.BackupID, nil
}
