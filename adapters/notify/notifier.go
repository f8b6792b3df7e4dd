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
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// fetchWait is how long one pull request waits for jobs. Run waits for the
// open request to end before it returns, so this bounds how long stopping
// takes.
const fetchWait = time.Second

// fetchRetry is how long Run waits after a failed pull request.
const fetchRetry = time.Second

// shutdownGrace is how long a stopping Run lets running deliveries finish
// before it cancels them and hands their jobs back.
const shutdownGrace = 2 * time.Second

// settleTimeout bounds a log publish or acknowledgement after a delivery,
// which also runs when the delivery was cancelled.
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

	inFlight atomic.Int64
	freed    chan struct{}
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
	n := &Notifier{js: js, cfg: cfg, hooks: hooks, log: log, client: client, hello: hello, freed: make(chan struct{}, 1)}
	if cfg.SMTP.Host != "" {
		if n.from, err = parseAddress(cfg.SMTP.From); err != nil {
			return nil, fmt.Errorf("smtp from: %w", err)
		}
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
// Config.Workers at once, until ctx is cancelled; call it once per
// Notifier. Several processes may run against the same stream and share
// the work. When ctx ends, Run stops fetching, lets its open pull request
// end (at most about a second; jobs it still receives are handed back to be
// delivered again a second later, when the request has ended), gives
// running deliveries up to two seconds to finish, cancels the rest and hands
// their jobs back at once (a negative acknowledgement without delay), and
// returns nil. A hand-back counts as a delivery, so it raises the attempt
// number of the job's next attempt. It returns an error, wrapped,
// when the consumer does not exist (see Setup) or the connection is closed.
//
// The steps are those of the ledger's work queues (jetstream.WorkQueue of
// the ledger's adapter, which this package may not import): fetch as many
// jobs as there are free workers (Run), decode or terminate and hand back
// while stopping (dispatch), deliver on a worker with heartbeats
// (deliverWebhook, deliverEmail), and settle (delivery's ack, retry,
// handBack and term).
func (n *Notifier) Run(ctx context.Context) error {
	cons, err := n.js.Consumer(ctx, StreamName, ConsumerName)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("notify consumer %s: %w", ConsumerName, err)
	}
	ackWait := cons.CachedInfo().Config.AckWait
	if ackWait <= 0 {
		ackWait = ConsumerConfig(n.cfg).AckWait
	}
	// Running deliveries are cancelled only once no pull request is open any
	// more, so that a job handed back is not delivered to this process's
	// expiring request again.
	workCtx, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	defer n.stop(&wg, cancelWork)
	for ctx.Err() == nil {
		free := n.cfg.Workers - int(n.inFlight.Load())
		if free <= 0 {
			select {
			case <-n.freed:
			case <-ctx.Done():
			}
			continue
		}
		batch, err := cons.Fetch(free, jetstream.FetchMaxWait(fetchWait))
		if err == nil {
			// Drain the whole batch, also when ctx ends meanwhile: the pull
			// request stays open on the server until it expires, and
			// whatever it delivers is handed back.
			for msg := range batch.Messages() {
				n.dispatch(ctx, workCtx, msg, ackWait, &wg)
			}
			err = batch.Error()
		}
		if err != nil && !errors.Is(err, nats.ErrTimeout) {
			if n.js.Conn().IsClosed() {
				return fmt.Errorf("fetch notifications: %w", err)
			}
			n.log.Warn("fetch notifications", "err", err)
			n.pause(ctx)
		}
	}
	return nil
}

// pause waits fetchRetry or until ctx ends.
func (n *Notifier) pause(ctx context.Context) {
	t := time.NewTimer(fetchRetry)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// stop lets running deliveries finish within shutdownGrace, cancels the
// rest, waits for them (they hand their jobs back), and flushes the last
// acknowledgements.
func (n *Notifier) stop(wg *sync.WaitGroup, cancelWork context.CancelFunc) {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	t := time.NewTimer(shutdownGrace)
	select {
	case <-done:
	case <-t.C:
	}
	t.Stop()
	cancelWork()
	<-done
	// Make sure the last acknowledgements reach the server before the
	// caller closes the connection.
	if err := n.js.Conn().FlushTimeout(time.Second); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		n.log.Warn("flush notification acknowledgements", "err", err)
	}
}

// dispatch decodes one message and starts its delivery on a worker: the
// poison step terminates a job that does not decode, and a job fetched
// while stopping is handed back. ctx is Run's, workCtx the one that
// deliveries get.
func (n *Notifier) dispatch(ctx, workCtx context.Context, msg jetstream.Msg, ackWait time.Duration, wg *sync.WaitGroup) {
	md, err := msg.Metadata()
	if err != nil {
		n.log.Error("notification message without metadata", "subject", msg.Subject(), "err", err)
		return // cannot be acknowledged either
	}
	log := n.log.With("seq", md.Sequence.Stream, "attempt", md.NumDelivered)
	job, err := decodeJob(msg.Subject(), msg.Data())
	if err != nil {
		log.Error("terminate undecodable notification job", "subject", msg.Subject(), "err", err)
		settle(log, msg, "term", msg.TermWithReason("undecodable: "+err.Error()))
		return
	}
	if ctx.Err() != nil {
		// The pull request of this stopping process is still open: a job
		// handed back at once would come straight back to it.
		settle(log, msg, "hand back", msg.NakWithDelay(fetchWait))
		return
	}
	n.inFlight.Add(1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer n.release()
		d := delivery{msg: msg, attempt: int(md.NumDelivered), enqueued: md.Timestamp}
		d.stopHeartbeat = heartbeat(msg, ackWait, log)
		defer d.stopHeartbeat()
		switch j := job.(type) {
		case *WebhookJob:
			n.deliverWebhook(workCtx, log, d, j)
		case *EmailJob:
			n.deliverEmail(workCtx, log, d, j)
		}
	}()
}

// delivery is one delivery of a job's message. Its methods are the settle
// steps; each stops the heartbeat first.
type delivery struct {
	msg      jetstream.Msg
	attempt  int       // the delivery count
	enqueued time.Time // when the job was stored
	// stopHeartbeat ends the heartbeat; the settling methods call it first.
	stopHeartbeat func()
}

// ack acknowledges the job: it is done. It waits for the server's
// confirmation, so that a delivered job is not delivered again.
func (d delivery) ack(log *slog.Logger) {
	d.stopHeartbeat()
	ctx, cancel := context.WithTimeout(context.Background(), settleTimeout)
	defer cancel()
	settle(log, d.msg, "ack", d.msg.DoubleAck(ctx))
}

// retry has the job delivered again after delay.
func (d delivery) retry(log *slog.Logger, delay time.Duration) {
	d.stopHeartbeat()
	settle(log, d.msg, "nak", d.msg.NakWithDelay(delay))
}

// handBack has the job delivered again at once, to any process: this one
// stops.
func (d delivery) handBack(log *slog.Logger) {
	d.stopHeartbeat()
	log.Info("notification handed back")
	settle(log, d.msg, "hand back", d.msg.Nak())
}

// term removes the job for good.
func (d delivery) term(log *slog.Logger, reason string) {
	d.stopHeartbeat()
	settle(log, d.msg, "term", d.msg.TermWithReason(reason))
}

// release frees a worker slot and wakes Run if it waits for one.
func (n *Notifier) release() {
	n.inFlight.Add(-1)
	select {
	case n.freed <- struct{}{}:
	default:
	}
}

// expired reports whether a job enqueued at enqueued is not retried after a
// failure at now.
func (n *Notifier) expired(enqueued, now time.Time) bool {
	return now.Sub(enqueued) >= n.cfg.RetryFor
}

// backoff returns the delay before the attempt after attempt: Backoff
// doubled for every earlier attempt, at most MaxBackoff, less up to 20%
// jitter.
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

// settle logs a failed acknowledgement of kind what.
func settle(log *slog.Logger, msg jetstream.Msg, what string, err error) {
	if err != nil {
		log.Warn("notification message "+what, "subject", msg.Subject(), "err", err)
	}
}

// heartbeat tells the server every ackWait/3 that msg is still being
// worked on, until the returned function is called.
func heartbeat(msg jetstream.Msg, ackWait time.Duration, log *slog.Logger) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(max(ackWait/3, 10*time.Millisecond))
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				if err := msg.InProgress(); err != nil {
					log.Warn("notification heartbeat", "err", err)
				}
			}
		}
	}()
	return sync.OnceFunc(func() {
		close(done)
		wg.Wait()
	})
}
