package domain

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
	// BeforeAction, if set, is called before each action of Run: a test
	// hook to stop a runner between two steps.
	BeforeAction func(ctx context.Context, app, restoreID string, act RestoreAction)
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
	migrations Migrations
	clock      Clock
	log        *slog.Logger
}

// NewRestores returns the restore service. identity may be nil (only the
// server administrator exists; no passwords are checked).
func NewRestores(cfg RestoreConfig, ledger *Ledger, states States, identity *Identity, sources Sources, archives ArchiveReader, migrations Migrations, clock Clock, log *slog.Logger) *Restores {
	if cfg.PreBackupTimeout <= 0 {
		cfg.PreBackupTimeout = 30 * time.Minute
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

// RestoreRequest is what a caller asks for: a backup of App restored into
// TargetApp (App itself when empty).
type RestoreRequest struct {
	App                string
	BackupID           string
	TargetApp          string
	PreRestoreBackup   bool
	AutoEndMaintenance bool
	Password           string
}

// Request checks a restore request and records it; the runner does the
// rest. The caller's visibility of App is checked by the transport; here:
// the password (CodePasswordIncorrect, CodeTooManyAttempts), the backup
// (not_found, backup_not_ready, backup_corrupt, backup_newer_than_server),
// the target (not_found when the caller does not administer it; a new
// app is created in App's organisation with the caller as its admin), and
// the rules of RequestRestore. It returns the restore.
func (s *Restores) Request(ctx context.Context, p Principal, req RestoreRequest, m Meta) (Restore, error) {
	if err := ValidateAppID(req.App); err != nil {
		return Restore{}, err
	}
	target := req.TargetApp
	if target == "" {
		target = req.App
	}
	if err := ValidateAppID(target); err != nil {
		return Restore{}, err
	}
	if s.identity != nil {
		if err := s.identity.VerifyPassword(ctx, p, req.Password, "restore"); err != nil {
			return Restore{}, err
		}
	}
	var (
		b     Backup
		found bool
	)
	s.states.ReadApp(req.App, func(a *App) { b, found = a.Backup(req.BackupID) })
	switch {
	case !found:
		return Restore{}, Errorf(CodeNotFound, "backup %s not found in app %s", req.BackupID, req.App)
	case b.Status != StatusReady:
		return Restore{}, Errorf(CodeBackupNotReady, "backup %s is %s; only a ready backup can be restored", b.ID, b.Status)
	case !b.CorruptAt.IsZero():
		return Restore{}, Errorf(CodeBackupCorrupt, "backup %s is corrupt (%s) and cannot be restored", b.ID, b.CorruptReason)
	}
	if err := s.checkKey(p, req, target, m); err != nil {
		return Restore{}, err
	}
	// The target first: nothing of an app the caller may not take is told.
	var newOrg string
	if target != req.App {
		var err error
		if newOrg, err = s.checkTarget(ctx, p, req.App, target); err != nil {
			return Restore{}, err
		}
	}
	src := s.sources.For(target)
	kind := b.Source
	if kind == "" {
		kind = src.Kind()
	}
	if kind != src.Kind() {
		return Restore{}, Errorf(CodeInvalidArgument, "backup %s is of a %s source; app %s uses a %s source", b.ID, kind, target, src.Kind())
	}
	// Everything that can be checked before the restore starts is: the
	// saga then checks the whole archive before maintenance, too.
	if _, err := s.migrations.Plan(kind, b.SchemaVersion, src.SchemaVersion()); err != nil {
		if Code(err) == CodeInvalidArgument {
			return Restore{}, Errorf(CodeArchiveVersion, "backup %s has version %d of the %s schema, which this server (version %d) cannot migrate: %s",
				b.ID, b.SchemaVersion, kind, src.SchemaVersion(), Public(err))
		}
		return Restore{}, err
	}
	if ac, ok := s.archives.(ArchiveChecker); ok {
		if err := ac.CheckArchive(ctx, b.ID, b.SizeBytes, b.SHA256); errors.Is(err, ErrArchiveCorrupt) {
			s.log.Error("stored archive does not match the ledger", "app", req.App, "backup_id", b.ID, "err", err)
			if _, merr := s.ledger.MarkCorrupt(ctx, req.App, b.ID, "archive does not match the ledger: "+corruptReason(err), IntegrityActor); merr != nil {
				s.log.Error("mark backup corrupt", "app", req.App, "backup_id", b.ID, "err", merr)
			}
			return Restore{}, Errorf(CodeBackupCorrupt, "backup %s is corrupt (%s) and cannot be restored", b.ID, corruptReason(err))
		} else if err != nil {
			return Restore{}, err
		}
	}
	newApp := newOrg != ""
	if newApp && s.identity != nil {
		if _, err := s.identity.Execute(ctx, p, RegisterApp{App: target, Org: newOrg}, Meta{}); err != nil {
			return Restore{}, err
		}
	}
	m.Actor = p.ID
	res, err := s.ledger.Execute(ctx, RequestRestore{
		App: target, SourceApp: req.App, BackupID: b.ID, BackupSHA256: b.SHA256, BackupSizeBytes: b.SizeBytes,
		BackupSchema: b.SchemaVersion, BackupSource: kind, ServerSchema: src.SchemaVersion(),
		PreRestoreBackup: req.PreRestoreBackup, AutoEndMaintenance: req.AutoEndMaintenance, NewApp: newApp,
	}, m)
	if err != nil {
		return Restore{}, err
	}
	if res.EventType != TypeRestoreRequested {
		return Restore{}, Errorf(CodeConflict, "this idempotency key was used for another command (%s)", res.EventType)
	}
	var r Restore
	s.states.ReadApp(target, func(a *App) { r, found = a.Restore(res.RestoreID) })
	if !found {
		return Restore{}, fmt.Errorf("restore %s of app %s is not in the projection", res.RestoreID, target)
	}
	return r, nil
}

// checkKey refuses a client's key that already requested a restore from
// req.App of another request (another target, backup or option), before
// anything is done: the key is scoped by the app the request was sent to,
// while the restore's own record is the target's.
func (s *Restores) checkKey(p Principal, req RestoreRequest, target string, m Meta) error {
	rk, ok := s.states.(RestoreKeys)
	if !ok || !m.ClientKey {
		return nil
	}
	rec, found := rk.RestoreByKey(req.App, strings.ToValidUTF8(p.ID, "\uFFFD"), m.CommandID)
	if !found {
		return nil
	}
	hash := RequestHash(RequestRestore{}.CommandName(), RequestRestore{App: target, SourceApp: req.App, BackupID: req.BackupID,
		PreRestoreBackup: req.PreRestoreBackup, AutoEndMaintenance: req.AutoEndMaintenance})
	return checkReuse(rec, hash)
}

// checkTarget checks the caller's rights on another target app: an app
// the caller may act on is restored into as it is (""); otherwise only a
// never-used id (not registered, no events, nothing in its configuration
// source) is, as a new app of the source app's organisation, which it
// returns (Request registers it, with the caller, a member, as its
// admin). Anything else is not found.
func (s *Restores) checkTarget(ctx context.Context, p Principal, source, target string) (string, error) {
	if s.identity == nil { // the server administrator alone
		var events int
		s.states.ReadApp(target, func(a *App) { events = a.Events() })
		if events == 0 {
			return DefaultOrg, nil
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
		return "", errAppUnavailable(target)
	}
	var org string
	s.identity.Read(func(d *Directory) {
		if a, ok := d.App(source); ok {
			org = a.Org
		}
	})
	if org == "" {
		return "", Errorf(CodeInvalidArgument, "app %s is in no organisation, so a new app %s would be in none: register %s first (PUT /v1/apps/%s)", source, target, target, target)
	}
	return org, nil
}

// StartMaintenance puts an app into maintenance by hand.
func (s *Restores) StartMaintenance(ctx context.Context, p Principal, app, reason string, m Meta) (Result, error) {
	m.Actor = p.ID
	return s.ledger.Execute(ctx, StartMaintenance{App: app, Reason: reason}, m)
}

// EndMaintenance ends an app's maintenance by hand.
func (s *Restores) EndMaintenance(ctx context.Context, p Principal, app, reason string, m Meta) (Result, error) {
	m.Actor = p.ID
	return s.ledger.Execute(ctx, EndMaintenance{App: app, Reason: reason}, m)
}

// stepMeta is the meta of a restore's command: its id is the restore id
// and the command's name, the same on every run, so that a step done
// before a crash is answered, not done again.
func stepMeta(restoreID, command string) Meta {
	return Meta{Actor: RestoreActor, CommandID: restoreID + "." + command, CorrelationID: restoreID, CausationID: restoreID}
}

// errStepRefused marks a step command the ledger refused twice in a row.
var errStepRefused = errors.New("restore step refused")

// Run drives the restore restoreID of app to its end: it asks the saga
// for the next action, does it and records it, until the saga has nothing
// more to do. heartbeat, if not nil, is called between steps and while
// waiting. It returns nil when the restore is over (completed or failed
// and recorded as such); an error means it should run again later (the
// store or a source was unreachable): every step is safe to repeat.
func (s *Restores) Run(ctx context.Context, app, restoreID string, heartbeat func()) error {
	log := s.log.With("app", app, "restore_id", restoreID)
	var lastRefused RestoreAction
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		if heartbeat != nil {
			heartbeat()
		}
		var (
			r     Restore
			found bool
			act   RestoreAction
		)
		s.states.ReadApp(app, func(a *App) {
			if r, found = a.Restore(restoreID); found {
				act = NextRestoreAction(a, &r)
			}
		})
		if !found {
			return fmt.Errorf("restore %s of app %s is not in the projection", restoreID, app)
		}
		if act.Kind == ActNone {
			return nil
		}
		if s.cfg.BeforeAction != nil {
			s.cfg.BeforeAction(ctx, app, restoreID, act)
		}
		err := s.do(ctx, log, app, &r, act)
		var de *Error
		switch {
		case err == nil:
			lastRefused = RestoreAction{}
		case errors.As(err, &de):
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
	cmd := FailRestore{App: app, RestoreID: restoreID, Step: step, Reason: reason}
	_, err := s.ledger.Execute(ctx, cmd, stepMeta(restoreID, cmd.CommandName()))
	if Code(err) == CodeRestoreInProgress {
		return nil // over already
	}
	return err
}

// do performs one action of the saga.
func (s *Restores) do(ctx context.Context, log *slog.Logger, app string, r *Restore, act RestoreAction) error {
	// Each action has a command id of its own (restore id + action), the
	// same on every run: a repeated action is answered, not done again.
	exec := func(cmd Command) error {
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
	case ActStartMaintenance:
		return exec(StartMaintenance{App: app, RestoreID: r.RestoreID})
	case ActRequestPreBackup:
		name := "Before restore " + r.RestoreID
		return exec(RequestBackup{App: app, Name: &name, Origin: OriginPreRestore, RestoreID: r.RestoreID,
			Description: fmt.Sprintf("the state of %s before backup %s of %s was restored", app, r.BackupID, r.SourceApp)})
	case ActWaitPreBackup:
		if s.clock.Now().Sub(r.RequestedAt) > s.cfg.PreBackupTimeout {
			return fail(StepPreBackup, fmt.Sprintf("the pre-restore backup %s did not end within %s", r.PreBackupID, s.cfg.PreBackupTimeout))
		}
		t := time.NewTimer(s.cfg.Poll)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			return nil
		}
	case ActRecordPreBackup:
		return exec(RecordPreBackupReady{App: app, RestoreID: r.RestoreID, BackupID: r.PreBackupID})
	case ActVerifyArchive:
		err := s.archives.ReadArchive(ctx, r.BackupID, r.BackupSizeBytes, r.BackupSHA256, func(c ArchiveContents) error {
			_, err := s.checkContents(app, c)
			return err
		})
		if ok, ferr := s.stepFailed(ctx, err, StepVerifyArchive, fail, r); ok {
			return ferr
		}
		return exec(RecordArchiveVerified{App: app, RestoreID: r.RestoreID, SHA256: r.BackupSHA256})
	case ActImport:
		var imp RecordImported
		err := s.archives.ReadArchive(ctx, r.BackupID, r.BackupSizeBytes, r.BackupSHA256, func(c ArchiveContents) error {
			var err error
			imp, err = s.importContents(ctx, app, r, c)
			return err
		})
		if ok, ferr := s.stepFailed(ctx, err, StepImport, fail, r); ok {
			return ferr
		}
		return exec(imp)
	case ActVerify:
		digest, err := s.contentDigest(ctx, app)
		if err != nil {
			return err
		}
		if digest != r.ImportedDigest {
			return fail(StepVerify, fmt.Sprintf("the content of %s has digest %s, the restored archive %s", app, digest, r.ImportedDigest))
		}
		return exec(CompleteRestore{App: app, RestoreID: r.RestoreID, Digest: digest})
	case ActEndMaintenance:
		return exec(EndMaintenance{App: app, RestoreID: r.RestoreID})
	case ActFail:
		return fail(act.Step, act.Reason)
	}
	return fmt.Errorf("unknown restore action %d", act.Kind)
}

// expects reports whether cmd's event is of type typ.
func expects(cmd Command, typ string) bool {
	switch cmd.(type) {
	case StartMaintenance:
		return typ == TypeMaintenanceStarted
	case EndMaintenance:
		return typ == TypeMaintenanceEnded
	case RequestBackup:
		return typ == TypeBackupRequested
	case RecordPreBackupReady:
		return typ == TypeRestorePreBackup
	case RecordArchiveVerified:
		return typ == TypeRestoreArchiveVerified
	case RecordImported:
		return typ == TypeRestoreImported
	case CompleteRestore:
		return typ == TypeRestoreCompleted
	case FailRestore:
		return typ == TypeRestoreFailed
	}
	return false
}

// stepFailed decides what an error of reading the archive means: a
// corrupt or refused archive fails the restore (true, and the error of
// recording it); any other error is returned to run the step again later.
func (s *Restores) stepFailed(ctx context.Context, err error, step string, fail func(step, reason string) error, r *Restore) (bool, error) {
	if err == nil {
		return false, nil
	}
	var de *Error
	switch {
	case errors.Is(err, ErrArchiveCorrupt):
		if _, merr := s.ledger.MarkCorrupt(ctx, r.SourceApp, r.BackupID, "archive does not match the ledger: "+err.Error(), IntegrityActor); merr != nil {
			s.log.Error("mark backup corrupt", "app", r.SourceApp, "backup_id", r.BackupID, "err", merr)
		}
		return true, fail(step, "the backup's archive does not match the ledger; nothing was changed: "+err.Error())
	case errors.As(err, &de):
		return true, fail(step, de.Message)
	}
	return true, err
}

// checkContents checks what an archive says of itself against the app it
// restores into: the source kind, and a schema version this server reads
// or can migrate. It returns the migrations the import runs.
func (s *Restores) checkContents(app string, c ArchiveContents) (migrationPlan, error) {
	src := s.sources.For(app)
	if c.Source != "" && c.Source != src.Kind() {
		return nil, Errorf(CodeInvalidArgument, "the archive is of a %s source; app %s uses a %s source", c.Source, app, src.Kind())
	}
	if c.SchemaVersion > src.SchemaVersion() {
		return nil, Errorf(CodeBackupNewer, "the archive has schema version %d; this server reads up to %d", c.SchemaVersion, src.SchemaVersion())
	}
	return s.migrations.Plan(src.Kind(), c.SchemaVersion, src.SchemaVersion())
}

// importContents replaces app's content with the archive's, migrated to
// the server's schema, and returns the record of the import with the
// digest the content must have now.
func (s *Restores) importContents(ctx context.Context, app string, r *Restore, c ArchiveContents) (RecordImported, error) {
	plan, err := s.checkContents(app, c)
	if err != nil {
		return RecordImported{}, err
	}
	src := s.sources.For(app)
	rep, ok := src.(Replacer)
	if !ok {
		return RecordImported{}, Errorf(CodeInvalidArgument, "the %s source of app %s cannot be restored into", src.Kind(), app)
	}
	var entries []ArchiveEntry
	n := 0
	items := func(emit func(Item) error) error {
		return c.Items(func(it Item) error {
			out, err := plan.apply(it)
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
				entries = append(entries, ArchiveEntry{Path: sourcePath(src, o), SHA256: hex.EncodeToString(h.Sum(nil))})
				n++
			}
			return nil
		})
	}
	if err := rep.Replace(ctx, app, items); err != nil {
		return RecordImported{}, err
	}
	digest := ContentDigest(entries)
	if len(plan) == 0 && digest != ContentDigest(c.Entries) {
		return RecordImported{}, fmt.Errorf("imported content digest %s differs from the manifest's %s", digest, ContentDigest(c.Entries))
	}
	return RecordImported{App: app, RestoreID: r.RestoreID, Items: n, FromSchema: c.SchemaVersion, ToSchema: src.SchemaVersion(),
		Migrations: plan.names(), Digest: digest}, nil
}

// contentDigest exports app's current content and digests it.
func (s *Restores) contentDigest(ctx context.Context, app string) (string, error) {
	var entries []ArchiveEntry
	src := s.sources.For(app)
	err := src.Export(ctx, app, func(it Item) error {
		h := sha256.New()
		if _, err := io.Copy(h, it.Body); err != nil {
			return err
		}
		entries = append(entries, ArchiveEntry{Path: sourcePath(src, it), SHA256: hex.EncodeToString(h.Sum(nil))})
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("export %s to verify: %w", app, err)
	}
	return ContentDigest(entries), nil
}

// sourcePath is the archive path of an item of src: an item without a
// component is in the source's first one, as in its archives.
func sourcePath(src Source, it Item) string {
	if it.Component == "" {
		if cs := src.Components(); len(cs) > 0 {
			it.Component = cs[0]
		}
	}
	return ItemPath(it)
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
