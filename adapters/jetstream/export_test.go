package jetstream

import "context"

// SetTimerCron publishes app's timer with any cron expression (tests fire
// it every second).
func (t *Timers) SetTimerCron(ctx context.Context, app, expr, zone string) error {
	return t.set(ctx, app, expr, zone)
}
