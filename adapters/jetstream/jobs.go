package jetstream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	njs "github.com/nats-io/nats.go/jetstream"

	"github.com/backupledger/backupledger/domain"
)

// fetchWait is how long one pull request of the job consumer waits for
// messages. Run waits for the open request to end before it returns, so
// that no pull request outlives the process and strands a message until its
// ack wait (DESIGN §10); this bounds how long that takes.
const fetchWait = time.Second

// fetchRetry is how long Run waits after a failed pull request.
const fetchRetry = time.Second

// Jobs runs the backup jobs of this process. All processes share the work
// through the durable consumer ConsumerName: each fetches only as many
// messages as it has free workers, runs every backup.requested event as a
// job, forgets the archives of backup.deleted events, and acknowledges every
// other event at once.
type Jobs struct {
	js     njs.JetStream
	cfg    Config
	run    func(ctx context.Context, j domain.Job) error
	forget func(ctx context.Context, backupID string) error
	log    *slog.Logger

	// Restores runs the restores (restore.requested); nil hands them to
	// another process. Set it before Run.
	Restores RestoreRunner
	// Hooks are told about jobs (metrics); set them before Run.
	Hooks JobHooks

	inFlight atomic.Int64
	freed    chan struct{}
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

func (h JobHooks) redelivered(n uint64) {
	if n > 1 && h.Redelivered != nil {
		h.Redelivered()
	}
}

func (h JobHooks) failedFinal() {
	if h.FailedFinal != nil {
		h.FailedFinal()
	}
}

// RestoreRunner drives restores: *domain.Restores.
type RestoreRunner interface {
	// Run drives a restore to its end; an error means run it again later.
	Run(ctx context.Context, app, restoreID string, heartbeat func()) error
	// Fail records that a restore failed in step.
	Fail(ctx context.Context, app, restoreID, step, reason string) error
}

// StepRunner names the step of a restore whose runner gave up.
const StepRunner = "runner"

// NewJobs returns Jobs with cfg (zero fields take their defaults). run does
// one job: nil means it is settled and is acknowledged, an error means it is
// delivered again (after cfg.RetryDelay, or at once to another process when
// this one is stopping); run must return soon after its ctx is cancelled.
// forget removes the archive of a deleted backup. log may be nil. It returns
// the joined errors of Config.Validate for an invalid cfg, and an error when
// run or forget is nil.
func NewJobs(js njs.JetStream, cfg Config, run func(ctx context.Context, j domain.Job) error, forget func(ctx context.Context, backupID string) error, log *slog.Logger) (*Jobs, error) {
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
	return &Jobs{js: js, cfg: cfg, run: run, forget: forget, log: log, freed: make(chan struct{}, 1)}, nil
}

// InFlight returns how many jobs this process is running.
func (j *Jobs) InFlight() int { return int(j.inFlight.Load()) }

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
	cons, err := j.js.Consumer(ctx, StreamName, ConsumerName)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("job consumer %s: %w", ConsumerName, err)
	}
	// Running jobs are cancelled only once no pull request is open any
	// more: a job handed back earlier could be delivered again to this
	// process's expiring request, and would be handed back once more.
	jobsCtx, cancelJobs := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	defer func() {
		// Let running jobs finish within the grace period, then hand back
		// the rest.
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		if j.cfg.Grace > 0 {
			t := time.NewTimer(j.cfg.Grace)
			select {
			case <-done:
			case <-t.C:
			}
			t.Stop()
		}
		cancelJobs()
		<-done
		// Make sure the last acknowledgements reach the server before the
		// caller closes the connection.
		if err := j.js.Conn().FlushTimeout(time.Second); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
			j.log.Warn("flush job acknowledgements", "err", err)
		}
	}()
	for ctx.Err() == nil {
		free := j.cfg.Workers - j.InFlight()
		if free <= 0 {
			select {
			case <-j.freed:
			case <-ctx.Done():
			}
			continue
		}
		batch, err := cons.Fetch(free, njs.FetchMaxWait(fetchWait))
		if err != nil {
			if j.js.Conn().IsClosed() {
				return fmt.Errorf("fetch jobs: %w", err)
			}
			j.log.Warn("fetch jobs", "err", err)
			pause(ctx)
			continue
		}
		// Drain the whole batch, also when ctx ends meanwhile: the pull
		// request stays open on the server until it expires, and whatever it
		// delivers is handled (jobs are handed back).
		for msg := range batch.Messages() {
			j.handle(ctx, jobsCtx, msg, &wg)
		}
		if err := batch.Error(); err != nil {
			if j.js.Conn().IsClosed() {
				return fmt.Errorf("fetch jobs: %w", err)
			}
			j.log.Warn("fetch jobs", "err", err)
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

// handle dispatches one message by its event type. ctx is Run's, jobsCtx
// the one that running jobs get.
func (j *Jobs) handle(ctx, jobsCtx context.Context, msg njs.Msg, wg *sync.WaitGroup) {
	md, err := msg.Metadata()
	if err != nil {
		j.log.Error("job message without metadata", "subject", msg.Subject(), "err", err)
		return // cannot be acknowledged either
	}
	log := j.log.With("seq", md.Sequence.Stream)
	typ := msg.Headers().Get(HeaderEventType)
	var env *domain.Envelope
	if typ == "" {
		if env, err = decodeEnvelope(msg.Data()); err != nil {
			j.term(log, msg, err)
			return
		}
		typ = env.Type
	}
	switch typ {
	case domain.TypeBackupRequested:
		job, err := decodeJob(env, msg.Data(), md, j.cfg.MaxDeliver)
		if err != nil {
			j.term(log, msg, err)
			return
		}
		if ctx.Err() != nil {
			j.settle(log, msg, "hand back", msg.Nak())
			return
		}
		j.Hooks.redelivered(md.NumDelivered)
		j.inFlight.Add(1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer j.release()
			j.runJob(jobsCtx, msg, job)
		}()
	case domain.TypeRestoreRequested:
		app, rid, err := decodeRestore(env, msg.Data())
		if err != nil {
			j.term(log, msg, err)
			return
		}
		if ctx.Err() != nil || j.Restores == nil {
			j.settle(log, msg, "hand back", msg.NakWithDelay(j.cfg.RetryDelay))
			return
		}
		j.Hooks.redelivered(md.NumDelivered)
		final := md.NumDelivered >= uint64(j.cfg.MaxDeliver)
		// Restores do not take a worker slot: one may wait for its
		// pre-restore backup, which needs one.
		wg.Add(1)
		go func() {
			defer wg.Done()
			j.runRestore(jobsCtx, msg, app, rid, final, int(md.NumDelivered))
		}()
	case domain.TypeBackupDeleted, domain.TypeBackupExpired:
		id, err := decodeDeleted(env, msg.Data())
		if err != nil {
			j.term(log, msg, err)
			return
		}
		if err := j.forget(ctx, id); err != nil {
			log.Warn("forget archive of deleted backup", "backup_id", id, "err", err)
			j.settle(log, msg, "nak", msg.NakWithDelay(j.cfg.RetryDelay))
			return
		}
		j.settle(log, msg, "ack", msg.Ack())
	default:
		j.settle(log, msg, "ack", msg.Ack())
	}
}

// release frees a worker slot and wakes Run if it waits for one.
func (j *Jobs) release() {
	j.inFlight.Add(-1)
	select {
	case j.freed <- struct{}{}:
	default:
	}
}

// runJob runs one job with heartbeats and settles its message.
func (j *Jobs) runJob(ctx context.Context, msg njs.Msg, job domain.Job) {
	log := j.log.With("app", job.App, "backup_id", job.BackupID, "seq", job.Seq, "attempt", job.Attempt)
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

	stopHB := j.heartbeat(msg, log)
	log.Debug("job started", "final", job.Final)
	err := j.run(jobCtx, job)
	stopHB()

	switch {
	case err == nil:
		log.Debug("job done")
		j.settle(log, msg, "ack", msg.Ack())
	case ctx.Err() != nil && !job.Final:
		log.Info("job handed back", "err", err)
		j.settle(log, msg, "hand back", msg.Nak())
	case job.Final:
		j.Hooks.failedFinal()
		log.Error("job failed on its final delivery; it is not delivered again", "err", err)
		j.settle(log, msg, "nak", msg.Nak())
	default:
		log.Warn("job failed; it is delivered again", "err", err, "retry_in", j.cfg.RetryDelay)
		j.settle(log, msg, "nak", msg.NakWithDelay(j.cfg.RetryDelay))
	}
}

// settle logs a failed acknowledgement of kind what.
func (j *Jobs) settle(log *slog.Logger, msg njs.Msg, what string, err error) {
	if err != nil {
		log.Warn("job message "+what, "subject", msg.Subject(), "err", err)
	}
}

// term logs an undecodable message and terminates it: it would never decode.
func (j *Jobs) term(log *slog.Logger, msg njs.Msg, err error) {
	log.Error("terminate undecodable ledger message", "subject", msg.Subject(), "err", err)
	j.settle(log, msg, "term", msg.TermWithReason("undecodable: "+err.Error()))
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
func decodeJob(env *domain.Envelope, body []byte, md *njs.MsgMetadata, maxDeliver int) (domain.Job, error) {
	if env == nil {
		var err error
		if env, err = decodeEnvelope(body); err != nil {
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
		Seq:           md.Sequence.Stream,
		Attempt:       int(md.NumDelivered),
		Final:         md.NumDelivered >= uint64(maxDeliver),
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

// runRestore drives one restore with heartbeats, so that no other process
// gets its message while this one runs it, and settles the message: done,
// handed back (this process stops), or on its final delivery recorded as
// failed.
func (j *Jobs) runRestore(ctx context.Context, msg njs.Msg, app, restoreID string, final bool, delivery int) {
	log := j.log.With("app", app, "restore_id", restoreID, "delivery", delivery)
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	stopHB := j.heartbeat(msg, log)
	log.Info("restore runner started")
	err := j.Restores.Run(runCtx, app, restoreID, nil)
	stopHB()
	switch {
	case err == nil:
		log.Info("restore runner done")
		j.settle(log, msg, "ack", msg.Ack())
	case final:
		j.Hooks.failedFinal()
		log.Error("restore runner gave up on its final delivery", "err", err)
		fctx, fcancel := context.WithTimeout(context.WithoutCancel(ctx), j.cfg.AckWait)
		defer fcancel()
		reason := fmt.Sprintf("the restore runner gave up after %d deliveries: %v", delivery, err)
		if ferr := j.Restores.Fail(fctx, app, restoreID, StepRunner, reason); ferr != nil {
			log.Error("record the failed restore", "err", ferr)
			j.settle(log, msg, "nak", msg.Nak())
			return
		}
		j.settle(log, msg, "ack", msg.Ack())
	case ctx.Err() != nil:
		log.Info("restore handed back", "err", err)
		j.settle(log, msg, "hand back", msg.Nak())
	default:
		log.Warn("restore step failed; it runs again", "err", err, "retry_in", j.cfg.RetryDelay)
		j.settle(log, msg, "nak", msg.NakWithDelay(j.cfg.RetryDelay))
	}
}

// heartbeat tells the server every AckWait/3 that msg is still being
// worked on, until the returned function is called.
func (j *Jobs) heartbeat(msg njs.Msg, log *slog.Logger) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(j.cfg.AckWait / 3)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				if err := msg.InProgress(); err != nil {
					log.Warn("heartbeat", "err", err)
				}
			}
		}
	}()
	return sync.OnceFunc(func() {
		close(done)
		wg.Wait()
	})
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
