package usecase

import (
	"context"

	"github.com/backupledger/backupledger/domain"
	"github.com/backupledger/backupledger/projections"
)

// SetSchedule changes an app's nightly schedule. Enabled is required; a nil
// Time or TimeZone keeps the current (or default) value.
type SetSchedule struct {
	App      string
	Enabled  *bool
	Time     *string
	TimeZone *string
}

// GetSchedule answers an app's nightly schedule as it stands, with the
// server's default when the app set none: unavailable (no schedules on
// this server).
func (a *Application) GetSchedule(_ context.Context, c *Call, app string) (projections.ScheduleView, error) {
	if err := a.CheckApp(c.Principal, app); err != nil {
		return projections.ScheduleView{}, err
	}
	sch, err := a.schedules()
	if err != nil {
		return projections.ScheduleView{}, err
	}
	return sch.Schedule(app), nil
}

// SetSchedule sets an app's nightly schedule and answers it:
// invalid_argument (no enabled, a bad time or time zone), unavailable. A
// retry with the same idempotency key answers the schedule as it stands.
func (a *Application) SetSchedule(ctx context.Context, c *Call, req SetSchedule) (projections.ScheduleView, error) {
	if err := a.CheckApp(c.Principal, req.App); err != nil {
		return projections.ScheduleView{}, err
	}
	sch, err := a.schedules()
	if err != nil {
		return projections.ScheduleView{}, err
	}
	if req.Enabled == nil {
		return projections.ScheduleView{}, domain.Errorf(domain.CodeInvalidArgument, "field \"enabled\" is required")
	}
	cur := sch.Schedule(req.App)
	next := domain.Schedule{Enabled: *req.Enabled, Time: cur.Time, TimeZone: cur.TimeZone}
	if req.Time != nil {
		next.Time = *req.Time
	}
	if req.TimeZone != nil {
		next.TimeZone = *req.TimeZone
	}
	if _, err := a.Execute(ctx, c, domain.SetSchedule{App: req.App, Schedule: next}, domain.TypeScheduleSet, ""); err != nil {
		return projections.ScheduleView{}, err
	}
	return sch.Schedule(req.App), nil
}

// schedules returns the Schedules, or unavailable.
func (a *Application) schedules() (Schedules, error) {
	if a.deps.Schedules == nil {
		return nil, domain.Errorf(domain.CodeUnavailable, "nightly schedules are not configured on this server")
	}
	return a.deps.Schedules, nil
}
