package natsapi

import (
	"context"

	"github.com/backupledger/backupledger/usecase"
)

// The lifecycle endpoints: an app's nightly schedule, and the webhooks of
// an app or an organisation with their delivery logs. They offer what the
// HTTP API's /v1/apps/{app}/schedule and .../webhooks routes do, with the
// same codes and bodies; what HTTP has in the path is a field here. A
// webhook's secret is answered once, by webhooks.create.

// Limits of DeliveriesRequest.Limit.
const (
	defaultDeliveryLimit = 100
	maxDeliveryLimit     = 1000
)

// SetScheduleRequest is the body of schedule.set. Enabled is required; a
// null or absent Time or TimeZone keeps the app's current value (the
// server's default when it never set one).
type SetScheduleRequest struct {
	App      string  `json:"app"`
	Enabled  *bool   `json:"enabled"`
	Time     *string `json:"time,omitempty"`      // HH:MM
	TimeZone *string `json:"time_zone,omitempty"` // an IANA name: Europe/Berlin
	CommandFields
}

// CreateWebhookRequest is the body of webhooks.create: a webhook of an
// app (App) or of an organisation (Org), exactly one of them. No Events
// means every event type a webhook may ask for; no Secret means a
// generated one.
type CreateWebhookRequest struct {
	App    string   `json:"app,omitempty"`
	Org    string   `json:"org,omitempty"`
	URL    string   `json:"url"`
	Events []string `json:"events,omitempty"`
	Secret string   `json:"secret,omitempty"`
	CommandFields
}

// WebhooksRequest names the app or the organisation (exactly one) whose
// webhooks webhooks.list answers.
type WebhooksRequest struct {
	App string `json:"app,omitempty"`
	Org string `json:"org,omitempty"`
}

// WebhookRequest names one webhook of an app or an organisation: the body
// of webhooks.delete.
type WebhookRequest struct {
	App string `json:"app,omitempty"`
	Org string `json:"org,omitempty"`
	ID  string `json:"id"`
	CommandFields
}

// DeliveriesRequest is the body of webhooks.deliveries: a webhook of an app
// or an organisation, and how many of its latest delivery attempts to
// answer (null or absent: 100; else 1 to 1000).
type DeliveriesRequest struct {
	App   string `json:"app,omitempty"`
	Org   string `json:"org,omitempty"`
	ID    string `json:"id"`
	Limit *int   `json:"limit,omitempty"`
}

// WebhookDeleted is the answer of webhooks.delete.
type WebhookDeleted struct {
	ID      string `json:"id"`
	App     string `json:"app,omitempty"`
	Org     string `json:"org,omitempty"`
	Deleted bool   `json:"deleted"`
}

// getSchedule answers the app's nightly schedule.
func (s *Service) getSchedule(ctx context.Context, c *call) (any, error) {
	var req AppRequest
	if err := s.decodeApp(c, &req, &req.App); err != nil {
		return nil, err
	}
	return s.app.GetSchedule(ctx, c.query(), req.App)
}

// setSchedule sets the app's nightly schedule and answers it. A retry with
// the same idempotency key answers the schedule as it stands.
func (s *Service) setSchedule(ctx context.Context, c *call) (any, error) {
	var req SetScheduleRequest
	if err := s.decodeApp(c, &req, &req.App); err != nil {
		return nil, err
	}
	uc, err := s.command(c, req.CommandFields)
	if err != nil {
		return nil, err
	}
	v, err := s.app.SetSchedule(ctx, uc, usecase.SetSchedule{App: req.App, Enabled: req.Enabled, Time: req.Time, TimeZone: req.TimeZone})
	return commandAnswer(c, uc, v, err)
}

// createWebhook registers a webhook and answers it with its secret, shown
// this once. A retry with the same idempotency key is already_exists: the
// secret is not shown again.
func (s *Service) createWebhook(ctx context.Context, c *call) (any, error) {
	var req CreateWebhookRequest
	if err := decode(c.req.Data(), &req); err != nil {
		return nil, err
	}
	c.app = req.App
	return s.identityCommand(ctx, c, req.CommandFields, func(ctx context.Context, uc *usecase.Call) (any, error) {
		return s.app.CreateWebhook(ctx, uc, usecase.CreateWebhook{WebhookScope: usecase.WebhookScope{Org: req.Org, App: req.App},
			URL: req.URL, Events: req.Events, Secret: req.Secret})
	})
}

// listWebhooks answers the webhooks of an app or an organisation, without
// their secrets.
func (s *Service) listWebhooks(ctx context.Context, c *call) (any, error) {
	var req WebhooksRequest
	if err := decode(c.req.Data(), &req); err != nil {
		return nil, err
	}
	c.app = req.App
	return s.app.ListWebhooks(ctx, c.query(), usecase.WebhookScope{Org: req.Org, App: req.App})
}

// deleteWebhook removes a webhook of an app or an organisation; no
// delivery is attempted after.
func (s *Service) deleteWebhook(ctx context.Context, c *call) (any, error) {
	var req WebhookRequest
	if err := decode(c.req.Data(), &req); err != nil {
		return nil, err
	}
	c.app = req.App
	return s.identityCommand(ctx, c, req.CommandFields, func(ctx context.Context, uc *usecase.Call) (any, error) {
		err := s.app.DeleteWebhook(ctx, uc, usecase.WebhookRef{WebhookScope: usecase.WebhookScope{Org: req.Org, App: req.App}, ID: req.ID})
		return WebhookDeleted{ID: req.ID, App: req.App, Org: req.Org, Deleted: true}, err
	})
}

// webhookDeliveries answers the latest attempts of a webhook's deliveries,
// oldest first.
func (s *Service) webhookDeliveries(ctx context.Context, c *call) (any, error) {
	var req DeliveriesRequest
	if err := decode(c.req.Data(), &req); err != nil {
		return nil, err
	}
	c.app = req.App
	return s.app.WebhookDeliveries(ctx, c.query(), usecase.WebhookDeliveries{
		WebhookRef: usecase.WebhookRef{WebhookScope: usecase.WebhookScope{Org: req.Org, App: req.App}, ID: req.ID}, Limit: req.Limit})
}
