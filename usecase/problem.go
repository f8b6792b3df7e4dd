package usecase

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/backupledger/backupledger/domain"
)

// Codes of the transports' own refusals, before a use case runs. They are
// in the one status table with the domain's.
const (
	// CodeMethodNotAllowed answers an HTTP method a route does not take.
	CodeMethodNotAllowed = "method_not_allowed"
	// CodePayloadTooLarge answers a request body over its limit.
	CodePayloadTooLarge = "payload_too_large"
	// CodeUnsupportedMediaType answers a body of a type a route does not
	// take.
	CodeUnsupportedMediaType = "unsupported_media_type"
)

// statusByCode is the one table from a stable error code to its status:
// the HTTP status, and over NATS the Nats-Service-Error-Code. Every code
// of package domain has a row (a test checks it).
var statusByCode = map[string]int{
	domain.CodeInvalidArgument:      http.StatusBadRequest,
	domain.CodeUnauthenticated:      http.StatusUnauthorized,
	domain.CodePermissionDenied:     http.StatusForbidden,
	domain.CodePasswordIncorrect:    http.StatusForbidden,
	domain.CodePasswordLocked:       http.StatusForbidden,
	domain.CodeNotFound:             http.StatusNotFound,
	domain.CodeQuotaExceeded:        http.StatusConflict,
	domain.CodeTooSoon:              http.StatusConflict,
	domain.CodeBackupStateConflict:  http.StatusConflict,
	domain.CodeConflict:             http.StatusConflict,
	domain.CodeBackupNotReady:       http.StatusConflict,
	domain.CodeBackupCorrupt:        http.StatusConflict,
	domain.CodeAlreadyExists:        http.StatusConflict,
	domain.CodeRestoreInProgress:    http.StatusConflict,
	domain.CodeAppInMaintenance:     http.StatusConflict,
	domain.CodeBackupNewer:          http.StatusConflict,
	domain.CodeNotInMaintenance:     http.StatusConflict,
	domain.CodeAlreadyMaintenance:   http.StatusConflict,
	domain.CodeArchiveInvalid:       http.StatusUnprocessableEntity,
	domain.CodeArchiveVersion:       http.StatusUnprocessableEntity,
	domain.CodeIdempotencyKeyReused: http.StatusUnprocessableEntity,
	domain.CodeTooManyAttempts:      http.StatusTooManyRequests,
	domain.CodeArchiveTooLarge:      http.StatusRequestEntityTooLarge,
	domain.CodeUnavailable:          http.StatusServiceUnavailable,
	domain.CodeInternal:             http.StatusInternalServerError,
	CodeMethodNotAllowed:            http.StatusMethodNotAllowed,
	CodePayloadTooLarge:             http.StatusRequestEntityTooLarge,
	CodeUnsupportedMediaType:        http.StatusUnsupportedMediaType,
}

// StatusOf returns the status of code. A code missing from the table is
// answered as a refusal by a rule (409); the test of the table keeps that
// from happening.
func StatusOf(code string) int {
	if st, ok := statusByCode[code]; ok {
		return st
	}
	return http.StatusConflict
}

// Problem is the body of every error answer (RFC 9457
// application/problem+json), the same over HTTP and NATS, with the stable
// code that clients switch on.
type Problem struct {
	Type     string `json:"type"`
	Title    string `json:"title"`
	Status   int    `json:"status"`
	Detail   string `json:"detail"`
	Code     string `json:"code"`
	Instance string `json:"instance,omitempty"`
	// RetryAfterSeconds is set for backup_too_soon, too_many_attempts and
	// unavailable: the whole seconds (rounded up) until the command may
	// succeed.
	RetryAfterSeconds int64 `json:"retry_after_seconds,omitempty"`
	// Recorded is set when the store could not complete a command:
	// whether it may have been recorded, "no", "maybe" or "yes". With
	// "maybe" or "yes", a retry with the same idempotency key is the way
	// (it is safe, and answers the command's result).
	Recorded string `json:"recorded,omitempty"`
}

// Internal reports whether the problem is a fault of the server: its
// detail is "internal error", and the transport logs the error itself.
func (p Problem) Internal() bool { return p.Status == http.StatusInternalServerError }

// ProblemOf returns the problem of err, answered for instance (the HTTP
// path or the NATS subject). With baseURL set, its type is baseURL#code,
// else about:blank. A request that ran out of time or was canceled is
// unavailable (retry with the same idempotency key), not internal.
func ProblemOf(err error, instance, baseURL string) Problem {
	code, detail := domain.Code(err), domain.Public(err)
	if code == domain.CodeInternal {
		switch {
		case errors.Is(err, context.DeadlineExceeded):
			code, detail = domain.CodeUnavailable, "the request timed out; retry it with the same idempotency key"
		case errors.Is(err, context.Canceled):
			code, detail = domain.CodeUnavailable, "the request was canceled; retry it"
		}
	}
	status := StatusOf(code)
	p := Problem{Type: "about:blank", Title: http.StatusText(status), Status: status, Detail: detail, Code: code, Instance: instance}
	if baseURL != "" {
		p.Type = baseURL + "#" + code
	}
	switch code {
	case domain.CodeTooSoon, domain.CodeTooManyAttempts, domain.CodePasswordLocked, domain.CodeUnavailable:
		p.RetryAfterSeconds = ceilSeconds(domain.RetryAfter(err))
	}
	p.Recorded = domain.RecordedOf(err)
	if code == domain.CodeUnavailable && p.Recorded == "" && errors.Is(err, context.DeadlineExceeded) {
		p.Recorded = domain.RecordedMaybe
	}
	return p
}

// ceilSeconds rounds d up to whole seconds, at least 1.
func ceilSeconds(d time.Duration) int64 {
	n := int64((d + time.Second - 1) / time.Second)
	return max(n, 1)
}
