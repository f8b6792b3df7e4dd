package domain

import (
	"errors"
	"fmt"
	"time"
)

// Rules are the per-app rules of DESIGN §8. Each is a setting; DefaultRules
// holds the defaults.
type Rules struct {
	// MaxBackups is the most backups an app may hold; queued, running and
	// ready ones count.
	MaxBackups int
	// MinInterval is the least time between two backups that people start.
	MinInterval time.Duration
	// Retention is how long after its creation a backup expires.
	Retention time.Duration
	// Location is the time zone of default backup names.
	Location *time.Location
	// CommandMemory is how many recent command ids each app remembers to
	// answer retried commands beyond the stream's duplicate window.
	CommandMemory int
	// Nightly is the schedule of an app that never set its own.
	Nightly Schedule
}

// DefaultRules returns the defaults of DESIGN §8.
func DefaultRules() Rules {
	return Rules{
		MaxBackups:    10,
		MinInterval:   5 * time.Minute,
		Retention:     60 * 24 * time.Hour,
		Location:      time.UTC,
		CommandMemory: 1000,
		Nightly:       DefaultSchedule(),
	}
}

// Validate reports every invalid field at once.
func (r Rules) Validate() error {
	var errs []error
	if r.MaxBackups < 1 {
		errs = append(errs, fmt.Errorf("max backups must be at least 1, got %d", r.MaxBackups))
	}
	if r.MinInterval < 0 {
		errs = append(errs, fmt.Errorf("min interval must not be negative, got %s", r.MinInterval))
	}
	if r.Retention <= 0 {
		errs = append(errs, fmt.Errorf("retention must be positive, got %s", r.Retention))
	}
	if r.Location == nil {
		errs = append(errs, errors.New("time zone must be set"))
	}
	if r.CommandMemory < 1 {
		errs = append(errs, fmt.Errorf("command memory must be at least 1, got %d", r.CommandMemory))
	}
	if err := r.Nightly.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("default nightly schedule: %w", err))
	}
	return errors.Join(errs...)
}

// DefaultName is the name a backup gets when none is given: its creation
// time as "January 2 Monday 15:04" in the rules' time zone.
func (r Rules) DefaultName(created time.Time) string {
	loc := r.Location
	if loc == nil {
		loc = time.UTC
	}
	return created.In(loc).Format("January 2 Monday 15:04")
}

// Clock tells the time. The domain never calls time.Now itself.
type Clock interface {
	Now() time.Time
}

// IDs makes new unique, time-ordered ids (ULIDs at the edge).
type IDs interface {
	NewID(t time.Time) string
}
