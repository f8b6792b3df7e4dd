package notify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/backupledger/backupledger/domain"
)

// Limits of a job.
const (
	// MaxIDLen is the longest delivery, e-mail, event or webhook id.
	MaxIDLen = 200
	// MaxRecipients is the most recipients of one e-mail.
	MaxRecipients = 100
	// MaxSubjectLen is the longest subject of an e-mail, in characters.
	MaxSubjectLen = 500
)

// WebhookJob is one webhook delivery to make.
type WebhookJob struct {
	// DeliveryID is unique per event and webhook, e.g. "<event id>.<webhook
	// id>": 1 to 200 characters of [A-Za-z0-9_.-]. It is the Nats-Msg-Id of
	// the job (enqueuing it twice stores it once) and is sent as the header
	// X-Backupledger-Delivery.
	DeliveryID string `json:"delivery_id"`
	// WebhookID names the webhook: 1 to 200 characters of [A-Za-z0-9_-].
	WebhookID string `json:"webhook_id"`
	// EventID is the id of the event that is notified (required).
	EventID string `json:"event_id"`
	// EventType is its type, sent as the header X-Backupledger-Event
	// (required, printable ASCII).
	EventType string `json:"event_type"`
	// App is the app of the event, if any.
	App string `json:"app"`
	// Body is the exact JSON document that is POSTed.
	Body json.RawMessage `json:"body"`
}

// EmailJob is one e-mail to send.
type EmailJob struct {
	// ID is the Nats-Msg-Id of the job and the left part of the Message-ID,
	// e.g. "<event id>.email": 1 to 200 characters of [A-Za-z0-9_.-].
	ID string `json:"id"`
	// To are the recipients (RFC 5322 addresses), 1 to 100.
	To []string `json:"to"`
	// Subject is the subject, without line breaks; non-ASCII text is
	// encoded (RFC 2047).
	Subject string `json:"subject"`
	// Body is the text/plain body, UTF-8.
	Body string `json:"body"`
	// EventID is the id of the event that is notified (required).
	EventID string `json:"event_id"`
	// EventType is its type (required, printable ASCII).
	EventType string `json:"event_type"`
	// App is the app of the event, if any.
	App string `json:"app"`
}

// Validate reports every problem of the job at once, as an *domain.Error
// with domain.CodeInvalidArgument.
func (j WebhookJob) Validate() error {
	var errs []string
	errs = checkID(errs, "delivery id", j.DeliveryID, true)
	errs = checkID(errs, "webhook id", j.WebhookID, false)
	errs = checkID(errs, "event id", j.EventID, true)
	errs = checkEvent(errs, j.EventType, j.App)
	if len(j.Body) == 0 || !json.Valid(j.Body) {
		errs = append(errs, "body must be a JSON document")
	}
	return invalid("webhook job", errs)
}

// Validate reports every problem of the job at once, as an *domain.Error
// with domain.CodeInvalidArgument. It refuses line breaks in the subject
// and the addresses, which could inject headers.
func (j EmailJob) Validate() error {
	var errs []string
	errs = checkID(errs, "id", j.ID, true)
	errs = checkID(errs, "event id", j.EventID, true)
	errs = checkEvent(errs, j.EventType, j.App)
	switch {
	case len(j.To) == 0:
		errs = append(errs, "at least one recipient is required")
	case len(j.To) > MaxRecipients:
		errs = append(errs, fmt.Sprintf("at most %d recipients, got %d", MaxRecipients, len(j.To)))
	}
	for _, to := range j.To {
		if _, err := parseAddress(to); err != nil {
			errs = append(errs, fmt.Sprintf("recipient: %v", err))
		}
	}
	switch {
	case !utf8.ValidString(j.Subject):
		errs = append(errs, "subject must be valid UTF-8")
	case strings.IndexFunc(j.Subject, unicode.IsControl) >= 0:
		errs = append(errs, "subject must not contain line breaks or other control characters")
	case utf8.RuneCountInString(j.Subject) > MaxSubjectLen:
		errs = append(errs, fmt.Sprintf("subject must be at most %d characters", MaxSubjectLen))
	}
	if !utf8.ValidString(j.Body) {
		errs = append(errs, "body must be valid UTF-8")
	}
	return invalid("e-mail job", errs)
}

// checkID appends a problem of id to errs. Ids are 1 to MaxIDLen
// characters of [A-Za-z0-9_-], and dots when dots is set (a subject token
// has none).
func checkID(errs []string, what, id string, dots bool) []string {
	ok := id != "" && len(id) <= MaxIDLen && id[0] != '.' && id[len(id)-1] != '.'
	for i := 0; ok && i < len(id); i++ {
		c := id[i]
		ok = c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || dots && c == '.' && id[i-1] != '.'
	}
	if ok {
		return errs
	}
	chars := "[A-Za-z0-9_-]"
	if dots {
		chars = "[A-Za-z0-9_.-] (no leading, trailing or double dot)"
	}
	return append(errs, fmt.Sprintf("%s must be 1 to %d characters of %s, got %q", what, MaxIDLen, chars, id))
}

// checkEvent appends the problems of an event type and app to errs.
func checkEvent(errs []string, typ, app string) []string {
	if typ == "" || len(typ) > MaxIDLen || strings.IndexFunc(typ, func(r rune) bool { return r <= ' ' || r > '~' }) >= 0 {
		errs = append(errs, fmt.Sprintf("event type must be 1 to %d printable ASCII characters, got %q", MaxIDLen, typ))
	}
	if app != "" {
		if err := domain.ValidateAppID(app); err != nil {
			errs = append(errs, err.Error())
		}
	}
	return errs
}

// invalid returns nil for no problems, or one invalid-argument error.
func invalid(what string, errs []string) error {
	if len(errs) == 0 {
		return nil
	}
	return domain.Errorf(domain.CodeInvalidArgument, "%s: %s", what, strings.Join(errs, "; "))
}

// EnqueueWebhook stores j in the stream NOTIFY and returns once the server
// has stored it, or once more if j.DeliveryID was enqueued within
// DuplicateWindow (the duplicate is not stored, which is not an error). It
// returns the error of WebhookJob.Validate for an invalid job, and the
// publish error, wrapped.
func (n *Notifier) EnqueueWebhook(ctx context.Context, j WebhookJob) error {
	if err := j.Validate(); err != nil {
		return err
	}
	return n.enqueue(ctx, WebhookSubject(j.WebhookID), j.DeliveryID, j)
}

// EnqueueEmail stores j in the stream NOTIFY and returns once the server has
// stored it, or once more if j.ID was enqueued within DuplicateWindow. It
// returns the error of EmailJob.Validate for an invalid job, and the publish
// error, wrapped. It does not need e-mail to be configured: the process
// that delivers decides.
func (n *Notifier) EnqueueEmail(ctx context.Context, j EmailJob) error {
	if err := j.Validate(); err != nil {
		return err
	}
	return n.enqueue(ctx, SubjectEmail, j.ID, j)
}

// enqueue publishes job as JSON on subject with the message id id.
func (n *Notifier) enqueue(ctx context.Context, subject, id string, job any) error {
	body, err := json.Marshal(job)
	if err != nil {
		return fmt.Errorf("encode job %s: %w", id, err)
	}
	if _, err := n.js.Publish(ctx, subject, body, jetstream.WithMsgID(id), jetstream.WithExpectStream(StreamName)); err != nil {
		return fmt.Errorf("enqueue %s on %s: %w", id, subject, err)
	}
	return nil
}

// decodeJob decodes the job of a message by its subject: a *WebhookJob or
// an *EmailJob, valid.
func decodeJob(subject string, body []byte) (any, error) {
	switch {
	case strings.HasPrefix(subject, SubjectWebhook+"."):
		var j WebhookJob
		if err := json.Unmarshal(body, &j); err != nil {
			return nil, fmt.Errorf("decode webhook job: %w", err)
		}
		if err := j.Validate(); err != nil {
			return nil, err
		}
		if subject != WebhookSubject(j.WebhookID) {
			return nil, fmt.Errorf("webhook job for %q on subject %s", j.WebhookID, subject)
		}
		return &j, nil
	case subject == SubjectEmail:
		var j EmailJob
		if err := json.Unmarshal(body, &j); err != nil {
			return nil, fmt.Errorf("decode e-mail job: %w", err)
		}
		if err := j.Validate(); err != nil {
			return nil, err
		}
		return &j, nil
	default:
		return nil, errors.New("no job is published on this subject")
	}
}
