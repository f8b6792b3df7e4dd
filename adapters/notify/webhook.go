package notify

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/backupledger/backupledger/adapters/internal/workqueue"
)

// maxErrorBody is how much of a failed answer's body an Attempt keeps.
const maxErrorBody = 200

// maxDrain is how much of an answer's body is read so that the connection
// can be used again; a longer body closes it.
const maxDrain = 64 << 10

// postResult is the outcome of one webhook POST.
type postResult struct {
	status    int
	err       string // short, no secrets; "" on success
	permanent bool   // retrying cannot help
}

// webhookLog returns log with the keys of webhook job j.
func webhookLog(log *slog.Logger, j *WebhookJob) *slog.Logger {
	log = log.With("delivery_id", j.DeliveryID, "webhook_id", j.WebhookID, "event_id", j.EventID, "event_type", j.EventType)
	if j.App != "" {
		log = log.With("app", j.App)
	}
	return log
}

// deliverWebhook makes one delivery attempt of j, the job of m, and
// returns the outcome that settles m. m.Log has the message's sequence, the
// attempt and the job's keys (webhookLog).
func (n *Notifier) deliverWebhook(ctx context.Context, m *workqueue.Msg, j *WebhookJob) workqueue.Outcome {
	log := m.Log
	a := Attempt{
		DeliveryID: j.DeliveryID,
		WebhookID:  j.WebhookID,
		EventID:    j.EventID,
		EventType:  j.EventType,
		App:        j.App,
		Attempt:    m.Delivery,
	}
	start := time.Now()
	a.Time = start.UTC()
	target, ok, err := n.hooks.Webhook(ctx, j.WebhookID)
	switch {
	case err != nil && ctx.Err() != nil:
		return handBack(log)
	case err != nil:
		log.Error("look up webhook", "err", err)
		a.Error = "internal error: webhook lookup failed"
		return n.webhookFailed(m, a, false)
	case !ok:
		a.Result = ResultDropped
		n.record(log, a)
		log.Info("webhook removed; delivery dropped")
		return workqueue.Ack()
	}
	res := n.post(ctx, target, j, m.Delivery)
	a.DurationMS = time.Since(start).Milliseconds()
	a.StatusCode = res.status
	if res.err == "" {
		a.Result = ResultDelivered
		n.record(log, a)
		log.Debug("webhook delivered", "status", res.status)
		return workqueue.Ack()
	}
	if ctx.Err() != nil {
		// This process stops: not the receiver's failure.
		return handBack(log)
	}
	a.Error = res.err
	return n.webhookFailed(m, a, res.permanent)
}

// webhookFailed records a failed attempt of m's job and retries it later,
// or gives up when permanent or when the job is older than RetryFor.
func (n *Notifier) webhookFailed(m *workqueue.Msg, a Attempt, permanent bool) workqueue.Outcome {
	log := m.Log
	now := time.Now()
	if permanent || n.expired(m.Stored, now) {
		a.Result = ResultGaveUp
		n.record(log, a)
		log.Warn("webhook delivery gave up", "status", a.StatusCode, "err", a.Error, "permanent", permanent)
		return workqueue.Term("gave up: " + a.Error)
	}
	delay := m.Backoff()
	next := now.Add(delay).UTC()
	a.Result = ResultFailed
	a.NextAttemptAt = &next
	n.record(log, a)
	log.Info("webhook delivery failed; retrying", "status", a.StatusCode, "err", a.Error, "retry_in", delay)
	return workqueue.Retry(delay)
}

// post POSTs the body of j to t, signed.
func (n *Notifier) post(ctx context.Context, t WebhookTarget, j *WebhookJob, attempt int) postResult {
	u, err := url.Parse(t.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return postResult{err: "webhook URL is not an absolute http or https URL", permanent: true}
	}
	ctx, cancel := context.WithTimeout(ctx, n.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(j.Body))
	if err != nil {
		return postResult{err: "webhook URL cannot be requested", permanent: true}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", n.cfg.UserAgent)
	req.Header.Set(HeaderSignature, Sign(t.Secret, j.Body))
	req.Header.Set(HeaderEvent, j.EventType)
	req.Header.Set(HeaderDelivery, j.DeliveryID)
	req.Header.Set(HeaderAttempt, strconv.Itoa(attempt))
	resp, err := n.client.Do(req)
	if errors.Is(err, errTargetNotAllowed) {
		// Not how the address failed (no connection was tried), so that
		// webhooks cannot scan the internal network.
		return postResult{err: errTargetNotAllowed.Error(), permanent: true}
	}
	if err != nil {
		return postResult{err: requestError(err, n.cfg.Timeout)}
	}
	defer resp.Body.Close()
	head, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxDrain))
	code := resp.StatusCode
	msg := fmt.Sprintf("status %d", code)
	switch {
	case code >= 200 && code < 300:
		return postResult{status: code}
	case code >= 300 && code < 400:
		return postResult{status: code, err: msg + ": redirect not followed"}
	case code == http.StatusGone:
		return postResult{status: code, err: msg + ": the receiver is gone", permanent: true}
	}
	if body := clean(string(head)); body != "" {
		msg += ": " + body
	}
	return postResult{status: code, err: msg}
}

// requestError returns a short description of a failed request, without
// its URL (which may hold credentials) and without the resolver's address
// of a failed DNS lookup.
func requestError(err error, timeout time.Duration) string {
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Sprintf("no answer within %s", timeout)
	}
	var de *net.DNSError
	if errors.As(err, &de) {
		return "host name not resolved"
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return clean(err.Error())
}

// clean makes s fit for the delivery log: valid UTF-8, control characters
// as spaces, trimmed, at most maxErrorBody bytes.
func clean(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
	s = strings.TrimSpace(s)
	if len(s) <= maxErrorBody {
		return s
	}
	cut := maxErrorBody
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut]
}
