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
	// command; for CodeUnavailable, when to try again.
	RetryAfter time.Duration
	// Recorded is set for a command that could not be completed for want
	// of the store (StoreUnavailable): whether it may have been recorded,
	// RecordedNo, RecordedMaybe or RecordedYes.
	Recorded string
	// cause is the failure behind the error, for the log; never shown to a
	// client.
	cause error
}

// Error implements error: the code, the message and, for the log, the
// cause.
func (e *Error) Error() string {
	if e.cause != nil {
		return e.Code + ": " + e.Message + ": " + e.cause.Error()
	}
	return e.Code + ": " + e.Message
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.cause }

// Whether a command that the store could not complete may have been
// recorded (Error.Recorded).
const (
	// RecordedNo: the store did not take it; a retry sends it again.
	RecordedNo = "no"
	// RecordedMaybe: the store may have taken it without confirming; a
	// retry with the same idempotency key is safe and answers either way.
	RecordedMaybe = "maybe"
	// RecordedYes: the store took it, but this process has not seen it in
	// the ledger yet; a retry with the same key answers its result.
	RecordedYes = "yes"
)

// storeRetryAfter is how long a client waits before retrying a command the
// store could not take: about one leader election.
const storeRetryAfter = 2 * time.Second

// StoreUnavailable returns the error of a command the store (JetStream)
// could not complete in time: no stream leader or quorum, a reconnecting
// connection, a write not confirmed, or a fold that has not caught up.
// It is CodeUnavailable, retryable, and says whether the command may have
// been recorded (RecordedNo, RecordedMaybe, RecordedYes); cause is kept
// for the log.
func StoreUnavailable(recorded string, cause error) *Error {
	var msg string
	switch recorded {
	case RecordedNo:
		msg = "the ledger cannot take writes right now: the command was not recorded; retry"
	case RecordedYes:
		msg = "the command was recorded, but this server has not caught up with it yet; retry with the same Idempotency-Key for its result"
	default:
		recorded = RecordedMaybe
		msg = "the ledger did not confirm the write in time: the command may have been recorded; retry with the same Idempotency-Key, which is safe"
	}
	return &Error{Code: CodeUnavailable, Message: msg, RetryAfter: storeRetryAfter, Recorded: recorded, cause: cause}
}

// Refused reports whether err is a refusal: an *Error in its chain other
// than CodeUnavailable. A refused command did not happen, and sent again
// unchanged it would be refused again; an unavailable one may succeed on a
// retry.
func Refused(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Code != CodeUnavailable
}

// ReadUnavailable returns the error of a read the store (JetStream) could
// not answer in time: CodeUnavailable, retryable; cause is kept for the
// log.
func ReadUnavailable(cause error) *Error {
	return &Error{Code: CodeUnavailable, Message: "the store does not answer right now; retry", RetryAfter: storeRetryAfter, cause: cause}
}

// RecordedOf returns the Recorded of an *Error in err's chain, or "".
func RecordedOf(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Recorded
	}
	return ""
}

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
