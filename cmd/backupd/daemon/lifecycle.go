package daemon

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/backupledger/backupledger/adapters/jetstream"
	"github.com/backupledger/backupledger/adapters/notify"
	"github.com/backupledger/backupledger/adapters/prom"
	"github.com/backupledger/backupledger/domain"
	"github.com/backupledger/backupledger/projections"
	"github.com/backupledger/backupledger/service"
)

// schedules reads the apps' nightly schedules from the projection.
type schedules struct {
	proj  *projections.Store
	def   domain.Schedule
	clock domain.Clock
}

// Schedule implements usecase.Schedules.
func (s schedules) Schedule(app string) projections.ScheduleView {
	var v projections.ScheduleView
	s.proj.ReadApp(app, func(a *domain.App) { v = projections.ScheduleViewOf(a, s.def, s.clock.Now()) })
	v.App = app
	return v
}

// deliveries reads the webhook delivery logs.
type deliveries struct{ n *notify.Notifier }

// Deliveries implements usecase.Deliveries.
func (d deliveries) Deliveries(ctx context.Context, webhookID string, limit int) ([]projections.DeliveryView, error) {
	as, err := d.n.Deliveries(ctx, webhookID, limit)
	if err != nil {
		return nil, err
	}
	out := make([]projections.DeliveryView, 0, len(as))
	for _, a := range as {
		out = append(out, projections.DeliveryView{DeliveryID: a.DeliveryID, WebhookID: a.WebhookID, EventID: a.EventID,
			EventType: a.EventType, App: a.App, Attempt: a.Attempt, Time: a.Time, Result: a.Result, StatusCode: a.StatusCode,
			Error: a.Error, DurationMS: a.DurationMS, NextAttemptAt: a.NextAttemptAt})
	}
	return out, nil
}

// webhooks looks registered webhooks up for the notifier: the URL from the
// directory, the secret from the secret store.
type webhooks struct {
	identity *service.Identity
}

// Webhook implements notify.Webhooks.
func (w webhooks) Webhook(ctx context.Context, id string) (notify.WebhookTarget, bool, error) {
	var (
		url         string
		ok, removed bool
	)
	w.identity.Read(func(d *domain.Directory) {
		var wh *domain.Webhook
		if wh, ok = d.Webhook(id); ok {
			url = wh.URL
		}
		removed = d.WebhookRemoved(id)
	})
	switch {
	case removed:
		return notify.WebhookTarget{}, false, nil
	case !ok:
		// Not applied by this process's projection yet (it is catching
		// up, or lags the replica that made the job): try again later.
		return notify.WebhookTarget{}, false, fmt.Errorf("webhook %s is not known to this process yet", id)
	}
	secret, err := w.identity.WebhookSecret(ctx, id)
	if errors.Is(err, service.ErrNoSecret) {
		return notify.WebhookTarget{}, false, nil
	}
	if err != nil {
		return notify.WebhookTarget{}, false, fmt.Errorf("secret of webhook %s: %w", id, err)
	}
	return notify.WebhookTarget{URL: url, Secret: secret}, true, nil
}

// dispatchWait bounds how long the dispatcher waits for this process's
// projection to apply the event it is handed.
const dispatchWait = 30 * time.Second

// dispatcher turns ledger events into notification jobs: it is the
// handler of the notifier reactor.
type dispatcher struct {
	proj      *projections.Store
	notifier  *notify.Notifier
	publicURL string
	// scheduled is told of an app whose schedule was set.
	scheduled func(ctx context.Context, app string) error
	log       *slog.Logger
}

// handle enqueues the webhook deliveries and the e-mail of one event, once
// the projection has applied it (the notices read the state it left).
// Enqueuing is idempotent (delivery ids), so a redelivered event is
// harmless.
func (d dispatcher) handle(ctx context.Context, seq uint64, env *domain.Envelope, raw []byte) error {
	wctx, cancel := context.WithTimeout(ctx, dispatchWait)
	defer cancel()
	if err := d.proj.WaitApplied(wctx, seq); err != nil {
		return err
	}
	if env.Type == domain.TypeScheduleSet {
		if err := d.scheduled(ctx, env.App); err != nil {
			return err
		}
	}
	n, err := d.proj.Notices(seq, env, raw, d.publicURL)
	if err != nil {
		return err
	}
	// A job the notifier refuses as invalid would be refused again: it is
	// logged and left out, so that the event's other notices go on.
	enqueue := func(what string, err error) error {
		if domain.Code(err) == domain.CodeInvalidArgument {
			d.log.Error("notification not sent", "what", what, "app", env.App, "event_id", env.ID, "err", err)
			return nil
		}
		if err != nil {
			return fmt.Errorf("enqueue %s: %w", what, err)
		}
		return nil
	}
	for _, w := range n.Webhooks {
		if err := enqueue("webhook "+w.WebhookID, d.notifier.EnqueueWebhook(ctx, notify.WebhookJob{DeliveryID: w.DeliveryID, WebhookID: w.WebhookID,
			EventID: env.ID, EventType: env.Type, App: env.App, Body: w.Body})); err != nil {
			return err
		}
	}
	// One e-mail per recipient: a relay that refuses one address does not
	// keep the mail from the others, and no one sees the others' addresses.
	for _, m := range n.Emails {
		for _, to := range m.To {
			sum := sha256.Sum256([]byte(strings.ToLower(to)))
			if err := enqueue("e-mail", d.notifier.EnqueueEmail(ctx, notify.EmailJob{ID: m.ID + "." + hex.EncodeToString(sum[:6]),
				To: []string{to}, Subject: m.Subject, Body: m.Body, EventID: env.ID, EventType: env.Type, App: env.App})); err != nil {
				return err
			}
		}
	}
	return nil
}

// notifyConfig is the notifier's configuration from the daemon's.
func (d *Daemon) notifyConfig() notify.Config {
	c := d.cfg
	smtp := c.SMTP.notify()
	smtp.TLSConfig = c.Hooks.SMTPTLS
	return notify.Config{
		Replicas: c.NATS.Replicas, Timeout: c.Webhooks.Timeout, Backoff: c.Webhooks.Backoff, RetryFor: c.Webhooks.RetryFor,
		Client: c.Hooks.WebhookClient, AllowPrivateTargets: c.Webhooks.AllowPrivate, SMTP: smtp,
	}
}

// lastSeq returns the LEDGER stream's last sequence (the projection lag).
func (d *Daemon) lastSeq(ctx context.Context) (uint64, error) {
	st, err := d.js.Stream(ctx, jetstream.StreamName)
	if err != nil {
		return 0, err
	}
	return st.CachedInfo().State.LastSeq, nil
}

// jetStreamUsage reads the embedded server's JetStream usage; nil with an
// external cluster.
func (d *Daemon) jetStreamUsage() func() (prom.JetStreamUsage, error) {
	if d.srv == nil {
		return nil
	}
	return func() (prom.JetStreamUsage, error) {
		info, err := d.srv.Jsz(nil)
		if err != nil {
			return prom.JetStreamUsage{}, err
		}
		return prom.JetStreamUsage{StorageBytes: info.Store, Messages: info.Messages, Streams: info.Streams}, nil
	}
}

// syncTimer makes app's nightly timer fire at the slots of its effective
// schedule (or removes it).
func (d *Daemon) syncTimer(ctx context.Context, app string) error {
	var s domain.Schedule
	d.proj.ReadApp(app, func(a *domain.App) { s = a.EffectiveSchedule(d.cfg.Rules.Nightly) })
	return d.timers.Sync(ctx, app, s)
}

// nightlySweep is the periodic safety net of the nightly timers: it makes
// what is due (and retries failed tries), and keeps every app's timer in
// step with its schedule (the apps that follow the server's default have
// no schedule.set to set it).
func (d *Daemon) nightlySweep(ctx context.Context) (int, error) {
	n, err := d.nightly.Sweep(ctx)
	for _, app := range d.proj.Apps() {
		if serr := d.syncTimer(ctx, app); serr != nil && err == nil {
			err = serr
		}
	}
	return n, err
}

// nightlyTick handles a timer's tick: the app's night is due.
func (d *Daemon) nightlyTick(ctx context.Context, app string) error {
	if err := d.follower.WaitCaughtUp(ctx); err != nil {
		return err
	}
	_, err := d.nightly.SweepApp(ctx, app)
	return err
}

// NightlyNow makes the nightly backups that are due now (and retries the
// failed ones), as the periodic planner does; it returns how many tries it
// recorded (tests).
func (d *Daemon) NightlyNow(ctx context.Context) (int, error) { return d.nightly.Sweep(ctx) }

// OrphansNow reconciles the archive store with the ledger now (tests).
func (d *Daemon) OrphansNow(ctx context.Context) (domain.OrphanReport, error) {
	return d.orphans.Sweep(ctx)
}

// VerifyNow runs the periodic integrity check now (tests).
func (d *Daemon) VerifyNow(ctx context.Context) (int, error) { return d.verifier.Sweep(ctx) }
