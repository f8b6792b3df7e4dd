package httpapi

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/backupledger/backupledger/domain"
	"github.com/backupledger/backupledger/usecase"
)

// unreadGrace is how long the connection of a request refused unread may
// still take in the body already on its way before it is closed: closing
// a connection with unread bytes resets it, and a reset may reach the
// client before it has read the answer.
const unreadGrace = 250 * time.Millisecond

// closeUnread makes the answer to r its connection's last, so that r's body
// is never waited for. With Connection: close net/http answers at once
// instead of first draining the body (up to 256 KiB, for as long as the
// client takes), and the read deadline just ahead keeps it from reading on
// after the answer. Call it before writing a refusal; a request without a
// body keeps its connection.
func closeUnread(w http.ResponseWriter, r *http.Request) {
	if r.ContentLength == 0 {
		return
	}
	w.Header().Set("Connection", "close")
	_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(unreadGrace))
}

// boundStrangerBody reads the body of a request to a route that takes no
// token before next runs: at most MaxUnauthenticatedBodyBytes (413
// payload_too_large, unread when its declared length is over), arrived
// within UnauthenticatedReadTimeout of the headers (400 invalid_argument
// past it). Either refusal closes the connection.
func (s *Server) boundStrangerBody(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength == 0 {
			next.ServeHTTP(w, r)
			return
		}
		limit := s.cfg.MaxUnauthenticatedBodyBytes
		tooLarge := &domain.Error{Code: usecase.CodePayloadTooLarge, Message: fmt.Sprintf("request body is larger than %d bytes", limit)}
		if r.ContentLength > limit {
			closeUnread(w, r)
			s.problem(w, r, tooLarge)
			return
		}
		// net/http lifts this deadline itself once the body has been read
		// to its end.
		_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(s.cfg.UnauthenticatedReadTimeout))
		body, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
		switch {
		case err != nil:
			w.Header().Set("Connection", "close")
			s.problem(w, r, domain.Errorf(domain.CodeInvalidArgument,
				"the request body did not arrive within %s: the client stalled or went away", s.cfg.UnauthenticatedReadTimeout))
			return
		case int64(len(body)) > limit:
			closeUnread(w, r)
			s.problem(w, r, tooLarge)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		next.ServeHTTP(w, r)
	})
}
