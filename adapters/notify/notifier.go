package notify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/mail"
	"os"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/backupledger/backupledger/adapters/internal/workqueue"
)

// shutdownGrace is how long a stopping Run lets running deliveries finish
// before it cancels them and hands their jobs back.
const shutdownGrace = 2 * time.Second

// settleTimeout bounds a log publish after a delivery, which also runs
// when the delivery was cancelled, and the deletion of a delivery log
// reader.
const settleTimeout = 5 * time.Second

// WebhookTarget is where and how to deliver to a webhook.
type WebhookTarget struct {
	// URL is the http or https URL that is POSTed to.
	URL string
	// Secret signs the body (see Sign).
	Secret []byte
}

// Webhooks looks up the registered webhooks.
type Webhooks interface {
	// Webhook returns the target of webhook id; ok false means the webhook
	// was removed, and its deliveries are dropped. An error is retried like
	// a failed delivery.
	Webhook(ctx context.Context, id string) (t WebhookTarget, ok bool, err error)
}

// Notifier enqueues notifications and delivers them.
type Notifier struct {
	js     jetstream.JetStream
	cfg    Config
	hooks  Webhooks
	log    *slog.Logger
	client *http.Client
	hello  string
	// from is SMTP.From, parsed once (Validate checked it).
	from *mail.Address
	// queue runs the consumer's jobs through handle.
	queue *workqueue.Queue
}

// New returns a Notifier with cfg (zero fields take their defaults) that
// looks webhooks up in hooks. log may be nil. It returns the joined errors
// of Config.Validate for an invalid cfg, and an error when js or hooks is
// nil. Setup must have created the streams and the consumer.
func New(js jetstream.JetStream, cfg Config, hooks Webhooks, log *slog.Logger) (*Notifier, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("notify config: %w", err)
	}
	if js == nil || hooks == nil {
		return nil, errors.New("notifier needs a jetstream context and webhooks")
	}
	cfg = cfg.withDefaults()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	client := webhookClient(cfg)
	hello, err := os.Hostname()
	if err != nil || !validHello(hello) {
		hello = "localhost"
	}
	n := &Notifier{js: js, cfg: cfg, hooks: hooks, log: log, client: client, hello: hello}
	if cfg.SMTP.Host != "" {
		if n.from, err = parseAddress(cfg.SMTP.From); err != nil {
			return nil, fmt.Errorf("smtp from: %w", err)
		}
	}
	n.queue, err = workqueue.New(js, workqueue.Config{
		Stream:  StreamName,
		Durable: ConsumerName,
		Workers: cfg.Workers,
		// The ack wait is the consumer's, which Setup made from cfg.
		FallbackAckWait: ConsumerConfig(cfg).AckWait,
		Backoff:         n.backoff,
		Grace:           shutdownGrace,
		// A delivered job must not be delivered again.
		AckSync: true,
		Words: workqueue.Wording{
			Consumer:     "notify consumer",
			Fetch:        "fetch notifications",
			NoMetadata:   "notification message without metadata",
			Heartbeat:    "notification heartbeat",
			Flush:        "flush notification acknowledgements",
			SettleFailed: notificationSettleFailed,
		},
	}, log)
	if err != nil {
		return nil, err
	}
	return n, nil
}

// validHello reports whether host can be the name of an EHLO.
func validHello(host string) bool {
	if host == "" || len(host) > 253 {
		return false
	}
	for i := 0; i < len(host); i++ {
		c := host[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// Run fetches jobs of the consumer notify-worker and delivers them, at most
// Config.Workers at once, until ctx is cancelled; call it once per Notifier.
// Several processes may run against the same stream and share the work.
// When ctx ends, Run stops fetching, lets its open pull request end (at
// most about a second; jobs it still receives are handed back to be
// delivered again a second later, when the request has ended), gives
// running deliveries up to two seconds to finish, cancels the rest and
// hands their jobs back at once (a negative acknowledgement without delay),
// and returns nil. A hand-back counts as a delivery, so it raises the
// attempt number of the job's next attempt. It returns an error, wrapped,
// when the consumer does not exist (see Setup) or the connection is closed.
//
// The steps are those of the ledger's work queues, run by the shared
// runner (adapters/internal/workqueue): fetch as many jobs as there are
// free workers, decode or terminate and hand back while stopping (handle),
// deliver on a worker with heartbeats (deliverWebhook, deliverEmail), and
// settle as the delivery decides: ack once the server confirms it, retry
// after a backoff, hand back, or give up (term).
func (n *Notifier) Run(ctx context.Context) error {
	return n.queue.Run(ctx, n.handle)
}

// handle decodes one job and starts its delivery on a worker: the poison
// step terminates a job that does not decode, and a job fetched while
// stopping is handed back. ctx is Run's.
func (n *Notifier) handle(ctx context.Context, m *workqueue.Msg) workqueue.Outcome {
	m.Log = m.Log.With("attempt", m.Delivery)
	job, err := decodeJob(m.Subject(), m.Data())
	if err != nil {
		m.Log.Error("terminate undecodable notification job", "subject", m.Subject(), "err", err)
		return workqueue.Term("undecodable: " + err.Error())
	}
	if ctx.Err() != nil {
		// The pull request of this stopping process is still open: a job
		// handed back at once would come straight back to it.
		return workqueue.HandBack(workqueue.FetchWait)
	}
	switch j := job.(type) {
	case *WebhookJob:
		m.Log = webhookLog(m.Log, j)
		return workqueue.Go(func(ctx context.Context) workqueue.Outcome { return n.deliverWebhook(ctx, m, j) })
	case *EmailJob:
		m.Log = emailLog(m.Log, j)
		return workqueue.Go(func(ctx context.Context) workqueue.Outcome { return n.deliverEmail(ctx, m, j) })
	}
	// decodeJob returns one of the two.
	return workqueue.Term(fmt.Sprintf("undecodable: job of type %T", job))
}

// notificationSettleFailed logs a failed settle step of a job.
func notificationSettleFailed(log *slog.Logger, m *workqueue.Msg, s workqueue.Settle, err error) {
	log.Warn("notification message "+s.String(), "subject", m.Subject(), "err", err)
}

// handBack logs that the job goes back, to be delivered at once by any
// process: this one stops.
func handBack(log *slog.Logger) workqueue.Outcome {
	log.Info("notification handed back")
	return workqueue.HandBack(0)
}

// expired reports whether a job enqueued at enqueued is not retried after a
// failure at now.
func (n *Notifier) expired(enqueued, now time.Time) bool {
	return now.Sub(enqueued) >= n.cfg.RetryFor
}

// backoff returns the delay before the attempt after attempt: Backoff
// doubled for every earlier attempt, at most MaxBackoff, less up to 20%
// jitter. It is the queue's Backoff (Msg.Backoff).
func (n *Notifier) backoff(attempt int) time.Duration {
	d := n.cfg.Backoff
	for i := 1; i < attempt && d < n.cfg.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, n.cfg.MaxBackoff)
	if j := int64(d / 5); j > 0 {
		d -= time.Duration(rand.Int64N(j + 1))
	}
	return d
}
