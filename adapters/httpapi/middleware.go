package httpapi

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/backupledger/backupledger/domain"
	"github.com/backupledger/backupledger/usecase"
)

// problemRouter serves mux, but answers a request that matches no route
// with a problem body: 405 (with Allow) when the path exists for other
// methods, else 404. Without a token, the answer does not wait for the
// request's body.
func (s *Server) problemRouter(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h, pattern := mux.Handler(r)
		if pattern != "" {
			mux.ServeHTTP(w, r)
			return
		}
		if !info(r).authed {
			closeUnread(w, r)
		}
		// The mux's own fallback knows whether other methods match; let it
		// answer into a recorder and translate.
		rec := &headerRecorder{header: http.Header{}}
		h.ServeHTTP(rec, r)
		if rec.status == http.StatusMethodNotAllowed {
			w.Header().Set("Allow", rec.header.Get("Allow"))
			s.problem(w, r, &domain.Error{Code: usecase.CodeMethodNotAllowed,
				Message: fmt.Sprintf("method %s is not allowed on %s", r.Method, r.URL.Path)})
			return
		}
		s.problem(w, r, domain.Errorf(domain.CodeNotFound, "no route for %s %s", r.Method, r.URL.Path))
	})
}

// headerRecorder keeps the status and headers of a fallback handler and
// drops its body.
type headerRecorder struct {
	header http.Header
	status int
}

func (h *headerRecorder) Header() http.Header { return h.header }

func (h *headerRecorder) Write(b []byte) (int, error) { return len(b), nil }

func (h *headerRecorder) WriteHeader(status int) { h.status = status }

// requireReady answers 503 until the projections have caught up at start,
// without reading the request's body.
func (s *Server) requireReady(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.deps.Ready() {
			closeUnread(w, r)
			w.Header().Set("Retry-After", "1")
			s.problem(w, r, domain.Errorf(domain.CodeUnavailable, "the service is starting: its projections are catching up"))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// logRequests logs one line per request (never its headers, so never a
// token) and turns a panic into a 500. A handler that aborts its response
// (http.ErrAbortHandler, e.g. a download whose archive turned out corrupt
// midway) is logged with aborted=true and the abort goes on to net/http,
// which drops the connection.
func (s *Server) logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		ri := &requestInfo{}
		r = r.WithContext(withRequestInfo(r.Context(), ri))
		defer func() {
			v := recover()
			aborted := v == http.ErrAbortHandler
			if v != nil && !aborted {
				s.log.Error("panic in handler", "method", r.Method, "path", r.URL.Path, "panic", v)
				if !sw.wrote {
					s.problem(sw, r, fmt.Errorf("panic: %v", v))
				}
			}
			attrs := []slog.Attr{
				slog.String("method", r.Method),
				slog.String("path", r.URL.Path),
				slog.Int("status", sw.statusCode()),
				slog.Duration("duration", time.Since(start)),
				slog.Int64("bytes", sw.bytes),
			}
			for _, a := range [][2]string{{"actor", ri.actor}, {"app", ri.app}, {"backup_id", ri.backupID}, {"restore_id", ri.restoreID},
				{"command_id", ri.commandID}, {"correlation_id", ri.correlationID}, {"code", ri.code}} {
				if a[1] != "" {
					attrs = append(attrs, slog.String(a[0], a[1]))
				}
			}
			if aborted {
				attrs = append(attrs, slog.Bool("aborted", true))
			}
			// Scrapes and probes come every few seconds: at debug level,
			// unless they fail.
			level := slog.LevelInfo
			switch r.URL.Path {
			case "/metrics", "/healthz", "/readyz":
				if sw.statusCode() < 400 {
					level = slog.LevelDebug
				}
			}
			s.log.LogAttrs(r.Context(), level, "http request", attrs...)
			if aborted {
				panic(v)
			}
		}()
		next.ServeHTTP(sw, r)
	})
}

// statusWriter remembers the status and size of a response.
type statusWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
	wrote  bool
}

func (w *statusWriter) WriteHeader(status int) {
	if !w.wrote {
		w.status, w.wrote = status, true
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if !w.wrote {
		w.status, w.wrote = http.StatusOK, true
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

func (w *statusWriter) statusCode() int {
	if !w.wrote {
		return http.StatusOK
	}
	return w.status
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// errNoPrincipal means a /v1 handler ran without requireAuth; a wiring bug.
var errNoPrincipal = errors.New("no principal in request context")
