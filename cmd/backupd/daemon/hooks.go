package daemon

import (
	"context"
	"crypto/tls"
	"net/http"

	"github.com/backupledger/backupledger/domain"
	"github.com/backupledger/backupledger/service"
)

// TestHooks are the settings only tests set: they reach into the daemon's
// parts, which production leaves at their defaults.
type TestHooks struct {
	// SourceWrapper, when set, wraps the configuration source the workers
	// export from. Tests use it to stop a worker mid-backup.
	SourceWrapper func(service.Source) service.Source
	// RestoreSourceWrapper, when set, wraps the sources that restores
	// import into. Tests use it to stop a restore mid-import.
	RestoreSourceWrapper func(service.Source) service.Source
	// JobWrapper, when set, wraps the run of each delivery of a backup
	// job, which holds one of the process's worker slots from its start
	// to its end. Tests use it to time how long a job holds its slot.
	JobWrapper func(run func(context.Context, domain.Job) error) func(context.Context, domain.Job) error
	// Clock, when set, is the service's clock (tests move it); nil is the
	// wall clock.
	Clock domain.Clock
	// RestoreHook, when set, is called before each step of a restore this
	// process runs (service.RestoreConfig.BeforeAction).
	RestoreHook func(ctx context.Context, app, restoreID string, act domain.RestoreAction)
	// SMTPTLS, when set, is the TLS configuration of STARTTLS with the
	// SMTP relay (tests trust their own certificate).
	SMTPTLS *tls.Config
	// WebhookClient, when set, makes the webhook requests.
	WebhookClient *http.Client
}

// clock returns the hooked clock, or the wall clock.
func (h TestHooks) clock() domain.Clock {
	if h.Clock != nil {
		return h.Clock
	}
	return realClock{}
}
