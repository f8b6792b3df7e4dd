package projections

import (
	"time"

	"github.com/backupledger/backupledger/domain"
)

// RestoreView is the JSON of one restore in every API: a backup of
// SourceApp restored into App, and the steps it went through.
type RestoreView struct {
	ID        string `json:"id"`
	App       string `json:"app"`
	SourceApp string `json:"source_app"`
	BackupID  string `json:"backup_id"`
	// Status is running, completed or failed.
	Status string `json:"status"`
	// Step is the step the restore reached last: that of the last entry
	// of Steps (while running, the step it is at; once over, the last).
	Step               string `json:"step"`
	PreRestoreBackup   bool   `json:"pre_restore_backup"`
	AutoEndMaintenance bool   `json:"auto_end_maintenance"`
	// PreRestoreBackupID is the backup of the app's state before the
	// restore, to roll back with; null until it is requested.
	PreRestoreBackupID *string    `json:"pre_restore_backup_id"`
	RequestedBy        string     `json:"requested_by"`
	RequestedAt        time.Time  `json:"requested_at"`
	EndedAt            *time.Time `json:"ended_at"`
	// Digest is the verified content digest of a completed restore.
	Digest     *string `json:"digest"`
	FailedStep *string `json:"failed_step"`
	Error      *string `json:"error"`
	// Steps are the steps so far, oldest first.
	Steps []RestoreStepView `json:"steps"`
}

// RestoreStepView is one step of a restore: what happened when.
type RestoreStepView struct {
	Step    string    `json:"step"`
	At      time.Time `json:"at"`
	Outcome string    `json:"outcome"`
}

// RestoreList is the JSON of a list of restores.
type RestoreList struct {
	Restores []RestoreView `json:"restores"`
}

// MaintenanceView is the JSON of an app's maintenance: while it is on,
// its configuration cannot be changed through the APIs.
type MaintenanceView struct {
	On     bool       `json:"on"`
	Since  *time.Time `json:"since"`
	By     string     `json:"by"`
	Reason string     `json:"reason"`
	// RestoreID is the restore that started the maintenance, "" when it
	// was started by hand.
	RestoreID string `json:"restore_id"`
}

// NewRestoreView converts the domain's restore into its API form.
func NewRestoreView(r domain.Restore) RestoreView {
	v := RestoreView{
		ID: r.RestoreID, App: r.App, SourceApp: r.SourceApp, BackupID: r.BackupID, Status: string(r.Status),
		PreRestoreBackup: r.PreRestoreBackup, AutoEndMaintenance: r.AutoEndMaintenance,
		RequestedBy: r.RequestedBy, RequestedAt: r.RequestedAt.UTC(),
		PreRestoreBackupID: optString(r.PreBackupID), Digest: optString(r.Digest),
		FailedStep: optString(r.FailedStep), Error: optString(r.Error),
		Steps: make([]RestoreStepView, len(r.Steps)),
	}
	if !r.EndedAt.IsZero() {
		t := r.EndedAt.UTC()
		v.EndedAt = &t
	}
	for i, s := range r.Steps {
		v.Steps[i] = RestoreStepView{Step: s.Step, At: s.At.UTC(), Outcome: s.Outcome}
	}
	if n := len(r.Steps); n > 0 {
		v.Step = r.Steps[n-1].Step
	}
	return v
}

// NewMaintenanceView converts an app's maintenance into its API form.
func NewMaintenanceView(m domain.Maintenance) MaintenanceView {
	if !m.On {
		return MaintenanceView{}
	}
	since := m.Since.UTC()
	return MaintenanceView{On: true, Since: &since, By: m.By, Reason: m.Reason, RestoreID: m.RestoreID}
}

// Maintenance returns app's maintenance, without building the rest of its
// state (config writes ask it every time).
func (s *Store) Maintenance(app string) MaintenanceView {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if m := s.apps[app]; m != nil {
		return NewMaintenanceView(m.state.Maintenance())
	}
	return MaintenanceView{}
}

// RefuseConfigChange returns app_in_maintenance while the maintenance is
// on: the app's configuration cannot be changed through the APIs.
func (v MaintenanceView) RefuseConfigChange(app string) error {
	if !v.On {
		return nil
	}
	since := ""
	if v.Since != nil {
		since = " since " + v.Since.Format("2006-01-02T15:04:05Z")
	}
	return domain.Errorf(domain.CodeAppInMaintenance,
		"app %s is in maintenance%s (%s): its configuration cannot be changed until the maintenance ends", app, since, v.Reason)
}

// optString is nil for "", else a pointer to a copy of s.
func optString(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// Restore returns one restore of app (app is the target the backup was
// restored into), or an *domain.Error with CodeNotFound.
func (s *Store) Restore(app, id string) (RestoreView, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if m := s.apps[app]; m != nil {
		if r, ok := m.state.Restore(id); ok {
			return NewRestoreView(r), nil
		}
	}
	return RestoreView{}, domain.Errorf(domain.CodeNotFound, "restore %s not found in app %s", id, app)
}

// Restores returns the restores into app, oldest first; an app without
// events has none.
func (s *Store) Restores(app string) []RestoreView {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := []RestoreView{}
	if m := s.apps[app]; m != nil {
		for _, r := range m.state.Restores() {
			out = append(out, NewRestoreView(r))
		}
	}
	return out
}

// restoreState fills in the maintenance and the running restore of an
// app's state view.
func restoreState(v *AppView, a *domain.App) {
	v.Maintenance = NewMaintenanceView(a.Maintenance())
	v.ActiveRestore = a.ActiveRestore()
}
