package jetstream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	njs "github.com/nats-io/nats.go/jetstream"

	"github.com/backupledger/backupledger/adapters/internal/ensure"
	"github.com/backupledger/backupledger/adapters/internal/workqueue"
	"github.com/backupledger/backupledger/domain"
)

// The nightly timers: one JetStream message schedule per app, kept by the
// server, firing at each slot of the app's schedule in its time zone.
const (
	// TimerStreamName holds the schedules and their ticks.
	TimerStreamName = "LEDGER_TIMERS"
	// TimerScheduleSubject + "." + app is where an app's schedule lives.
	TimerScheduleSubject = "ledger.timers.nightly"
	// TimerTickSubject + "." + app is where its ticks land.
	TimerTickSubject = "ledger.ticks.nightly"
	// TimerConsumerName is the durable consumer of the ticks, shared by
	// every backupd: one of them handles each tick.
	TimerConsumerName = "nightly-timer"
)

// TimerStreamConfig is the configuration of the timer stream: message
// schedules allowed, one message per subject (a new schedule replaces the
// old one; an unhandled tick is replaced by the next).
func TimerStreamConfig(replicas int) njs.StreamConfig {
	return njs.StreamConfig{
		Name:              TimerStreamName,
		Description:       "nightly backup timers: one message schedule per app, and their ticks",
		Subjects:          []string{TimerScheduleSubject + ".>", TimerTickSubject + ".>"},
		Storage:           njs.FileStorage,
		Replicas:          max(replicas, 1),
		MaxMsgsPerSubject: 1,
		AllowMsgSchedules: true,
		AllowRollup:       true,
		AllowDirect:       true,
	}
}

// Timers keeps one message schedule per app in step with its nightly
// schedule, and hands the ticks to a function.
type Timers struct {
	js     njs.JetStream
	stream njs.Stream
	log    *slog.Logger

	mu   sync.Mutex
	sent map[string]string // app → the schedule last published or found ("" none)
}

// SetupTimers creates or updates the timer stream and its consumer.
func SetupTimers(ctx context.Context, js njs.JetStream, replicas int) error {
	if _, err := ensure.Stream(ctx, js, TimerStreamConfig(replicas)); err != nil {
		return fmt.Errorf("create or update stream %s: %w", TimerStreamName, err)
	}
	if _, err := ensure.Consumer(ctx, js, TimerStreamName, njs.ConsumerConfig{
		Durable:       TimerConsumerName,
		Description:   "nightly ticks, shared by every backupd",
		FilterSubject: TimerTickSubject + ".>",
		DeliverPolicy: njs.DeliverNewPolicy,
		AckPolicy:     njs.AckExplicitPolicy,
		AckWait:       time.Minute,
		MaxDeliver:    5,
	}); err != nil {
		return fmt.Errorf("create or update consumer %s: %w", TimerConsumerName, err)
	}
	return nil
}

// NewTimers returns the timers; SetupTimers must have run. It returns the
// server's error, wrapped, when the timer stream cannot be looked up.
func NewTimers(ctx context.Context, js njs.JetStream, log *slog.Logger) (*Timers, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	st, err := js.Stream(ctx, TimerStreamName)
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", TimerStreamName, err)
	}
	return &Timers{js: js, stream: st, log: log.With("consumer", TimerConsumerName), sent: map[string]string{}}, nil
}

// Sync makes app's timer fire at the slots of s, or removes it when s is
// off. An unchanged schedule is not published again (that would move its
// next firing).
func (t *Timers) Sync(ctx context.Context, app string, s domain.Schedule) error {
	want := ""
	var expr, zone string
	if s.Enabled {
		var err error
		if expr, zone, err = s.Cron(); err != nil {
			return err
		}
		want = expr + " " + zone
	}
	t.mu.Lock()
	have, known := t.sent[app]
	t.mu.Unlock()
	if !known {
		var err error
		if have, err = t.current(ctx, app); err != nil {
			return err
		}
	}
	if have == want {
		t.remember(app, want)
		return nil
	}
	if want == "" {
		if err := t.stream.Purge(ctx, njs.WithPurgeSubject(TimerScheduleSubject+"."+app)); err != nil {
			return fmt.Errorf("remove the timer of %s: %w", app, err)
		}
		t.remember(app, "")
		t.log.Info("nightly timer removed", "app", app)
		return nil
	}
	return t.set(ctx, app, expr, zone)
}

// set publishes app's timer: a cron expression (six fields) in zone.
func (t *Timers) set(ctx context.Context, app, expr, zone string) error {
	_, err := t.js.Publish(ctx, TimerScheduleSubject+"."+app, []byte(app), njs.WithScheduleCron(expr), njs.WithScheduleTimeZone(zone),
		njs.WithScheduleTarget(TimerTickSubject+"."+app), njs.WithExpectStream(TimerStreamName))
	if err != nil {
		return fmt.Errorf("set the timer of %s: %w", app, err)
	}
	t.remember(app, expr+" "+zone)
	t.log.Info("nightly timer set", "app", app, "cron", expr, "time_zone", zone)
	return nil
}

func (t *Timers) remember(app, schedule string) {
	t.mu.Lock()
	t.sent[app] = schedule
	t.mu.Unlock()
}

// current reads the schedule the stream holds for app ("" none).
func (t *Timers) current(ctx context.Context, app string) (string, error) {
	msg, err := t.stream.GetLastMsgForSubject(ctx, TimerScheduleSubject+"."+app)
	if errors.Is(err, njs.ErrMsgNotFound) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("timer of %s: %w", app, err)
	}
	return strings.TrimSpace(msg.Header.Get(njs.ScheduleHeader) + " " + msg.Header.Get(njs.ScheduleTimeZoneHeader)), nil
}

// Tick handling: the most ticks one pull request asks for, and how long a
// tick whose handling failed waits before it is delivered again.
const (
	tickBatch = 16
	tickRetry = 10 * time.Second
)

// Run hands each tick to fire (with the app it is for) until ctx ends:
// a tick whose fire fails is delivered again.
func (t *Timers) Run(ctx context.Context, fire func(ctx context.Context, app string) error) error {
	q, err := workqueue.New(t.js, workqueue.Config{
		Stream:  TimerStreamName,
		Durable: TimerConsumerName,
		Batch:   tickBatch,
		Backoff: workqueue.ConstantBackoff(tickRetry),
		Words: workqueue.Wording{
			Fetch:        "fetch ticks",
			NoMetadata:   "tick without metadata",
			SettleFailed: tickSettleFailed,
		},
	}, t.log)
	if err != nil {
		return err
	}
	return q.Run(ctx, func(ctx context.Context, m *workqueue.Msg) workqueue.Outcome {
		app := strings.TrimPrefix(m.Subject(), TimerTickSubject+".")
		m.Log = t.log.With("app", app)
		if err := fire(ctx, app); err != nil {
			m.Log.Warn("nightly tick not handled; delivered again", "err", err)
			return workqueue.Retry(m.Backoff())
		}
		return workqueue.Ack()
	})
}

// tickSettleFailed logs a failed acknowledgement of a tick. A failed
// negative acknowledgement is not logged: the ack wait delivers the tick
// again.
func tickSettleFailed(log *slog.Logger, _ *workqueue.Msg, s workqueue.Settle, err error) {
	if s == workqueue.SettleAck {
		log.Warn("ack tick", "err", err)
	}
}
