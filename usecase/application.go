// Package usecase is the application layer of backupledger: one handler
// per use case (CreateBackup, RenameBackup, ...), with its request type,
// its validation and its authorization, called alike by the HTTP API
// (adapters/httpapi) and the NATS API (adapters/natsapi), and the one
// table from an error code to its status (problem.go).
//
// A transport decodes a request, authenticates it, reads its idempotency
// key and correlation id into a Call, calls the handler and encodes what it
// returns; an error becomes a Problem. Nothing here knows HTTP or NATS.
package usecase

import (
	"context"
	"errors"
	"time"

	"github.com/backupledger/backupledger/domain"
)

// Deps are the parts the use cases talk to. Commands and Queries are
// required; a use case whose part is nil answers unavailable.
type Deps struct {
	Commands Commands // *service.Ledger
	Queries  Queries  // *projections.Store
	// Config is the built-in configuration store (the kv source); nil
	// answers the config document use cases unavailable.
	Config ConfigStore
	// Identity decides who may act on which app and serves the identity
	// use cases; nil means the server administrator alone, on every app.
	Identity Identity
	// Restores records restore requests and maintenance; nil answers
	// those use cases unavailable.
	Restores Restores
	// Quoter estimates backups; nil answers Quote unavailable.
	Quoter Quoter
	// Verifier checks stored archives; nil answers VerifyBackup
	// unavailable.
	Verifier Verifier
	// Schedules reads nightly schedules; nil answers the schedule use
	// cases unavailable.
	Schedules Schedules
	// Deliveries reads webhook delivery logs; nil answers
	// WebhookDeliveries unavailable.
	Deliveries Deliveries
	// Keys lists and rotates the ledger's signing keys; nil answers
	// ListKeys and RotateKey unavailable.
	Keys LedgerKeys
	// Transfers moves archives in and out; nil answers the archive use
	// cases unavailable.
	Transfers Transfers
}

// Config configures an Application. The zero value is usable.
type Config struct {
	// Location is the time zone of the creation time in a download's file
	// name; nil is UTC.
	Location *time.Location
}

// Validate reports the missing required parts.
func (d Deps) Validate() error {
	var errs []error
	if d.Commands == nil {
		errs = append(errs, errors.New("usecase: commands are required"))
	}
	if d.Queries == nil {
		errs = append(errs, errors.New("usecase: queries are required"))
	}
	return errors.Join(errs...)
}

// Application holds the use cases. It is safe for concurrent use.
type Application struct {
	cfg  Config
	deps Deps
}

// New returns the application of deps.
func New(cfg Config, deps Deps) (*Application, error) {
	if err := deps.Validate(); err != nil {
		return nil, err
	}
	if cfg.Location == nil {
		cfg.Location = time.UTC
	}
	return &Application{cfg: cfg, deps: deps}, nil
}

// Call is one request to a use case: who asks and, for a command, its
// metadata (the command id from the idempotency key, the correlation id).
// A command's handler sets Replayed when it answered a retry from the
// first command's record.
type Call struct {
	Principal domain.Principal
	Meta      domain.Meta
	Replayed  bool
}

// Visible reports whether p may see and act on app. It is the one access
// check of the API: the server administrator on every app, a user on the
// apps it administers (Deps.Identity).
func (a *Application) Visible(p domain.Principal, app string) bool {
	if a.deps.Identity == nil {
		return p.Admin // the server administrator alone
	}
	return a.deps.Identity.Visible(p, app)
}

// CheckApp validates an app id (invalid_argument) and checks that p may
// see the app (not_found otherwise, so that callers cannot probe for
// apps). Every use case on an app calls it; a transport may call it
// earlier, before it reads a request's body.
func (a *Application) CheckApp(p domain.Principal, app string) error {
	if err := domain.ValidateAppID(app); err != nil {
		return err
	}
	if !a.Visible(p, app) {
		return domain.Errorf(domain.CodeNotFound, "app %s not found", app)
	}
	return nil
}

// Execute runs one ledger command of c: the use cases of this package
// call it, and so do the transports for the commands whose use case is not
// here yet. A retried command (same key) must be the same kind of command
// on the same backup (event type want, on backupID when set); a key reused
// for another command is a conflict. It sets c.Replayed on a retry.
func (a *Application) Execute(ctx context.Context, c *Call, cmd domain.Command, want, backupID string) (domain.Result, error) {
	res, err := a.deps.Commands.Execute(ctx, cmd, c.Meta)
	if err != nil {
		return res, err
	}
	return res, c.checkReplay(res, want, backupID)
}

// checkReplay checks the result of a command of c: a duplicate must be the
// command asked for (event type want, on backupID when set), and sets
// c.Replayed; a key reused for another command is a conflict.
func (c *Call) checkReplay(res domain.Result, want, backupID string) error {
	if !res.Duplicate {
		return nil
	}
	if res.EventType == want && (backupID == "" || res.BackupID == backupID) {
		c.Replayed = true
		return nil
	}
	what := res.EventType
	if res.BackupID != "" {
		what += " of backup " + res.BackupID
	}
	return domain.Errorf(domain.CodeConflict, "idempotency key %s was already used for another command (%s)", c.Meta.CommandID, what)
}

// history returns the History of the queries, or unavailable.
func (a *Application) history() (History, error) {
	h, ok := a.deps.Queries.(History)
	if !ok {
		return nil, domain.Errorf(domain.CodeUnavailable, "time travel (as_of) is not available on this server")
	}
	return h, nil
}

// The checks a transport makes before it reads a request's body, so that
// a server without a part answers unavailable at once; the use cases make
// them again.

// CheckIdentity answers unavailable on a server without users.
func (a *Application) CheckIdentity() error {
	_, err := a.identity()
	return err
}

// CheckRestores answers unavailable on a server that runs no restores.
func (a *Application) CheckRestores() error {
	_, err := a.restores()
	return err
}

// CheckVerifier answers unavailable on a server without archive checks.
func (a *Application) CheckVerifier() error {
	if a.deps.Verifier == nil {
		return errNoVerifier
	}
	return nil
}

// RefuseConfigChange answers app_in_maintenance while app is in
// maintenance: its configuration documents are not to change then.
func (a *Application) RefuseConfigChange(app string) error {
	return a.refuseInMaintenance(app)
}
