package httpapi

import (
	"context"
	"net/http"
	"strconv"

	"github.com/backupledger/backupledger/usecase"

	"github.com/backupledger/backupledger/domain"
	"github.com/backupledger/backupledger/projections"
)

// Delivery log limits of GET .../deliveries.
const (
	defaultDeliveryLimit = 100
	maxDeliveryLimit     = 1000
)

// lifecycleRoutes registers the nightly schedule and webhook routes.
func (s *Server) lifecycleRoutes(api *http.ServeMux) {
	s.v1(api, "GET /v1/apps/{app}/schedule", s.getSchedule)
	s.v1(api, "PUT /v1/apps/{app}/schedule", s.putSchedule)
	s.v1(api, "POST /v1/apps/{app}/webhooks", s.createWebhook)
	s.v1(api, "GET /v1/apps/{app}/webhooks", s.listWebhooks)
	s.v1(api, "DELETE /v1/apps/{app}/webhooks/{id}", s.deleteWebhook)
	s.v1(api, "GET /v1/apps/{app}/webhooks/{id}/deliveries", s.webhookDeliveries)
	s.v1(api, "POST /v1/orgs/{org}/webhooks", s.createWebhook)
	s.v1(api, "GET /v1/orgs/{org}/webhooks", s.listWebhooks)
	s.v1(api, "DELETE /v1/orgs/{org}/webhooks/{id}", s.deleteWebhook)
	s.v1(api, "GET /v1/orgs/{org}/webhooks/{id}/deliveries", s.webhookDeliveries)
}

// getSchedule answers the app's nightly schedule.
func (s *Server) getSchedule(w http.ResponseWriter, r *http.Request, c call) error {
	v, err := s.app.GetSchedule(r.Context(), c.query(), c.app)
	return respond(w, http.StatusOK, v, err)
}

type scheduleRequest struct {
	Enabled  *bool   `json:"enabled"`
	Time     *string `json:"time"`
	TimeZone *string `json:"time_zone"`
}

// putSchedule sets the app's schedule; a field left out keeps its current
// (or default) value, except enabled, which must be given.
func (s *Server) putSchedule(w http.ResponseWriter, r *http.Request, c call) error {
	var req scheduleRequest
	if err := s.decodeJSON(w, r, &req); err != nil {
		return err
	}
	uc, err := s.command(w, r, c)
	if err != nil {
		return err
	}
	ctx, cancel := s.timeout(r)
	defer cancel()
	v, err := s.app.SetSchedule(ctx, uc, usecase.SetSchedule{App: c.app, Enabled: req.Enabled, Time: req.Time, TimeZone: req.TimeZone})
	if err == nil {
		replayed(w, uc)
	}
	return respond(w, http.StatusOK, v, err)
}

// scope returns the organisation or app of a webhook route ("" for the
// other).
func scope(r *http.Request, c call) (org, app string) {
	if c.app != "" {
		return "", c.app
	}
	return r.PathValue("org"), ""
}

// checkWebhooks answers whether c may manage the webhooks of the route's
// scope, and the webhook {id} if the route names one and it is there;
// then, if it may, calls then with the directory in the same read.
func (s *Server) checkWebhooks(r *http.Request, c call, then func(d *domain.Directory)) error {
	id, err := s.identity()
	if err != nil {
		return err
	}
	org, app := scope(r, c)
	id.Read(func(d *domain.Directory) {
		if err = domain.CheckWebhook(d, c.p, org, app, r.PathValue("id")); err == nil && then != nil {
			then(d)
		}
	})
	return err
}

type createWebhookRequest struct {
	URL    string   `json:"url"`
	Events []string `json:"events"`
	Secret string   `json:"secret"`
}

// createWebhook registers a webhook: 201 with its secret, shown once.
func (s *Server) createWebhook(w http.ResponseWriter, r *http.Request, c call) error {
	var req createWebhookRequest
	if err := s.decodeJSON(w, r, &req); err != nil {
		return err
	}
	if req.URL == "" {
		return domain.Errorf(domain.CodeInvalidArgument, "field \"url\" is required")
	}
	org, app := scope(r, c)
	var made domain.NewWebhook
	return s.runIdentity(w, r, c, http.StatusCreated, func(ctx context.Context, id usecase.Identity, m domain.Meta) error {
		var err error
		made, err = id.RegisterWebhook(ctx, c.p, domain.RegisterWebhook{Org: org, App: app, URL: req.URL, Events: req.Events}, req.Secret, m)
		return err
	}, func(*domain.Directory) (any, error) {
		return projections.NewWebhookView{WebhookView: projections.WebhookViewOf(&made.Webhook), Secret: made.Secret}, nil
	})
}

func (s *Server) listWebhooks(w http.ResponseWriter, r *http.Request, c call) error {
	org, app := scope(r, c)
	var l projections.WebhookList
	if err := s.checkWebhooks(r, c, func(d *domain.Directory) { l = projections.WebhooksOf(d, org, app) }); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, l)
	return nil
}

func (s *Server) deleteWebhook(w http.ResponseWriter, r *http.Request, c call) error {
	org, app := scope(r, c)
	return s.runIdentity(w, r, c, http.StatusNoContent, execCmd(c.p, domain.RemoveWebhook{ID: r.PathValue("id"), Org: org, App: app}), nil)
}

// webhookDeliveries answers the newest ?limit= (default 100, at most
// 1000) attempts of a webhook's deliveries, oldest first.
func (s *Server) webhookDeliveries(w http.ResponseWriter, r *http.Request, c call) error {
	if s.deps.Deliveries == nil {
		return domain.Errorf(domain.CodeUnavailable, "webhook deliveries are not configured on this server")
	}
	limit := defaultDeliveryLimit
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxDeliveryLimit {
			return domain.Errorf(domain.CodeInvalidArgument, "limit must be 1 to %d", maxDeliveryLimit)
		}
		limit = n
	}
	if err := s.checkWebhooks(r, c, nil); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
	defer cancel()
	l, err := s.deps.Deliveries.Deliveries(ctx, r.PathValue("id"), limit)
	if err != nil {
		return err
	}
	if l == nil {
		l = []projections.DeliveryView{}
	}
	writeJSON(w, http.StatusOK, projections.DeliveryList{Deliveries: l})
	return nil
}
