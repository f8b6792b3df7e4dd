package projections

import (
	"time"

	"github.com/backupledger/backupledger/domain"
)

// ScheduleView is the JSON of GET and PUT /v1/apps/{app}/schedule.
type ScheduleView struct {
	App      string `json:"app"`
	Enabled  bool   `json:"enabled"`
	Time     string `json:"time"`
	TimeZone string `json:"time_zone"`
	// Default is true when the app never set a schedule and follows the
	// server's default.
	Default bool `json:"default"`
	// NextRunAt is when the next night's backup is due (null when off).
	NextRunAt *time.Time `json:"next_run_at"`
	// LastNight is the latest night handled (YYYY-MM-DD, "" if none), with
	// its latest try, that try's backup, or why it was skipped.
	LastNight    string `json:"last_night"`
	LastTry      int    `json:"last_try,omitempty"`
	LastBackupID string `json:"last_backup_id,omitempty"`
	LastSkipped  string `json:"last_skipped,omitempty"`
}

// ScheduleViewOf is the schedule of app a, with def the server's default,
// at now.
func ScheduleViewOf(a *domain.App, def domain.Schedule, now time.Time) ScheduleView {
	st := a.Nightly()
	s := a.EffectiveSchedule(def)
	v := ScheduleView{App: a.ID(), Enabled: s.Enabled, Time: s.Time, TimeZone: s.TimeZone, Default: st.Schedule == nil,
		LastNight: st.Night, LastTry: st.Try, LastBackupID: st.BackupID, LastSkipped: st.Skipped}
	if s.Enabled {
		if next, err := s.NextRun(now); err == nil {
			next = next.UTC()
			v.NextRunAt = &next
		}
	}
	return v
}
