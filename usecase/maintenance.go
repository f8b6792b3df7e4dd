package usecase

import (
	"context"

	"github.com/backupledger/backupledger/domain"
	"github.com/backupledger/backupledger/projections"
)

// Maintenance starts (Start) or ends an app's maintenance, for Reason.
type Maintenance struct {
	App    string
	Reason string
	Start  bool
}

// SetMaintenance puts an app into maintenance or ends it and answers the
// app's state: already_in_maintenance, not_in_maintenance,
// restore_in_progress, invalid_argument (no reason to start), not_found,
// unavailable (no restores on this server). A retry with the same
// idempotency key answers the state again.
func (a *Application) SetMaintenance(ctx context.Context, c *Call, req Maintenance) (projections.AppView, error) {
	svc, err := a.restores()
	if err != nil {
		return projections.AppView{}, err
	}
	if err := a.CheckApp(c.Principal, req.App); err != nil {
		return projections.AppView{}, err
	}
	run, want := svc.EndMaintenance, domain.TypeMaintenanceEnded
	if req.Start {
		run, want = svc.StartMaintenance, domain.TypeMaintenanceStarted
	}
	res, err := run(ctx, c.Principal, req.App, req.Reason, c.Meta)
	if err != nil {
		return projections.AppView{}, err
	}
	if err := c.checkReplay(res, want, ""); err != nil {
		return projections.AppView{}, err
	}
	return a.deps.Queries.App(req.App), nil
}

// restores returns the Restores, or unavailable.
func (a *Application) restores() (Restores, error) {
	if a.deps.Restores == nil {
		return nil, domain.Errorf(domain.CodeUnavailable, "this server does not run restores")
	}
	return a.deps.Restores, nil
}
