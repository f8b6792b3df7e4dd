package httpapi

import (
	"net/http"
	"time"

	"github.com/backupledger/backupledger/domain"
)

// asOf returns the ?as_of= time of r, nil when there is none.
func asOf(r *http.Request) (*time.Time, error) {
	v := r.URL.Query().Get("as_of")
	if v == "" {
		return nil, nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return nil, domain.Errorf(domain.CodeInvalidArgument, "as_of must be an RFC 3339 time such as 2026-11-22T10:15:00Z, got %q", v)
	}
	return &t, nil
}
