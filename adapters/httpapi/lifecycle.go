package httpapi

import (
	"context"
	"net/http"
	"strconv"

	"github.com/backupledger/backupledger/usecase"

	"github.com/backupledger/backupledger/domain"
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

// scope returns the organisation or app of a webhook route.
func scope(r *http.Request, c call) usecase.WebhookScope {
	if c.app != "" {
		return usecase.WebhookScope{App: c.app}
	}
	return usecase.WebhookScope{Org: r.PathValue("org")}
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
	return s.identityCommand(w, r, c, http.StatusCreated, func(ctx context.Context, uc *usecase.Call) (any, error) {
		return s.app.CreateWebhook(ctx, uc, usecase.CreateWebhook{WebhookScope: scope(r, c), URL: req.URL, Events: req.Events, Secret: req.Secret})
	})
}

func (s *Server) listWebhooks(w http.ResponseWriter, r *http.Request, c call) error {
	l, err := s.app.ListWebhooks(r.Context(), c.query(), scope(r, c))
	return respond(w, http.StatusOK, l, err)
}

func (s *Server) deleteWebhook(w http.ResponseWriter, r *http.Request, c call) error {
	return s.identityCommand(w, r, c, http.StatusNoContent, func(ctx context.Context, uc *usecase.Call) (any, error) {
		return nil, s.app.DeleteWebhook(ctx, uc, usecase.WebhookRef{WebhookScope: scope(r, c), ID: r.PathValue("id")})
	})
}

// webhookDeliveries answers the newest ?limit= (default 100, at most
// 1000) attempts of a webhook's deliveries, oldest first.
func (s *Server) webhookDeliveries(w http.ResponseWriter, r *http.Request, c call) error {
	var limit *int
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return domain.Errorf(domain.CodeInvalidArgument, "limit must be 1 to %d", usecase.MaxDeliveryLimit)
		}
		limit = &n
	}
	ctx, cancel := s.timeout(r)
	defer cancel()
	l, err := s.app.WebhookDeliveries(ctx, c.query(), usecase.WebhookDeliveries{
		WebhookRef: usecase.WebhookRef{WebhookScope: scope(r, c), ID: r.PathValue("id")}, Limit: limit})
	return respond(w, http.StatusOK, l, err)
}
