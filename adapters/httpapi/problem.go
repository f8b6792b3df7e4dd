package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/backupledger/backupledger/domain"
)

// statusByCode is the one table from a stable error code to its HTTP status.
var statusByCode = map[string]int{
	domain.CodeInvalidArgument:      http.StatusBadRequest,
	domain.CodeUnauthenticated:      http.StatusUnauthorized,
	domain.CodeNotFound:             http.StatusNotFound,
	domain.CodeQuotaExceeded:        http.StatusConflict,
	domain.CodeTooSoon:              http.StatusConflict,
	domain.CodeBackupStateConflict:  http.StatusConflict,
	domain.CodeConflict:             http.StatusConflict,
	domain.CodeBackupNotReady:       http.StatusConflict,
	domain.CodeBackupCorrupt:        http.StatusConflict,
	domain.CodeArchiveInvalid:       http.StatusUnprocessableEntity,
	domain.CodeArchiveVersion:       http.StatusUnprocessableEntity,
	domain.CodeArchiveTooLarge:      http.StatusRequestEntityTooLarge,
	domain.CodeUnavailable:          http.StatusServiceUnavailable,
	domain.CodeInternal:             http.StatusInternalServerError,
	domain.CodePermissionDenied:     http.StatusForbidden,
	domain.CodePasswordIncorrect:    http.StatusForbidden,
	domain.CodePasswordLocked:       http.StatusForbidden,
	domain.CodeTooManyAttempts:      http.StatusTooManyRequests,
	domain.CodeIdempotencyKeyReused: http.StatusUnprocessableEntity,
	domain.CodeAlreadyExists:        http.StatusConflict,
	domain.CodeRestoreInProgress:    http.StatusConflict,
	domain.CodeAppInMaintenance:     http.StatusConflict,
	domain.CodeBackupNewer:          http.StatusConflict,
	domain.CodeNotInMaintenance:     http.StatusConflict,
	domain.CodeAlreadyMaintenance:   http.StatusConflict,
	codeMethodNotAllowed:            http.StatusMethodNotAllowed,
	codePayloadTooLarge:             http.StatusRequestEntityTooLarge,
	codeUnsupportedMediaType:        http.StatusUnsupportedMediaType,
}

// statusOf returns the status of code. A code missing from the table is a
// rule of the domain that this table does not know yet (409), except the
// internal one.
func statusOf(code string) int {
	if st, ok := statusByCode[code]; ok {
		return st
	}
	if code == "" || code == domain.CodeInternal {
		return http.StatusInternalServerError
	}
	return http.StatusConflict
}

// Problem is the application/problem+json body (RFC 9457) of every error
// response, with the stable code that clients switch on.
type Problem struct {
	Type     string `json:"type"`
	Title    string `json:"title"`
	Status   int    `json:"status"`
	Detail   string `json:"detail"`
	Code     string `json:"code"`
	Instance string `json:"instance,omitempty"`
	// RetryAfterSeconds is set for backup_too_soon: the whole seconds
	// (rounded up) until the rule allows the command.
	RetryAfterSeconds int64 `json:"retry_after_seconds,omitempty"`
}

// classify returns the stable code and the client-facing detail of err. An
// archive found corrupt before the answer began is backup_corrupt. A
// command that ran out of time is unavailable (retry with the same
// idempotency key), not internal.
func classify(err error) (code, detail string) {
	code, detail = domain.Code(err), domain.Public(err)
	if code == domain.CodeInternal {
		switch {
		case errors.Is(err, domain.ErrArchiveCorrupt):
			// The domain has recorded it; the backup now says so.
			return domain.CodeBackupCorrupt, "the backup's stored archive does not match the ledger; the backup is marked corrupt"
		case errors.Is(err, context.DeadlineExceeded):
			return domain.CodeUnavailable, "the request timed out; retry it with the same Idempotency-Key"
		case errors.Is(err, context.Canceled):
			return domain.CodeUnavailable, "the request was canceled"
		}
	}
	return code, detail
}

// problem writes err as a problem response. Internal errors show only
// "internal error" and are logged here with their context.
func (s *Server) problem(w http.ResponseWriter, r *http.Request, err error) {
	code, detail := classify(err)
	status := statusOf(code)
	info(r).code = code
	if status == http.StatusInternalServerError {
		s.log.Error("internal error", "method", r.Method, "path", r.URL.Path, "app", r.PathValue("app"), "err", err)
	}
	p := Problem{
		Type:     "about:blank",
		Title:    http.StatusText(status),
		Status:   status,
		Detail:   detail,
		Code:     code,
		Instance: r.URL.Path,
	}
	if s.cfg.ProblemBaseURL != "" {
		p.Type = s.cfg.ProblemBaseURL + "#" + code
	}
	if code == domain.CodeTooSoon || code == domain.CodePasswordLocked || code == domain.CodeTooManyAttempts {
		p.RetryAfterSeconds = ceilSeconds(domain.RetryAfter(err))
		w.Header().Set("Retry-After", strconv.FormatInt(p.RetryAfterSeconds, 10))
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(p)
}

// ceilSeconds rounds d up to whole seconds, at least 1.
func ceilSeconds(d time.Duration) int64 {
	n := int64((d + time.Second - 1) / time.Second)
	return max(n, 1)
}
