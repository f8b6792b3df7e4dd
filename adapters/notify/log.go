package notify

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/backupledger/backupledger/domain"
)

// logFetchBatch is how many log entries Deliveries fetches per request.
const logFetchBatch = 256

// logReadTimeout bounds one fetch of Deliveries.
const logReadTimeout = 5 * time.Second

// Attempt is one entry of the delivery log of a webhook.
type Attempt struct {
	DeliveryID string `json:"delivery_id"`
	WebhookID  string `json:"webhook_id"`
	EventID    string `json:"event_id"`
	EventType  string `json:"event_type"`
	App        string `json:"app"`
	// Attempt is the delivery count of the job: 1, 2, 3...
	Attempt int `json:"attempt"`
	// Time is when the attempt started, UTC.
	Time time.Time `json:"time"`
	// Result is ResultDelivered, ResultFailed (will retry), ResultGaveUp
	// (the last attempt) or ResultDropped (the webhook was removed).
	Result string `json:"result"`
	// StatusCode is the HTTP status of the answer, if any.
	StatusCode int `json:"status_code,omitempty"`
	// Error says why the attempt failed: short, without secrets, with at
	// most 200 bytes of the answer's body.
	Error string `json:"error,omitempty"`
	// DurationMS is how long the request took, in milliseconds.
	DurationMS int64 `json:"duration_ms"`
	// NextAttemptAt is when the job is delivered again, for ResultFailed.
	NextAttemptAt *time.Time `json:"next_attempt_at,omitempty"`
}

// record appends a to the delivery log of its webhook. A failure is logged:
// the log is a record for people, the delivery goes on.
func (n *Notifier) record(log *slog.Logger, a Attempt) {
	if n.cfg.OnAttempt != nil {
		n.cfg.OnAttempt(a.Result)
	}
	body, err := json.Marshal(a)
	if err != nil {
		log.Error("encode delivery log entry", "err", err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), settleTimeout)
	defer cancel()
	// The message id makes a retried publish store the entry once.
	id := a.DeliveryID + "." + strconv.Itoa(a.Attempt)
	if _, err := n.js.Publish(ctx, LogSubject(a.WebhookID), body, jetstream.WithMsgID(id), jetstream.WithExpectStream(LogStreamName)); err != nil {
		log.Warn("append to the delivery log", "result", a.Result, "err", err)
	}
}

// Deliveries returns the newest limit entries of the delivery log of
// webhook webhookID, oldest first; an empty (not nil) slice when there are
// none. It returns an *domain.Error with domain.CodeInvalidArgument for an
// invalid webhook id or a limit below 1, and the server's error, wrapped,
// when the log cannot be read.
func (n *Notifier) Deliveries(ctx context.Context, webhookID string, limit int) ([]Attempt, error) {
	if errs := checkID(nil, "webhook id", webhookID, false); len(errs) > 0 {
		return nil, invalid("deliveries", errs)
	}
	if limit < 1 {
		return nil, domain.Errorf(domain.CodeInvalidArgument, "deliveries: limit must be at least 1, got %d", limit)
	}
	subject := LogSubject(webhookID)
	cons, err := n.js.CreateConsumer(ctx, LogStreamName, jetstream.ConsumerConfig{
		Description:       "read the delivery log of one webhook",
		DeliverPolicy:     jetstream.DeliverAllPolicy,
		AckPolicy:         jetstream.AckNonePolicy,
		FilterSubject:     subject,
		ReplayPolicy:      jetstream.ReplayInstantPolicy,
		InactiveThreshold: time.Minute,
		MemoryStorage:     true,
		Replicas:          1,
	})
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", subject, err)
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), settleTimeout)
		defer cancel()
		if err := n.js.DeleteConsumer(dctx, LogStreamName, cons.CachedInfo().Name); err != nil {
			n.log.Debug("delete the delivery log reader", "err", err)
		}
	}()
	pending := cons.CachedInfo().NumPending
	// Only the newest limit entries are decoded.
	skip := uint64(0)
	if pending > uint64(limit) {
		skip = pending - uint64(limit)
	}
	out := make([]Attempt, 0, min(pending, uint64(limit)))
	var seen uint64
	for seen < pending {
		fctx, cancel := context.WithTimeout(ctx, logReadTimeout)
		batch, err := cons.Fetch(int(min(pending-seen, logFetchBatch)), jetstream.FetchContext(fctx))
		if err != nil {
			cancel()
			return nil, fmt.Errorf("read %s: %w", subject, err)
		}
		got := 0
		last := false
		for msg := range batch.Messages() {
			got++
			seen++
			if md, err := msg.Metadata(); err == nil && md.NumPending == 0 {
				last = true
			}
			if seen <= skip {
				continue
			}
			var a Attempt
			if err := json.Unmarshal(msg.Data(), &a); err != nil {
				n.log.Warn("undecodable delivery log entry", "subject", subject, "err", err)
				continue
			}
			out = append(out, a)
		}
		err = batch.Error()
		cancel()
		if err != nil && ctx.Err() != nil {
			return nil, fmt.Errorf("read %s: %w", subject, err)
		}
		// Entries that expired meanwhile end the read early.
		if got == 0 || last {
			break
		}
	}
	return out, nil
}
