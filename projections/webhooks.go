package projections

import (
	"slices"
	"time"

	"github.com/backupledger/backupledger/domain"
)

// WebhookView is the JSON of a webhook, without its secret.
type WebhookView struct {
	ID        string    `json:"id"`
	Org       string    `json:"org,omitempty"`
	App       string    `json:"app,omitempty"`
	URL       string    `json:"url"`
	Events    []string  `json:"events"`
	CreatedBy string    `json:"created_by"`
	CreatedAt time.Time `json:"created_at"`
}

// NewWebhookView is the answer to registering a webhook: the secret is
// shown this once.
type NewWebhookView struct {
	WebhookView
	Secret string `json:"secret"`
}

// WebhookList is the JSON of a list of webhooks.
type WebhookList struct {
	Webhooks []WebhookView `json:"webhooks"`
}

// WebhookViewOf is the view of w.
func WebhookViewOf(w *domain.Webhook) WebhookView {
	return WebhookView{ID: w.ID, Org: w.Org, App: w.App, URL: w.URL, Events: slices.Clone(w.Events),
		CreatedBy: w.CreatedBy, CreatedAt: w.CreatedAt.UTC()}
}

// WebhooksOf lists the webhooks of an organisation (org set) or an app.
func WebhooksOf(d *domain.Directory, org, app string) WebhookList {
	l := WebhookList{Webhooks: []WebhookView{}}
	for _, w := range d.Webhooks(org, app) {
		l.Webhooks = append(l.Webhooks, WebhookViewOf(w))
	}
	return l
}

// DeliveryView is one attempt of a webhook delivery, in its delivery log.
type DeliveryView struct {
	DeliveryID    string     `json:"delivery_id"`
	WebhookID     string     `json:"webhook_id"`
	EventID       string     `json:"event_id"`
	EventType     string     `json:"event_type"`
	App           string     `json:"app"`
	Attempt       int        `json:"attempt"`
	Time          time.Time  `json:"time"`
	Result        string     `json:"result"` // delivered, failed (retried), gave_up, dropped
	StatusCode    int        `json:"status_code,omitempty"`
	Error         string     `json:"error,omitempty"`
	DurationMS    int64      `json:"duration_ms"`
	NextAttemptAt *time.Time `json:"next_attempt_at,omitempty"`
}

// DeliveryList is the JSON of a webhook's delivery log, oldest first.
type DeliveryList struct {
	Deliveries []DeliveryView `json:"deliveries"`
}
