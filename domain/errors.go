package domain

import (
	"errors"
	"fmt"
	"time"
)

// Stable error codes: every code of the API is here, and the application
// (package usecase) maps each to a status in one table. The code itself is
// part of the API contract and never changes.
const (
	CodeInvalidArgument     = "invalid_argument"
	CodeNotFound            = "not_found"
	CodeQuotaExceeded       = "backup_quota_exceeded"
	CodeTooSoon             = "backup_too_soon"
	CodeBackupStateConflict = "backup_state_conflict"
	CodeConflict            = "conflict"
	CodeUnauthenticated     = "unauthenticated"
	CodeUnavailable         = "unavailable"
	CodeBackupNotReady      = "backup_not_ready"
	CodeBackupCorrupt       = "backup_corrupt"
	CodeArchiveInvalid      = "archive_invalid"
	CodeArchiveTooLarge     = "archive_too_large"
	CodeArchiveVersion      = "unsupported_archive_version"
	CodeInternal            = "internal"

	// Identity.
	CodePermissionDenied  = "permission_denied"
	CodePasswordIncorrect = "password_incorrect"
	// CodePasswordLocked was the answer of a locked user, until wrong
	// passwords were throttled instead (CodeTooManyAttempts); no longer
	// answered.
	CodePasswordLocked = "password_locked"
	CodeAlreadyExists  = "already_exists"
	// CodeTooManyAttempts answers a password check refused by the
	// Throttle, before the password is looked at: the same for every name,
	// known or not.
	CodeTooManyAttempts = "too_many_attempts"
	// CodeIdempotencyKeyReused answers a command whose idempotency key the
	// caller already used for another request (the IETF Idempotency-Key
	// draft): a retry must send the same request.
	CodeIdempotencyKeyReused = "idempotency_key_reused"

	// Restores and maintenance.
	CodeRestoreInProgress  = "restore_in_progress"
	CodeAppInMaintenance   = "app_in_maintenance"
	CodeBackupNewer        = "backup_newer_than_server"
	CodeNotInMaintenance   = "not_in_maintenance"
	CodeAlreadyMaintenance = "already_in_maintenance"
)

// Error is an error with a stable code that is safe to show to a client.
// Rule errors carry extra fields (RetryAfter) that transports expose.
type Error struct {
	Code    string
	Message string
	// RetryAfter is set for CodeTooSoon: how long until the rule allows the
	// command.
	RetryAfter time.Duration
}

// Error implements error.
func (e *Error) Error() string { return e.Code + ": " + e.Message }

// Errorf returns an *Error with the code and a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Sentinel errors for the store and the application layer.
var (
	// ErrConflict is returned by an EventStore when the expected last
	// sequence of the app's subject is not the actual one.
	ErrConflict = errors.New("wrong last sequence")
	// ErrArchiveCorrupt is returned (wrapped) by a stored archive's reader
	// when its bytes do not match the recorded size and SHA-256.
	ErrArchiveCorrupt = errors.New("archive does not match its recorded digest")
	// ErrUnauthenticated is returned when a caller has no valid credentials.
	ErrUnauthenticated = &Error{Code: CodeUnauthenticated, Message: "missing or invalid bearer token"}
)

// Code returns the stable code of err: the code of an *Error in its chain,
// CodeConflict for ErrConflict, CodeInternal for anything else and "" for
// nil.
func Code(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	if errors.Is(err, ErrConflict) {
		return CodeConflict
	}
	if errors.Is(err, ErrArchiveCorrupt) {
		return CodeBackupCorrupt
	}
	return CodeInternal
}

// Public returns the client-facing message of err: the message of an *Error,
// a fixed text for conflicts, and "internal error" for everything else, so
// that internal details never reach a client.
func Public(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	if errors.Is(err, ErrConflict) {
		return "the app changed concurrently too often; try again"
	}
	if errors.Is(err, ErrArchiveCorrupt) {
		return "the stored archive does not match the ledger; the backup is marked corrupt"
	}
	return "internal error"
}

// RetryAfter returns the RetryAfter of an *Error in err's chain, or 0.
func RetryAfter(err error) time.Duration {
	var e *Error
	if errors.As(err, &e) {
		return e.RetryAfter
	}
	return 0
}
