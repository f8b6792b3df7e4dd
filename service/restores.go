package service

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/backupledger/backupledger/domain"
)

// RestoreActor is the actor of the events the restore runner records.
const RestoreActor = "system:restore"

// RestoreConfig are the settings of restores.
type RestoreConfig struct {
	// PreBackupTimeout bounds the wait for the pre-restore backup; past
	// it the restore fails. Default 30 minutes.
	PreBackupTimeout time.Duration
	// Poll is how often the runner looks at a pre-restore backup it waits
	// for; default 200ms.
	Poll time.Duration
	// ProjectionWait bounds how long Run waits for this process's
	// projection to apply the restore's request; past it Run returns an
	// error, and the restore runs again later. Default 30 seconds.
	ProjectionWait time.Duration
	// BeforeAction, if set, is called before each action of Run: a test
	// hook to stop a runner between two steps.
	BeforeAction func(ctx context.Context, app, restoreID string, act domain.RestoreAction)
}

// Restores is the application service of restores: it checks and records
// restore requests and maintenance, and runs the saga of a restore
// (Run), step by step, each step a command with the id restore id + step.
type Restores struct {
	cfg        RestoreConfig
	ledger     *Ledger
	states     States
	identity   *Identity
	sources    Sources
	archives   ArchiveReader
	migrations domain.Migrations
	clock      domain.Clock
	log        *slog.Logger
}

// NewRestores returns the restore service. identity may be nil (only the
// server administrator exists; no passwords are checked).
func NewRestores(cfg RestoreConfig, ledger *Ledger, states States, identity *Identity, sources Sources, archives ArchiveReader, migrations domain.Migrations, clock domain.Clock, log *slog.Logger) *Restores {
	if cfg.PreBackupTimeout <= 0 {
		cfg.PreBackupTimeout = 30 * time.Minute
	}
	if cfg.ProjectionWait <= 0 {
		cfg.ProjectionWait = 30 * time.Second
	}
	if cfg.Poll <= 0 {
		cfg.Poll = 200 * time.Millisecond
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Restores{cfg: cfg, ledger: ledger, states: states, identity: identity, sources: sources, archives: archives,
		migrations: migrations, clock: clock, log: log}
}

// Request checks a restore request and records it; the runner does the
// rest. The caller's visibility of App is checked by the transport; here:
// the password (CodePasswordIncorrect, CodeTooManyAttempts), the backup
// (not_found, backup_not_ready, backup_corrupt, backup_newer_than_server),
// the target (not_found when the caller does not administer it; a new
// app is created in App's organisation with the caller as its admin), and
// the rules of RequestRestore. It returns the restore.
func (s *Restores) Request(ctx context.Context, p domain.Principal, req domain.RestoreRequest, m domain.Meta) (domain.Restore, error) {
	if err := domain.ValidateAppID(req.App); err != nil {
		return domain.Restore{}, err
	}
	target := req.TargetApp
	if target == "" {
		target = req.App
	}
	if err := domain.ValidateAppID(target); err != nil {
		return domain.Restore{}, err
	}
	if s.identity != nil {
		if err := s.identity.VerifyPassword(ctx, p, req.Password, "restore"); err != nil {
			return domain.Restore{}, err
		}
	}
	var (
		b     domain.Backup
		found bool
	)
	s.states.ReadApp(req.App, func(a *domain.App) { b, found = a.Backup(req.BackupID) })
	switch {
	case !found:
		return domain.Restore{}, domain.Errorf(domain.CodeNotFound, "backup %s not found in app %s", req.BackupID, req.App)
	case b.Status != domain.StatusReady:
		return domain.Restore{}, domain.Errorf(domain.CodeBackupNotReady, "backup %s is %s; only a ready backup can be restored", b.ID, b.Status)
	case !b.CorruptAt.IsZero():
		return domain.Restore{}, domain.Errorf(domain.CodeBackupCorrupt, "backup %s is corrupt (%s) and cannot be restored", b.ID, b.CorruptReason)
	}
	if err := s.checkKey(p, req, target, m); err != nil {
		return domain.Restore{}, err
	}
	// The target first: nothing of an app the caller may not take is told.
	var newOrg string
	if target != req.App {
		var err error
		if newOrg, err = s.checkTarget(ctx, p, req.App, target); err != nil {
			return domain.Restore{}, err
		}
	}
	src := s.sources.For(target)
	kind := b.Source
	if kind == "" {
		kind = src.Kind()
	}
	if kind != src.Kind() {
		return domain.Restore{}, domain.Errorf(domain.CodeInvalidArgument, "backup %s is of a %s source; app %s uses a %s source", b.ID, kind, target, src.Kind())
	}
	// Everything that can be checked before the restore starts is: the
	// saga then checks the whole archive before maintenance, too.
	if _, err := s.migrations.Plan(kind, b.SchemaVersion, src.SchemaVersion()); err != nil {
		if domain.Code(err) == domain.CodeInvalidArgument {
			return domain.Restore{}, domain.Errorf(domain.CodeArchiveVersion, "backup %s has version %d of the %s schema, which this server (version %d) cannot migrate: %s",
				b.ID, b.SchemaVersion, kind, src.SchemaVersion(), domain.Public(err))
		}
		return domain.Restore{}, err
	}
	if ac, ok := s.archives.(ArchiveChecker); ok {
		if err := ac.CheckArchive(ctx, b.ID, b.SizeBytes, b.SHA256); errors.Is(err, domain.ErrArchiveCorrupt) {
			s.log.Error("stored archive does not match the ledger", "app", req.App, "backup_id", b.ID, "err", err)
			if _, merr := s.ledger.MarkCorrupt(ctx, req.App, b.ID, "archive does not match the ledger: "+corruptReason(err), domain.IntegrityActor); merr != nil {
				s.log.Error("mark backup corrupt", "app", req.App, "backup_id", b.ID, "err", merr)
			}
			return domain.Restore{}, domain.Errorf(domain.CodeBackupCorrupt, "backup %s is corrupt (%s) and cannot be restored", b.ID, corruptReason(err))
		} else if err != nil {
			return domain.Restore{}, err
		}
	}
	newApp := newOrg != ""
	if newApp && s.identity != nil {
		if _, err := s.identity.Execute(ctx, p, domain.RegisterApp{App: target, Org: newOrg}, domain.Meta{}); err != nil {
			return domain.Restore{}, err
		}
	}
	m.Actor = p.ID
	res, err := s.ledger.Execute(ctx, domain.RequestRestore{
		App: target, SourceApp: req.App, BackupID: b.ID, BackupSHA256: b.SHA256, BackupSizeBytes: b.SizeBytes,
		BackupSchema: b.SchemaVersion, BackupSource: kind, ServerSchema: src.SchemaVersion(),
		PreRestoreBackup: req.PreRestoreBackup, AutoEndMaintenance: req.AutoEndMaintenance, NewApp: newApp,
	}, m)
	if err != nil {
		return domain.Restore{}, err
	}
	if res.EventType != domain.TypeRestoreRequested {
		return domain.Restore{}, domain.Errorf(domain.CodeConflict, "this idempotency key was used for another command (%s)", res.EventType)
	}
	var r domain.Restore
	s.states.ReadApp(target, func(a *domain.App) { r, found = a.Restore(res.RestoreID) })
	if !found {
		return domain.Restore{}, fmt.Errorf("restore %s of app %s is not in the projection", res.RestoreID, target)
	}
	return r, nil
}

// checkKey refuses a client's key that already requested a restore from
// req.App of another request (another target, backup or option), before
// anything is done: the key is scoped by the app the request was sent to,
// while the restore's own record is the target's.
func (s *Restores) checkKey(p domain.Principal, req domain.RestoreRequest, target string, m domain.Meta) error {
	rk, ok := s.states.(domain.RestoreKeys)
	if !ok || !m.ClientKey {
		return nil
	}
	rec, found := rk.RestoreByKey(req.App, strings.ToValidUTF8(p.ID, "\uFFFD"), m.CommandID)
	if !found {
		return nil
	}
	hash := domain.RequestHash(domain.RequestRestore{}.CommandName(), domain.RequestRestore{App: target, SourceApp: req.App, BackupID: req.BackupID,
		PreRestoreBackup: req.PreRestoreBackup, AutoEndMaintenance: req.AutoEndMaintenance})
	return domain.CheckReuse(rec, hash)
}

// checkTarget checks the caller's rights on another target app: an app
// the caller may act on is restored into as it is (""); otherwise only a
// never-used id (not registered, no events, nothing in its configuration
// source) is, as a new app of the source app's organisation, which it
// returns (Request registers it, with the caller, a member, as its
// admin). Anything else is not found.
func (s *Restores) checkTarget(ctx context.Context, p domain.Principal, source, target string) (string, error) {
	if s.identity == nil { // the server administrator alone
		var events int
		s.states.ReadApp(target, func(a *domain.App) { events = a.Events() })
		if events == 0 {
			return domain.DefaultOrg, nil
		}
		return "", nil
	}
	if s.identity.Visible(p, target) {
		return "", nil
	}
	free, err := s.identity.unused(ctx, target)
	if err != nil {
		return "", err
	}
	if !free {
		return "", domain.ErrAppUnavailable(target)
	}
	var org string
	s.identity.Read(func(d *domain.Directory) {
		if a, ok := d.App(source); ok {
			org = a.Org
		}
	})
	if org == "" {
		return "", domain.Errorf(domain.CodeInvalidArgument, "app %s is in no organisation, so a new app %s would be in none: register %s first (PUT /v1/apps/%s)", source, target, target, target)
	}
	return org, nil
}

// StartMaintenance puts an app into maintenance by hand.
func (s *Restores) StartMaintenance(ctx context.Context, p domain.Principal, app, reason string, m domain.Meta) (domain.Result, error) {
	m.Actor = p.ID
	return s.ledger.Execute(ctx, domain.StartMaintenance{App: app, Reason: reason}, m)
}

// EndMaintenance ends an app's maintenance by hand.
func (s *Restores) EndMaintenance(ctx context.Context, p domain.Principal, app, reason string, m domain.Meta) (domain.Result, error) {
	m.Actor = p.ID
	return s.ledger.Execute(ctx, domain.EndMaintenance{App: app, Reason: reason}, m)
}

// stepMeta is the meta of a restore's command: its id is the restore id
// and the command's name, the same on every run, so that a step done
// before a crash is answered, not done again.
func stepMeta(restoreID, command string) domain.Meta {
	return domain.Meta{Actor: RestoreActor, CommandID: restoreID + "." + command, CorrelationID: restoreID, CausationID: restoreID}
}

// errStepRefused marks a step command the ledger refused twice in a row.
var errStepRefused = errors.New("restore step refused")

// Run drives the restore restoreID of app to its end: it waits until this
// process's projection has applied the restore's request (stream sequence
// seq; 0 does not wait), asks the saga for the next action, does it and
// records it, until the saga has nothing more to do. heartbeat, if not
// nil, is called between steps and while waiting. It returns nil when the
// restore is over (completed or failed and recorded as such); an error
// means it should run again later (the store or a source was unreachable,
// the projection is behind): every step is safe to repeat.
func (s *Restores) Run(ctx context.Context, app, restoreID string, seq uint64, heartbeat func()) error {
	log := s.log.With("app", app, "restore_id", restoreID)
	if seq > 0 {
		wctx, cancel := context.WithTimeout(ctx, s.cfg.ProjectionWait)
		err := s.states.WaitApplied(wctx, seq)
		cancel()
		if err != nil {
			return fmt.Errorf("restore %s of app %s (seq %d): this server's projection is behind: %w", restoreID, app, seq, err)
		}
	}
	var lastRefused domain.RestoreAction
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		if heartbeat != nil {
			heartbeat()
		}
		var (
			r     domain.Restore
			found bool
			act   domain.RestoreAction
		)
		s.states.ReadApp(app, func(a *domain.App) {
			if r, found = a.Restore(restoreID); found {
				act = domain.NextRestoreAction(a, &r)
			}
		})
		if !found {
			return fmt.Errorf("restore %s of app %s is not in the projection", restoreID, app)
		}
		if act.Kind == domain.ActNone {
			return nil
		}
		if s.cfg.BeforeAction != nil {
			s.cfg.BeforeAction(ctx, app, restoreID, act)
		}
		err := s.do(ctx, log, app, &r, act)
		switch {
		case err == nil:
			lastRefused = domain.RestoreAction{}
		case domain.Refused(err):
			// The state moved on under the step (another runner, a step
			// done before a crash): look again, but not forever.
			if lastRefused == act {
				return fmt.Errorf("%w: %s: %v", errStepRefused, act.Step, err)
			}
			lastRefused = act
			log.Info("restore step refused; looking again", "step", act.Step, "err", err)
		default:
			return fmt.Errorf("restore %s step %s: %w", restoreID, act.Step, err)
		}
	}
}

// Fail records that the restore failed in step (e.g. when its runner gave
// up after its last delivery).
func (s *Restores) Fail(ctx context.Context, app, restoreID, step, reason string) error {
	cmd := domain.FailRestore{App: app, RestoreID: restoreID, Step: step, Reason: reason}
	_, err := s.ledger.Execute(ctx, cmd, stepMeta(restoreID, cmd.CommandName()))
	if domain.Code(err) == domain.CodeRestoreInProgress {
		return nil // over already
	}
	return err
}

// do performs one action of the saga.
func (s *Restores) do(ctx context.Context, log *slog.Logger, app string, r *domain.Restore, act domain.RestoreAction) error {
	// Each action has a command id of its own (restore id + action), the
	// same on every run: a repeated action is answered, not done again.
	exec := func(cmd domain.Command) error {
		res, err := s.ledger.Execute(ctx, cmd, stepMeta(r.RestoreID, cmd.CommandName()))
		if err == nil && res.Duplicate && res.EventType != "" && !expects(cmd, res.EventType) {
			return fmt.Errorf("command id of %s already used for a %s", cmd.CommandName(), res.EventType)
		}
		return err
	}
	fail := func(step, reason string) error {
		log.Warn("restore failed", "step", step, "reason", reason)
		return s.Fail(ctx, app, r.RestoreID, step, reason)
	}
	switch act.Kind {
	case domain.ActStartMaintenance:
		return exec(domain.StartMaintenance{App: app, RestoreID: r.RestoreID})
	case domain.ActRequestPreBackup:
		name := "Before restore " + r.RestoreID
		return exec(domain.RequestBackup{App: app, Name: &name, Origin: domain.OriginPreRestore, RestoreID: r.RestoreID,
			Description: fmt.Sprintf("the state of %s before backup %s of %s was restored", app, r.BackupID, r.SourceApp)})
	case domain.ActWaitPreBackup:
		if s.clock.Now().Sub(r.RequestedAt) > s.cfg.PreBackupTimeout {
			return fail(domain.StepPreBackup, fmt.Sprintf("the pre-restore backup %s did not end within %s", r.PreBackupID, s.cfg.PreBackupTimeout))
		}
		t := time.NewTimer(s.cfg.Poll)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			return nil
		}
	case domain.ActRecordPreBackup:
		return exec(domain.RecordPreBackupReady{App: app, RestoreID: r.RestoreID, BackupID: r.PreBackupID})
	case domain.ActVerifyArchive:
		err := s.archives.ReadArchive(ctx, r.BackupID, r.BackupSizeBytes, r.BackupSHA256, func(c domain.ArchiveContents) error {
			_, err := s.checkContents(app, c)
			return err
		})
		if ok, ferr := s.stepFailed(ctx, err, domain.StepVerifyArchive, fail, r); ok {
			return ferr
		}
		return exec(domain.RecordArchiveVerified{App: app, RestoreID: r.RestoreID, SHA256: r.BackupSHA256})
	case domain.ActImport:
		var imp domain.RecordImported
		err := s.archives.ReadArchive(ctx, r.BackupID, r.BackupSizeBytes, r.BackupSHA256, func(c domain.ArchiveContents) error {
			var err error
			imp, err = s.importContents(ctx, app, r, c)
			return err
		})
		if ok, ferr := s.stepFailed(ctx, err, domain.StepImport, fail, r); ok {
			return ferr
		}
		return exec(imp)
	case domain.ActVerify:
		digest, err := s.contentDigest(ctx, app)
		if err != nil {
			return err
		}
		if digest != r.ImportedDigest {
			return fail(domain.StepVerify, fmt.Sprintf("the content of %s has digest %s, the restored archive %s", app, digest, r.ImportedDigest))
		}
		return exec(domain.CompleteRestore{App: app, RestoreID: r.RestoreID, Digest: digest})
	case domain.ActEndMaintenance:
		return exec(domain.EndMaintenance{App: app, RestoreID: r.RestoreID})
	case domain.ActFail:
		return fail(act.Step, act.Reason)
	}
	return fmt.Errorf("unknown restore action %d", act.Kind)
}

// expects reports whether cmd's event is of type typ.
func expects(cmd domain.Command, typ string) bool {
	switch cmd.(type) {
	case domain.StartMaintenance:
		return typ == domain.TypeMaintenanceStarted
	case domain.EndMaintenance:
		return typ == domain.TypeMaintenanceEnded
	case domain.RequestBackup:
		return typ == domain.TypeBackupRequested
	case domain.RecordPreBackupReady:
		return typ == domain.TypeRestorePreBackup
	case domain.RecordArchiveVerified:
		return typ == domain.TypeRestoreArchiveVerified
	case domain.RecordImported:
		return typ == domain.TypeRestoreImported
	case domain.CompleteRestore:
		return typ == domain.TypeRestoreCompleted
	case domain.FailRestore:
		return typ == domain.TypeRestoreFailed
	}
	return false
}

// stepFailed decides what an error of reading the archive means: a
// corrupt or refused archive fails the restore (true, and the error of
// recording it); any other error is returned to run the step again later.
func (s *Restores) stepFailed(ctx context.Context, err error, step string, fail func(step, reason string) error, r *domain.Restore) (bool, error) {
	if err == nil {
		return false, nil
	}
	var de *domain.Error
	switch {
	case errors.Is(err, domain.ErrArchiveCorrupt):
		if _, merr := s.ledger.MarkCorrupt(ctx, r.SourceApp, r.BackupID, "archive does not match the ledger: "+err.Error(), domain.IntegrityActor); merr != nil {
			s.log.Error("mark backup corrupt", "app", r.SourceApp, "backup_id", r.BackupID, "err", merr)
		}
		return true, fail(step, "the backup's archive does not match the ledger; nothing was changed: "+err.Error())
	case domain.Refused(err) && errors.As(err, &de):
		return true, fail(step, de.Message)
	}
	return true, err // e.g. the store unavailable: run the step again later
}

// checkContents checks what an archive says of itself against the app it
// restores into: the source kind, and a schema version this server reads
// or can migrate. It returns the migrations the import runs.
func (s *Restores) checkContents(app string, c domain.ArchiveContents) (domain.MigrationPlan, error) {
	src := s.sources.For(app)
	if c.Source != "" && c.Source != src.Kind() {
		return nil, domain.Errorf(domain.CodeInvalidArgument, "the archive is of a %s source; app %s uses a %s source", c.Source, app, src.Kind())
	}
	if c.SchemaVersion > src.SchemaVersion() {
		return nil, domain.Errorf(domain.CodeBackupNewer, "the archive has schema version %d; this server reads up to %d", c.SchemaVersion, src.SchemaVersion())
	}
	return s.migrations.Plan(src.Kind(), c.SchemaVersion, src.SchemaVersion())
}

// importContents replaces app's content with the archive's, migrated to
// the server's schema, and returns the record of the import with the
// digest the content must have now.
func (s *Restores) importContents(ctx context.Context, app string, r *domain.Restore, c domain.ArchiveContents) (domain.RecordImported, error) {
	plan, err := s.checkContents(app, c)
	if err != nil {
		return domain.RecordImported{}, err
	}
	src := s.sources.For(app)
	rep, ok := src.(Replacer)
	if !ok {
		return domain.RecordImported{}, domain.Errorf(domain.CodeInvalidArgument, "the %s source of app %s cannot be restored into", src.Kind(), app)
	}
	var entries []domain.ArchiveEntry
	n := 0
	items := func(emit func(domain.Item) error) error {
		return c.Items(func(it domain.Item) error {
			out, err := plan.Apply(it)
			if err != nil {
				return err
			}
			for _, o := range out {
				h := sha256.New()
				hr := &hashingReader{r: o.Body, h: h}
				o.Body = hr
				if err := emit(o); err != nil {
					return err
				}
				if !hr.eof {
					// emit must read the body to its end; make sure.
					if _, err := io.Copy(io.Discard, hr); err != nil {
						return err
					}
				}
				entries = append(entries, domain.ArchiveEntry{Path: sourcePath(src, o), SHA256: hex.EncodeToString(h.Sum(nil))})
				n++
			}
			return nil
		})
	}
	if err := rep.Replace(ctx, app, items); err != nil {
		return domain.RecordImported{}, err
	}
	digest := domain.ContentDigest(entries)
	if len(plan) == 0 && digest != domain.ContentDigest(c.Entries) {
		return domain.RecordImported{}, fmt.Errorf("imported content digest %s differs from the manifest's %s", digest, domain.ContentDigest(c.Entries))
	}
	return domain.RecordImported{App: app, RestoreID: r.RestoreID, Items: n, FromSchema: c.SchemaVersion, ToSchema: src.SchemaVersion(),
		Migrations: plan.Names(), Digest: digest}, nil
}

// contentDigest exports app's current content and digests it.
func (s *Restores) contentDigest(ctx context.Context, app string) (string, error) {
	var entries []domain.ArchiveEntry
	src := s.sources.For(app)
	err := src.Export(ctx, app, func(it domain.Item) error {
		h := sha256.New()
		if _, err := io.Copy(h, it.Body); err != nil {
			return err
		}
		entries = append(entries, domain.ArchiveEntry{Path: sourcePath(src, it), SHA256: hex.EncodeToString(h.Sum(nil))})
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("export %s to verify: %w", app, err)
	}
	return domain.ContentDigest(entries), nil
}

// sourcePath is the archive path of an item of src: an item without a
// component is in the source's first one, as in its archives.
func sourcePath(src Source, it domain.Item) string {
	if it.Component == "" {
		if cs := src.Components(); len(cs) > 0 {
			it.Component = cs[0]
		}
	}
	return domain.ItemPath(it)
}

// hashingReader hashes what is read through it.
type hashingReader struct {
	r   io.Reader
	h   hash.Hash
	eof bool
}

func (r *hashingReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	r.h.Write(p[:n])
	if err == io.EOF {
		r.eof = true
	}
	return n, err
}
