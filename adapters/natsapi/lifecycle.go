package natsapi

import (
	"context"

	"github.com/backupledger/backupledger/usecase"

	"github.com/backupledger/backupledger/domain"
	"github.com/backupledger/backupledger/projections"
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

// webhookScope checks the scope of a webhook request: exactly one of org
// and app, and for an app the same validation and access check as every
// app endpoint (not_found for an app the caller cannot see). Whether the
// caller may manage the scope's webhooks is domain.CheckWebhook's.
func (s *Service) webhookScope(c *call, org, app string) error {
	switch {
	case org != "" && app != "", org == "" && app == "":
		return domain.Errorf(domain.CodeInvalidArgument, "exactly one of the fields \"app\" and \"org\" is required")
	case app != "":
		return s.checkApp(c, app)
	}
	return nil
}

// checkWebhooks checks that the caller may manage the webhooks of the
// scope (already checked by webhookScope) and, if hook is not empty, that
// the webhook is one of them (not_found otherwise); then, if it may, calls
// then with the directory in the same read.
func (s *Service) checkWebhooks(c *call, org, app, hook string, then func(d *domain.Directory)) error {
	id, err := s.identity()
	if err != nil {
		return err
	}
	id.Read(func(d *domain.Directory) {
		if err = domain.CheckWebhook(d, c.p, org, app, hook); err == nil && then != nil {
			then(d)
		}
	})
	return err
}

// createWebhook registers a webhook and answers it with its secret, shown
// this once. A retry with the same idempotency key is already_exists: the
// secret is not shown again.
func (s *Service) createWebhook(ctx context.Context, c *call) (any, error) {
	var req CreateWebhookRequest
	if err := decode(c.req.Data(), &req); err != nil {
		return nil, err
	}
	if err := s.webhookScope(c, req.Org, req.App); err != nil {
		return nil, err
	}
	if req.URL == "" {
		return nil, domain.Errorf(domain.CodeInvalidArgument, "field \"url\" is required")
	}
	cmd := domain.RegisterWebhook{Org: req.Org, App: req.App, URL: req.URL, Events: req.Events}
	var made domain.NewWebhook
	return s.runIdentity(ctx, c, req.CommandFields, func(ctx context.Context, id usecase.Identity, m domain.Meta) (domain.IdentityResult, error) {
		var err error
		made, err = id.RegisterWebhook(ctx, c.p, cmd, req.Secret, m)
		return domain.IdentityResult{}, err
	}, func(*domain.Directory) (any, error) {
		return projections.NewWebhookView{WebhookView: projections.WebhookViewOf(&made.Webhook), Secret: made.Secret}, nil
	})
}

// listWebhooks answers the webhooks of an app or an organisation, without
// their secrets.
func (s *Service) listWebhooks(_ context.Context, c *call) (any, error) {
	var req WebhooksRequest
	if err := decode(c.req.Data(), &req); err != nil {
		return nil, err
	}
	if err := s.webhookScope(c, req.Org, req.App); err != nil {
		return nil, err
	}
	var l projections.WebhookList
	if err := s.checkWebhooks(c, req.Org, req.App, "", func(d *domain.Directory) { l = projections.WebhooksOf(d, req.Org, req.App) }); err != nil {
		return nil, err
	}
	return l, nil
}

// deleteWebhook removes a webhook of an app or an organisation; no
// delivery is attempted after.
func (s *Service) deleteWebhook(ctx context.Context, c *call) (any, error) {
	var req WebhookRequest
	if err := decode(c.req.Data(), &req); err != nil {
		return nil, err
	}
	if err := s.webhookScope(c, req.Org, req.App); err != nil {
		return nil, err
	}
	if req.ID == "" {
		return nil, domain.Errorf(domain.CodeInvalidArgument, "field \"id\" is required")
	}
	cmd := domain.RemoveWebhook{ID: req.ID, Org: req.Org, App: req.App}
	return s.runIdentity(ctx, c, req.CommandFields, execCmd(c.p, cmd),
		answer(WebhookDeleted{ID: req.ID, App: req.App, Org: req.Org, Deleted: true}))
}

// webhookDeliveries answers the latest attempts of a webhook's deliveries,
// oldest first.
func (s *Service) webhookDeliveries(ctx context.Context, c *call) (any, error) {
	var req DeliveriesRequest
	if err := decode(c.req.Data(), &req); err != nil {
		return nil, err
	}
	if err := s.webhookScope(c, req.Org, req.App); err != nil {
		return nil, err
	}
	if s.deps.Deliveries == nil {
		return nil, domain.Errorf(domain.CodeUnavailable, "webhook deliveries are not configured on this server")
	}
	if req.ID == "" {
		return nil, domain.Errorf(domain.CodeInvalidArgument, "field \"id\" is required")
	}
	limit := defaultDeliveryLimit
	if req.Limit != nil {
		if *req.Limit < 1 || *req.Limit > maxDeliveryLimit {
			return nil, domain.Errorf(domain.CodeInvalidArgument, "limit must be 1 to %d", maxDeliveryLimit)
		}
		limit = *req.Limit
	}
	if err := s.checkWebhooks(c, req.Org, req.App, req.ID, nil); err != nil {
		return nil, err
	}
	l, err := s.deps.Deliveries.Deliveries(ctx, req.ID, limit)
	if err != nil {
		return nil, err
	}
	if l == nil {
		l = []projections.DeliveryView{}
	}
	return projections.DeliveryList{Deliveries: l}, nil
}
