package jetstream_test

import (
	"context"
	"encoding/json"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	njs "github.com/nats-io/nats.go/jetstream"

	"github.com/backupledger/backupledger/adapters/jetstream"
	"github.com/backupledger/backupledger/domain"
	"github.com/backupledger/backupledger/test/natstest"
)

// jobsConfig is a config with short waits for tests.
func jobsConfig() jetstream.Config {
	return jetstream.Config{AckWait: time.Second, RetryDelay: 50 * time.Millisecond, WorkerName: "test"}
}

// jobsEnv is a server with the ledger set up, one process to append
// commands, and what the job functions saw.
type jobsEnv struct {
	s      *server.Server
	cfg    jetstream.Config
	p      *stack
	jobs   chan domain.Job
	forgot chan string
	runs   atomic.Int64
}

func newJobsEnv(t *testing.T, cfg jetstream.Config) *jobsEnv {
	t.Helper()
	e := &jobsEnv{s: newServer(t, cfg), cfg: cfg, jobs: make(chan domain.Job, 100), forgot: make(chan string, 100)}
	e.p = newStack(t, e.s, &counterIDs{prefix: "A"})
	runFollower(t, e.p.follower)
	return e
}

// start runs a Jobs on its own connection with run; it returns the Jobs and
// a function that stops it and waits for Run to return.
func (e *jobsEnv) start(t *testing.T, run func(context.Context, domain.Job) error) (*jetstream.Jobs, func()) {
	t.Helper()
	_, js := natstest.Connect(t, e.s)
	rec := func(ctx context.Context, j domain.Job) error {
		e.runs.Add(1)
		e.jobs <- j
		return run(ctx, j)
	}
	forget := func(_ context.Context, id string) error {
		e.forgot <- id
		return nil
	}
	j, err := jetstream.NewJobs(js, e.cfg, rec, forget, jetstream.JobsOptions{}, nil)
	if err != nil {
		t.Fatalf("jobs: %v", err)
	}
	return j, runInBackground(t, "jobs", j.Run)
}

func (e *jobsEnv) execute(t *testing.T, cmd domain.Command) domain.Result {
	t.Helper()
	res, err := e.p.ledger.Execute(t.Context(), cmd, domain.Meta{Actor: "alice"})
	if err != nil {
		t.Fatalf("%s: %v", cmd.CommandName(), err)
	}
	return res
}

// waitSettled waits until the job consumer has every message up to the
// stream's last one acknowledged (or terminated), and returns its info.
func (e *jobsEnv) waitSettled(t *testing.T) *njs.ConsumerInfo {
	t.Helper()
	_, js := natstest.Connect(t, e.s)
	last := lastSeq(t, js)
	var info *njs.ConsumerInfo
	natstest.CheckFor(t, 20*time.Second, 20*time.Millisecond, func() error {
		cons, err := js.Consumer(t.Context(), jetstream.StreamName, jetstream.ConsumerName)
		if err != nil {
			return err
		}
		i := cons.CachedInfo()
		if i.AckFloor.Stream < last || i.NumAckPending != 0 || i.NumPending != 0 {
			return natstest.Errorf("ack floor %d of %d, %d pending acks, %d pending", i.AckFloor.Stream, last, i.NumAckPending, i.NumPending)
		}
		info = i
		return nil
	})
	return info
}

func noJob(context.Context, domain.Job) error { return nil }

// A requested backup is run once with the event's facts and acknowledged;
// the other events are acknowledged without running anything.
func TestJobsRunOnce(t *testing.T) {
	t.Parallel()
	e := newJobsEnv(t, jobsConfig())
	jobs, _ := e.start(t, noJob)
	req := e.execute(t, domain.RequestBackup{App: "crm"})
	j := receive(t, e.jobs, "the job")
	want := domain.Job{App: "crm", BackupID: req.BackupID, Seq: req.Seq, Attempt: 1, Final: false, EventID: j.EventID, CorrelationID: j.CorrelationID}
	if j != want || j.EventID == "" || j.CorrelationID == "" {
		t.Fatalf("job %+v, want %+v with event and correlation ids", j, want)
	}
	e.execute(t, domain.StartBackup{App: "crm", BackupID: req.BackupID, Attempt: 1})
	e.execute(t, domain.RenameBackup{App: "crm", BackupID: req.BackupID, Name: "other"})
	info := e.waitSettled(t)
	if n := e.runs.Load(); n != 1 {
		t.Fatalf("run called %d times", n)
	}
	if info.NumRedelivered != 0 {
		t.Fatalf("%d redeliveries", info.NumRedelivered)
	}
	if n := jobs.InFlight(); n != 0 {
		t.Fatalf("%d jobs in flight", n)
	}
}

// A job whose run fails is delivered again with the next attempt.
func TestJobsRetryAfterError(t *testing.T) {
	t.Parallel()
	e := newJobsEnv(t, jobsConfig())
	e.start(t, func(_ context.Context, j domain.Job) error {
		if j.Attempt == 1 {
			return errors.New("archive store unavailable")
		}
		return nil
	})
	req := e.execute(t, domain.RequestBackup{App: "crm"})
	first := receive(t, e.jobs, "the first delivery")
	second := receive(t, e.jobs, "the second delivery")
	if first.Attempt != 1 || second.Attempt != 2 || second.BackupID != req.BackupID || second.Final {
		t.Fatalf("deliveries %+v then %+v", first, second)
	}
	e.waitSettled(t)
	if n := e.runs.Load(); n != 2 {
		t.Fatalf("run called %d times", n)
	}
}

// With MaxDeliver 2, a job that never succeeds is delivered a last time
// marked final.
func TestJobsFinalDelivery(t *testing.T) {
	t.Parallel()
	cfg := jobsConfig()
	cfg.MaxDeliver = 2
	e := newJobsEnv(t, cfg)
	e.start(t, func(_ context.Context, j domain.Job) error {
		if !j.Final {
			return errors.New("never finishes")
		}
		return nil
	})
	e.execute(t, domain.RequestBackup{App: "crm"})
	first := receive(t, e.jobs, "the first delivery")
	last := receive(t, e.jobs, "the final delivery")
	if first.Final || first.Attempt != 1 || !last.Final || last.Attempt != 2 {
		t.Fatalf("deliveries %+v then %+v", first, last)
	}
	e.waitSettled(t)
}

// A job outlives the ack wait thanks to its heartbeats: it is not delivered
// a second time while it runs.
func TestJobsHeartbeat(t *testing.T) {
	t.Parallel()
	e := newJobsEnv(t, jobsConfig())
	e.start(t, func(ctx context.Context, _ domain.Job) error {
		// Work for well over the 1 s ack wait.
		select {
		case <-time.After(2500 * time.Millisecond):
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	e.execute(t, domain.RequestBackup{App: "crm"})
	receive(t, e.jobs, "the job")
	info := e.waitSettled(t)
	if n := e.runs.Load(); n != 1 || info.NumRedelivered != 0 {
		t.Fatalf("run called %d times, %d redeliveries", n, info.NumRedelivered)
	}
}

// A process that stops hands its running job back, and another takes it at
// once (long before the ack wait would have sent it again).
func TestJobsHandBackOnStop(t *testing.T) {
	t.Parallel()
	cfg := jobsConfig()
	cfg.AckWait = time.Minute
	e := newJobsEnv(t, cfg)
	stopped := make(chan error, 1)
	a, stopA := e.start(t, func(ctx context.Context, _ domain.Job) error {
		<-ctx.Done()
		stopped <- ctx.Err()
		return ctx.Err()
	})
	req := e.execute(t, domain.RequestBackup{App: "crm"})
	first := receive(t, e.jobs, "the first delivery")
	if n := a.InFlight(); n != 1 {
		t.Fatalf("%d jobs in flight, want 1", n)
	}
	began := time.Now()
	stopA()
	if err := receive(t, stopped, "the job's cancellation"); !errors.Is(err, context.Canceled) {
		t.Fatalf("job context ended with %v", err)
	}
	if n := a.InFlight(); n != 0 {
		t.Fatalf("%d jobs in flight after Run returned", n)
	}
	e.start(t, noJob)
	second := receive(t, e.jobs, "the handed back job")
	if took := time.Since(began); took > cfg.AckWait/2 {
		t.Fatalf("the job came back after %s, not at once", took)
	}
	if second.BackupID != req.BackupID || first.Attempt != 1 || second.Attempt != 2 {
		t.Fatalf("deliveries %+v then %+v", first, second)
	}
	e.waitSettled(t)
}

// A job on its final delivery is not handed back when its process stops: it
// may finish, since the server would not deliver it again.
func TestJobsFinalNotHandedBack(t *testing.T) {
	t.Parallel()
	cfg := jobsConfig()
	cfg.MaxDeliver = 2
	e := newJobsEnv(t, cfg)
	release := make(chan struct{})
	jobCtxErr := make(chan error, 1)
	_, stop := e.start(t, func(ctx context.Context, j domain.Job) error {
		if !j.Final {
			return errors.New("not yet")
		}
		<-release
		jobCtxErr <- ctx.Err()
		return nil
	})
	e.execute(t, domain.RequestBackup{App: "crm"})
	receive(t, e.jobs, "the first delivery")
	if j := receive(t, e.jobs, "the final delivery"); !j.Final {
		t.Fatalf("second delivery %+v is not final", j)
	}
	stopped := make(chan struct{})
	go func() { stop(); close(stopped) }()
	select {
	case <-stopped:
		t.Fatal("Run returned while the final job was running")
	case <-time.After(200 * time.Millisecond):
	}
	close(release)
	if err := receive(t, jobCtxErr, "the final job's end"); err != nil {
		t.Fatalf("final job's context ended early: %v", err)
	}
	<-stopped
	e.waitSettled(t)
}

// A deleted backup's archive is forgotten.
func TestJobsForgetDeleted(t *testing.T) {
	t.Parallel()
	e := newJobsEnv(t, jobsConfig())
	e.start(t, noJob)
	req := e.execute(t, domain.RequestBackup{App: "crm"})
	receive(t, e.jobs, "the job")
	e.execute(t, domain.DeleteBackup{App: "crm", BackupID: req.BackupID})
	if id := receive(t, e.forgot, "forget"); id != req.BackupID {
		t.Fatalf("forgot %q, want %q", id, req.BackupID)
	}
	e.waitSettled(t)
}

// Messages that are not events are terminated without running anything; an
// event without the type header is still recognised from its body.
func TestJobsUndecodableAndHeaderless(t *testing.T) {
	t.Parallel()
	e := newJobsEnv(t, jobsConfig())
	e.start(t, noJob)
	nc, _ := natstest.Connect(t, e.s)
	js, err := njs.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	junk := &nats.Msg{Subject: jetstream.Subject("junk"), Data: []byte("not json"), Header: nats.Header{jetstream.HeaderEventType: {domain.TypeBackupRequested}}}
	if _, err := js.PublishMsg(ctx, junk); err != nil {
		t.Fatal(err)
	}
	noID, _ := json.Marshal(domain.Envelope{ID: "e0", Type: domain.TypeBackupRequested, App: "junk", Data: json.RawMessage(`{}`)})
	if _, err := js.Publish(ctx, jetstream.Subject("junk"), noID); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, jetstream.Subject("junk"), []byte("neither")); err != nil {
		t.Fatal(err)
	}
	data, _ := json.Marshal(domain.BackupRequested{BackupID: "b-1", Name: "raw", Origin: domain.OriginManual})
	body, _ := json.Marshal(domain.Envelope{ID: "e1", Type: domain.TypeBackupRequested, App: "raw", CorrelationID: "c1", Data: data})
	ack, err := js.Publish(ctx, jetstream.Subject("raw"), body)
	if err != nil {
		t.Fatal(err)
	}
	j := receive(t, e.jobs, "the headerless job")
	want := domain.Job{App: "raw", BackupID: "b-1", Seq: ack.Sequence, Attempt: 1, EventID: "e1", CorrelationID: "c1"}
	if j != want {
		t.Fatalf("job %+v, want %+v", j, want)
	}
	info := e.waitSettled(t)
	if n := e.runs.Load(); n != 1 || info.NumRedelivered != 0 {
		t.Fatalf("run called %d times, %d redeliveries", n, info.NumRedelivered)
	}
}

// NewJobs validates its config and functions.
func TestNewJobsValidates(t *testing.T) {
	t.Parallel()
	s := natstest.Server(t, "")
	_, js := natstest.Connect(t, s)
	forget := func(context.Context, string) error { return nil }
	if _, err := jetstream.NewJobs(js, jetstream.Config{MaxDeliver: 1}, noJob, forget, jetstream.JobsOptions{}, nil); err == nil || !containsFold(err.Error(), "max deliver") {
		t.Fatalf("max deliver 1: %v", err)
	}
	if _, err := jetstream.NewJobs(js, jetstream.Config{}, nil, forget, jetstream.JobsOptions{}, nil); err == nil {
		t.Fatal("nil run accepted")
	}
	// Without Setup, Run reports the missing consumer.
	j, err := jetstream.NewJobs(js, jetstream.Config{}, noJob, forget, jetstream.JobsOptions{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := j.Run(t.Context()); err == nil || !containsFold(err.Error(), jetstream.ConsumerName) {
		t.Fatalf("run without consumer: %v", err)
	}
}

// The workers go on after a restart of the server.
func TestJobsSurviveServerRestart(t *testing.T) {
	t.Parallel()
	r := newRestartable(t)
	cfg := jobsConfig()
	if err := jetstream.Setup(t.Context(), r.js, cfg); err != nil {
		t.Fatal(err)
	}
	got := make(chan domain.Job, 10)
	j, err := jetstream.NewJobs(r.js, cfg, func(_ context.Context, j domain.Job) error {
		got <- j
		return nil
	}, func(context.Context, string) error { return nil }, jetstream.JobsOptions{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	runInBackground(t, "jobs", j.Run)
	store := newStore(t, r.js)
	publish := func(id string) uint64 {
		data, _ := json.Marshal(domain.BackupRequested{BackupID: id})
		body, _ := json.Marshal(domain.Envelope{ID: "e-" + id, Type: domain.TypeBackupRequested, App: "crm", Data: data})
		last, err := store.LastSeq(t.Context(), "crm")
		if err != nil {
			t.Fatal(err)
		}
		res, err := store.Append(t.Context(), domain.PendingEvent{App: "crm", Type: domain.TypeBackupRequested, MsgID: id, ExpectedSeq: last, Body: body})
		if err != nil {
			t.Fatal(err)
		}
		return res.Seq
	}
	publish("before")
	if j := receive(t, got, "the job before the restart"); j.BackupID != "before" {
		t.Fatalf("job %+v", j)
	}
	r.restart(t)
	seq := publish("after")
	if j := receive(t, got, "the job after the restart"); j.BackupID != "after" || j.Seq != seq {
		t.Fatalf("job %+v", j)
	}
}
