package domain

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Nightly backup event types. Registered explicitly; never renamed.
const (
	// TypeScheduleSet records an app's nightly backup schedule.
	TypeScheduleSet = "schedule.set"
	// TypeNightlySkipped records a night whose backup was not made, and why.
	TypeNightlySkipped = "nightly.skipped"
)

// NightlyActor is the actor, and so the created_by, of nightly backups.
const NightlyActor = "Nightly"

// NightlyTries is how often a night's backup is tried: once, and again
// twice after a failure.
const NightlyTries = 3

// nightLayout is the form of a night's key: the local date of its slot.
const nightLayout = "2006-01-02"

// Schedule is when an app's nightly backup runs: every day at Time (HH:MM)
// in TimeZone (an IANA name).
type Schedule struct {
	Enabled  bool   `json:"enabled"`
	Time     string `json:"time"`
	TimeZone string `json:"time_zone"`
}

// DefaultSchedule is the schedule of an app that never set one: off, at
// 02:00 UTC.
func DefaultSchedule() Schedule { return Schedule{Time: "02:00", TimeZone: "UTC"} }

// Validate reports an invalid time or time zone as invalid_argument.
func (s Schedule) Validate() error {
	if _, _, err := s.clock(); err != nil {
		return err
	}
	if _, err := s.location(); err != nil {
		return err
	}
	return nil
}

// clock returns the hour and minute of Time.
func (s Schedule) clock() (int, int, error) {
	h, m, ok := strings.Cut(s.Time, ":")
	hh, err1 := strconv.Atoi(h)
	mm, err2 := strconv.Atoi(m)
	if !ok || len(h) != 2 || len(m) != 2 || err1 != nil || err2 != nil || hh < 0 || hh > 23 || mm < 0 || mm > 59 {
		return 0, 0, Errorf(CodeInvalidArgument, "time %q must be HH:MM, 00:00 to 23:59", s.Time)
	}
	return hh, mm, nil
}

// location loads TimeZone.
func (s Schedule) location() (*time.Location, error) {
	if s.TimeZone == "" || len(s.TimeZone) > 64 || strings.HasPrefix(s.TimeZone, "/") || strings.Contains(s.TimeZone, "..") {
		return nil, Errorf(CodeInvalidArgument, "time zone %q must be an IANA name such as Europe/Berlin", s.TimeZone)
	}
	loc, err := time.LoadLocation(s.TimeZone)
	if err != nil {
		return nil, Errorf(CodeInvalidArgument, "time zone %q is unknown: use an IANA name such as Europe/Berlin", s.TimeZone)
	}
	return loc, nil
}

// parsed returns the schedule's hour, minute and time zone, read once.
func (s Schedule) parsed() (hh, mm int, loc *time.Location, err error) {
	if hh, mm, err = s.clock(); err != nil {
		return 0, 0, nil, err
	}
	loc, err = s.location()
	return hh, mm, loc, err
}

// slotOf is the slot of the night whose local date is day's.
func slotOf(day time.Time, hh, mm int, loc *time.Location) time.Time {
	return time.Date(day.Year(), day.Month(), day.Day(), hh, mm, 0, 0, loc)
}

// Slot returns when the backup of night (YYYY-MM-DD) is due.
func (s Schedule) Slot(night string) (time.Time, error) {
	hh, mm, loc, err := s.parsed()
	if err != nil {
		return time.Time{}, err
	}
	d, err := time.ParseInLocation(nightLayout, night, loc)
	if err != nil {
		return time.Time{}, Errorf(CodeInvalidArgument, "night %q must be a date YYYY-MM-DD", night)
	}
	return slotOf(d, hh, mm, loc), nil
}

// LastNight returns the latest night whose slot is at or before now, and
// that slot.
func (s Schedule) LastNight(now time.Time) (string, time.Time, error) {
	hh, mm, loc, err := s.parsed()
	if err != nil {
		return "", time.Time{}, err
	}
	night, slot := lastSlot(now, hh, mm, loc)
	return night.Format(nightLayout), slot, nil
}

// lastSlot returns the local day of the latest slot at or before now, and
// the slot.
func lastSlot(now time.Time, hh, mm int, loc *time.Location) (time.Time, time.Time) {
	day := now.In(loc)
	if slot := slotOf(day, hh, mm, loc); !slot.After(now) {
		return day, slot
	}
	// Yesterday's slot is at most a day and a DST shift back: before now.
	day = day.AddDate(0, 0, -1)
	return day, slotOf(day, hh, mm, loc)
}

// NextRun returns the first slot after now.
func (s Schedule) NextRun(now time.Time) (time.Time, error) {
	hh, mm, loc, err := s.parsed()
	if err != nil {
		return time.Time{}, err
	}
	day, _ := lastSlot(now, hh, mm, loc)
	return slotOf(day.AddDate(0, 0, 1), hh, mm, loc), nil
}

// ScheduleSet records an app's schedule.
type ScheduleSet struct {
	Enabled  bool   `json:"enabled"`
	Time     string `json:"time"`
	TimeZone string `json:"time_zone"`
}

// NightlySkipped records that a night's backup was not made: Code is the
// rule that refused it (e.g. backup_quota_exceeded), Reason its words.
type NightlySkipped struct {
	Night  string `json:"night"`
	Try    int    `json:"try"`
	Code   string `json:"code"`
	Reason string `json:"reason"`
}

// EventType implements Event.
func (*ScheduleSet) EventType() string { return TypeScheduleSet }

// EventType implements Event.
func (*NightlySkipped) EventType() string { return TypeNightlySkipped }

// NightState is what an app knows of its nightly backups.
type NightState struct {
	// Schedule is the app's own schedule; nil means the default.
	Schedule *Schedule
	// ScheduledAt is when the schedule was last set (zero: never).
	ScheduledAt time.Time
	// Night is the latest night handled, Try its latest try, BackupID the
	// backup of that try ("" when it was skipped).
	Night    string
	Try      int
	BackupID string
	// Skipped is the reason of the latest try when it was skipped.
	Skipped string
}

// Nightly returns the app's nightly state.
func (a *App) Nightly() NightState {
	n := a.night
	if n.Schedule != nil {
		s := *n.Schedule
		n.Schedule = &s
	}
	return n
}

// EffectiveSchedule returns the app's schedule, or def when it never set
// one.
func (a *App) EffectiveSchedule(def Schedule) Schedule {
	if a.night.Schedule != nil {
		return *a.night.Schedule
	}
	return def
}

// SetSchedule sets an app's nightly schedule.
type SetSchedule struct {
	App      string
	Schedule Schedule
}

// CommandName implements Command.
func (SetSchedule) CommandName() string { return "schedule.set" }

// AppID implements Command.
func (c SetSchedule) AppID() string { return c.App }

func (c SetSchedule) decide(_ *App, _ *decision) (Event, error) {
	if err := c.Schedule.Validate(); err != nil {
		return nil, err
	}
	s := c.Schedule
	return &ScheduleSet{Enabled: s.Enabled, Time: s.Time, TimeZone: s.TimeZone}, nil
}

// RequestNightly asks for try Try of the backup of Night (YYYY-MM-DD). The
// first try needs the app's schedule on and the night's slot passed; a
// later one needs the previous try's backup to have failed. A full quota
// skips the try with nightly.skipped instead of refusing it.
type RequestNightly struct {
	App   string
	Night string
	Try   int
}

// CommandName implements Command.
func (RequestNightly) CommandName() string { return "nightly.request" }

// AppID implements Command.
func (c RequestNightly) AppID() string { return c.App }

func (c RequestNightly) decide(a *App, d *decision) (Event, error) {
	if c.Try < 1 || c.Try > NightlyTries {
		return nil, Errorf(CodeInvalidArgument, "try must be 1 to %d, got %d", NightlyTries, c.Try)
	}
	sched := a.EffectiveSchedule(d.rules.Nightly)
	slot, err := sched.Slot(c.Night)
	if err != nil {
		return nil, err
	}
	n := a.night
	if c.Try == 1 {
		if !sched.Enabled {
			return nil, Errorf(CodeBackupStateConflict, "app %s has no nightly backups scheduled", a.id)
		}
		if d.now.Before(slot) {
			return nil, Errorf(CodeBackupStateConflict, "the backup of night %s is due at %s, not yet", c.Night, slot.UTC().Format(time.RFC3339))
		}
		if n.Night >= c.Night {
			return nil, Errorf(CodeBackupStateConflict, "night %s of app %s was handled already (latest: %s)", c.Night, a.id, n.Night)
		}
	} else {
		if n.Night != c.Night || n.Try != c.Try-1 || n.BackupID == "" {
			return nil, Errorf(CodeBackupStateConflict, "try %d of night %s of app %s follows no failed try %d", c.Try, c.Night, a.id, c.Try-1)
		}
		if b, ok := a.backups[n.BackupID]; !ok || b.Status != StatusFailed {
			return nil, Errorf(CodeBackupStateConflict, "the backup of try %d of night %s has not failed", n.Try, c.Night)
		}
	}
	if q := a.Quota(); q >= d.rules.MaxBackups {
		return &NightlySkipped{Night: c.Night, Try: c.Try, Code: CodeQuotaExceeded,
			Reason: fmt.Sprintf("app %s already holds %d backups, the most allowed; delete one so that the next night's backup can be made", a.id, q)}, nil
	}
	desc := "Nightly backup of " + c.Night
	if c.Try > 1 {
		desc += fmt.Sprintf(" (try %d of %d)", c.Try, NightlyTries)
	}
	return &BackupRequested{
		BackupID:    d.newID(),
		Name:        d.rules.DefaultName(d.now),
		Description: desc,
		Origin:      OriginNightly,
		ExpiresAt:   d.now.Add(d.rules.Retention).UTC(),
		Night:       c.Night,
		Try:         c.Try,
	}, nil
}

// NightlyCommandID is the command id of try of night: the same in every
// replica, so that each is recorded once.
func NightlyCommandID(night string, try int) string {
	if try <= 1 {
		return "nightly." + night
	}
	return fmt.Sprintf("nightly.%s.try%d", night, try)
}

// DueNightly is the nightly policy: given the app's state, the default
// schedule def (for an app that set none) and now, the nightly try that is
// due, if any (at most one). A failed try of the latest night is retried
// up to NightlyTries; otherwise the first try of the latest night whose
// slot has passed is due, when the schedule (or, without one, the app)
// existed before that slot. After a downtime only the latest night is
// made. It is a pure function of the folded state; Nightly executes what it
// returns.
func DueNightly(a *App, def Schedule, now time.Time) []RequestNightly {
	st := a.night
	if st.BackupID != "" && st.Try < NightlyTries {
		if b, ok := a.backups[st.BackupID]; ok && b.Status == StatusFailed {
			return []RequestNightly{{App: a.id, Night: st.Night, Try: st.Try + 1}}
		}
	}
	sched := a.EffectiveSchedule(def)
	if !sched.Enabled {
		return nil
	}
	night, slot, err := sched.LastNight(now)
	if err != nil || st.Night >= night {
		return nil
	}
	since := st.ScheduledAt
	if since.IsZero() {
		since = a.firstAt
	}
	if slot.Before(since) {
		return nil
	}
	return []RequestNightly{{App: a.id, Night: night, Try: 1}}
}

// Cron returns the schedule as a six-field cron expression (seconds
// first) and its time zone, for a timer that fires at each slot.
func (s Schedule) Cron() (expr, zone string, err error) {
	hh, mm, err := s.clock()
	if err != nil {
		return "", "", err
	}
	if _, err := s.location(); err != nil {
		return "", "", err
	}
	return fmt.Sprintf("0 %d %d * * *", mm, hh), s.TimeZone, nil
}
