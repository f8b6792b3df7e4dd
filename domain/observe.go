package domain

import (
	"errors"
	"time"
)

// Command outcomes as an Observer is told them.
const (
	OutcomeOK        = "ok"
	OutcomeDuplicate = "duplicate"
	OutcomeRefused   = "refused"
	OutcomeError     = "error"
)

// Observer is told what the ledger does, for metrics. Its methods must be
// quick and must not block; they may be called from many goroutines.
type Observer interface {
	// Executed reports a command's outcome (OutcomeOK, ...) and how long
	// it took to answer.
	Executed(command, outcome string, took time.Duration)
	// Appended reports an event this process appended to app's subject,
	// before its projection applied it.
	Appended(app string, ev Event)
	// Conflict reports an append refused because another process wrote
	// first; retried says whether the command is decided again.
	Conflict(retried bool)
}

// Outcome classifies a command's result and error.
func Outcome(res Result, err error) string {
	var e *Error
	switch {
	case err == nil && res.Duplicate:
		return OutcomeDuplicate
	case err == nil:
		return OutcomeOK
	case errors.As(err, &e) && e.Code != CodeInternal && e.Code != CodeUnavailable:
		return OutcomeRefused
	}
	return OutcomeError
}

// NopObserver observes nothing.
type NopObserver struct{}

func (NopObserver) Executed(string, string, time.Duration) {}
func (NopObserver) Appended(string, Event)                 {}
func (NopObserver) Conflict(bool)                          {}
