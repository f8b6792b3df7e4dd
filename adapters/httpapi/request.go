package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/backupledger/backupledger/domain"
	"github.com/backupledger/backupledger/projections"
	"github.com/backupledger/backupledger/usecase"
)

// decodeJSON reads r's body into dst: one JSON object, at most
// MaxJSONBytes, valid UTF-8 (RFC 8259) without unpaired surrogate escapes,
// no unknown fields, nothing after it. An empty body leaves dst unchanged.
// Errors are *domain.Error with a detail naming the problem.
func (s *Server) decodeJSON(w http.ResponseWriter, r *http.Request, dst any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || !(mt == "application/json" || strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json")) {
			return &domain.Error{Code: usecase.CodeUnsupportedMediaType,
				Message: fmt.Sprintf("request body must be JSON (Content-Type: application/json), got %q", ct)}
		}
	}
	// The whole body is read first: encoding/json replaces invalid UTF-8
	// and unpaired surrogates by U+FFFD instead of refusing them.
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxJSONBytes))
	if err != nil {
		var size *http.MaxBytesError
		if errors.As(err, &size) {
			return &domain.Error{Code: usecase.CodePayloadTooLarge, Message: fmt.Sprintf("request body is larger than %d bytes", s.cfg.MaxJSONBytes)}
		}
		return projections.JSONError(err)
	}
	return projections.DecodeRequest(data, dst)
}

// writeJSON answers status with v as JSON.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// commandMeta builds the Meta of a command: the principal is the actor, the
// Idempotency-Key header (or a new id) the command id, X-Correlation-Id the
// correlation id. The command id is echoed in the response headers, so a
// client that sent none can still retry with it.
func (s *Server) commandMeta(w http.ResponseWriter, r *http.Request, c call) (domain.Meta, error) {
	m := domain.Meta{Actor: c.p.ID}
	if key, ok := headerValue(r, "Idempotency-Key"); ok {
		if err := domain.ValidateCommandKey(key); err != nil {
			return m, domain.Errorf(domain.CodeInvalidArgument,
				"Idempotency-Key must be 1 to %d characters of [A-Za-z0-9_.-]", domain.MaxKeyLen)
		}
		m.CommandID, m.ClientKey = key, true
	} else {
		m.CommandID = s.deps.NewID()
	}
	if id, ok := headerValue(r, "X-Correlation-Id"); ok {
		if err := domain.ValidateCommandKey(id); err != nil {
			return m, domain.Errorf(domain.CodeInvalidArgument,
				"X-Correlation-Id must be 1 to %d characters of [A-Za-z0-9_.-]", domain.MaxKeyLen)
		}
		m.CorrelationID = id
		info(r).correlationID = id
	}
	info(r).commandID = m.CommandID
	w.Header().Set("Idempotency-Key", m.CommandID)
	w.Header().Set("X-Command-Id", m.CommandID)
	return m, nil
}

// command returns the use-case call of a command of c: its metadata from
// the request's headers (commandMeta).
func (s *Server) command(w http.ResponseWriter, r *http.Request, c call) (*usecase.Call, error) {
	m, err := s.commandMeta(w, r, c)
	if err != nil {
		return nil, err
	}
	return &usecase.Call{Principal: c.p, Meta: m}, nil
}

// query returns the use-case call of a query of c.
func (c call) query() *usecase.Call { return &usecase.Call{Principal: c.p} }

// timeout returns r's context bounded by the request timeout.
func (s *Server) timeout(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
}

// respond writes v, a use case's answer, with status, or returns err.
func respond(w http.ResponseWriter, status int, v any, err error) error {
	if err != nil {
		return err
	}
	writeJSON(w, status, v)
	return nil
}

// replayed marks an answer to a retried command, answered from the first
// command's record.
func replayed(w http.ResponseWriter, uc *usecase.Call) {
	if uc.Replayed {
		w.Header().Set("Idempotent-Replayed", "true")
	}
}

// headerValue returns a header that is present, even if empty (which the
// validation then refuses).
func headerValue(r *http.Request, name string) (string, bool) {
	v, ok := r.Header[http.CanonicalHeaderKey(name)]
	if !ok || len(v) == 0 {
		return "", false
	}
	return strings.TrimSpace(v[0]), true
}
