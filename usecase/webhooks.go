package usecase

import (
	"context"

	"github.com/backupledger/backupledger/domain"
	"github.com/backupledger/backupledger/projections"
)

// Delivery log limits of WebhookDeliveries.
const (
	// DefaultDeliveryLimit is how many attempts a delivery log answers
	// when the request names no limit.
	DefaultDeliveryLimit = 100
	// MaxDeliveryLimit is the most it answers.
	MaxDeliveryLimit = 1000
)

// WebhookScope is the organisation or the app (exactly one) whose webhooks
// a request is about.
type WebhookScope struct {
	Org string
	App string
}

// check refuses a scope that is not exactly one of an organisation and an
// app, and an app the caller may not see (not_found). Whether the caller
// may manage the scope's webhooks is domain.CheckWebhook's.
func (a *Application) checkScope(c *Call, sc WebhookScope) error {
	switch {
	case sc.Org != "" && sc.App != "", sc.Org == "" && sc.App == "":
		return domain.Errorf(domain.CodeInvalidArgument, "exactly one of the fields \"app\" and \"org\" is required")
	case sc.App != "":
		return a.CheckApp(c.Principal, sc.App)
	}
	return nil
}

// checkWebhooks checks that the caller may manage the webhooks of the
// scope and, if hook is not empty, that the webhook is one of them
// (not_found otherwise); then, if it may, calls then with the directory in
// the same read.
func (a *Application) checkWebhooks(c *Call, sc WebhookScope, hook string, then func(d *domain.Directory)) error {
	id, err := a.identity()
	if err != nil {
		return err
	}
	id.Read(func(d *domain.Directory) {
		if err = domain.CheckWebhook(d, c.Principal, sc.Org, sc.App, hook); err == nil && then != nil {
			then(d)
		}
	})
	return err
}

// CreateWebhook registers URL for Events (none: every event type a
// webhook may ask for) of a scope; no Secret makes one.
type CreateWebhook struct {
	WebhookScope
	URL    string
	Events []string
	Secret string
}

// CreateWebhook registers a webhook and answers it with its secret, shown
// this once: invalid_argument (no URL, a target that is not public unless
// the server allows it), permission_denied, not_found. A retry with the
// same idempotency key is already_exists: the secret is not shown again.
func (a *Application) CreateWebhook(ctx context.Context, c *Call, req CreateWebhook) (projections.NewWebhookView, error) {
	if err := a.checkScope(c, req.WebhookScope); err != nil {
		return projections.NewWebhookView{}, err
	}
	if req.URL == "" {
		return projections.NewWebhookView{}, domain.Errorf(domain.CodeInvalidArgument, "field \"url\" is required")
	}
	cmd := domain.RegisterWebhook{Org: req.Org, App: req.App, URL: req.URL, Events: req.Events}
	var made domain.NewWebhook
	_, err := a.runIdentity(ctx, c, func(ctx context.Context, id Identity) (domain.IdentityResult, error) {
		var err error
		made, err = id.RegisterWebhook(ctx, c.Principal, cmd, req.Secret, c.Meta)
		return domain.IdentityResult{}, err
	}, nil)
	if err != nil {
		return projections.NewWebhookView{}, err
	}
	return projections.NewWebhookView{WebhookView: projections.WebhookViewOf(&made.Webhook), Secret: made.Secret}, nil
}

// ListWebhooks answers the webhooks of a scope, without their secrets.
func (a *Application) ListWebhooks(_ context.Context, c *Call, sc WebhookScope) (projections.WebhookList, error) {
	if err := a.checkScope(c, sc); err != nil {
		return projections.WebhookList{}, err
	}
	var l projections.WebhookList
	err := a.checkWebhooks(c, sc, "", func(d *domain.Directory) { l = projections.WebhooksOf(d, sc.Org, sc.App) })
	return l, err
}

// WebhookRef names one webhook of a scope.
type WebhookRef struct {
	WebhookScope
	ID string
}

// DeleteWebhook removes a webhook; no delivery is attempted after:
// not_found, permission_denied.
func (a *Application) DeleteWebhook(ctx context.Context, c *Call, req WebhookRef) error {
	if err := a.checkScope(c, req.WebhookScope); err != nil {
		return err
	}
	if req.ID == "" {
		return domain.Errorf(domain.CodeInvalidArgument, "field \"id\" is required")
	}
	_, err := a.runIdentity(ctx, c, c.execute(domain.RemoveWebhook{ID: req.ID, Org: req.Org, App: req.App}), nil)
	return err
}

// WebhookDeliveries asks for the newest Limit attempts of a webhook's
// deliveries (nil: DefaultDeliveryLimit).
type WebhookDeliveries struct {
	WebhookRef
	Limit *int
}

// WebhookDeliveries answers the newest attempts of a webhook's
// deliveries, oldest first: invalid_argument (a limit out of 1 to
// MaxDeliveryLimit), not_found, unavailable (no delivery log here).
func (a *Application) WebhookDeliveries(ctx context.Context, c *Call, req WebhookDeliveries) (projections.DeliveryList, error) {
	if err := a.checkScope(c, req.WebhookScope); err != nil {
		return projections.DeliveryList{}, err
	}
	if a.deps.Deliveries == nil {
		return projections.DeliveryList{}, domain.Errorf(domain.CodeUnavailable, "webhook deliveries are not configured on this server")
	}
	if req.ID == "" {
		return projections.DeliveryList{}, domain.Errorf(domain.CodeInvalidArgument, "field \"id\" is required")
	}
	limit := DefaultDeliveryLimit
	if req.Limit != nil {
		if *req.Limit < 1 || *req.Limit > MaxDeliveryLimit {
			return projections.DeliveryList{}, domain.Errorf(domain.CodeInvalidArgument, "limit must be 1 to %d", MaxDeliveryLimit)
		}
		limit = *req.Limit
	}
	if err := a.checkWebhooks(c, req.WebhookScope, req.ID, nil); err != nil {
		return projections.DeliveryList{}, err
	}
	l, err := a.deps.Deliveries.Deliveries(ctx, req.ID, limit)
	if err != nil {
		return projections.DeliveryList{}, err
	}
	if l == nil {
		l = []projections.DeliveryView{}
	}
	return projections.DeliveryList{Deliveries: l}, nil
}
