package httpapi

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/backupledger/backupledger/domain"
	"github.com/backupledger/backupledger/usecase"
)

// docKey returns the {key...} path value, which must not be empty.
func docKey(r *http.Request) (string, error) {
	key := r.PathValue("key")
	if key == "" {
		return "", domain.Errorf(domain.CodeInvalidArgument, "config key is missing from the path")
	}
	return key, nil
}

// putDoc stores the raw body as a document: 201 when it is new, 200 when it
// replaced one; app_in_maintenance while the app is in maintenance.
func (s *Server) putDoc(w http.ResponseWriter, r *http.Request, c call) error {
	key, err := docKey(r)
	if err != nil {
		return err
	}
	if err := s.app.RefuseConfigChange(c.app); err != nil {
		return err // before the body is read
	}
	if r.ContentLength > s.cfg.MaxDocBytes {
		return &domain.Error{Code: usecase.CodePayloadTooLarge, Message: fmt.Sprintf("config document is larger than %d bytes", s.cfg.MaxDocBytes)}
	}
	value, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxDocBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return &domain.Error{Code: usecase.CodePayloadTooLarge, Message: fmt.Sprintf("config document is larger than %d bytes", s.cfg.MaxDocBytes)}
		}
		return domain.Errorf(domain.CodeInvalidArgument, "read request body: %v", err)
	}
	ctx, cancel := s.timeout(r)
	defer cancel()
	doc, created, err := s.app.PutDoc(ctx, c.query(), usecase.PutDoc{App: c.app, Key: key, Value: value})
	if err != nil {
		return err
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
		w.Header().Set("Location", (&url.URL{Path: "/v1/apps/" + c.app + "/config/" + key}).EscapedPath())
	}
	w.Header().Set("ETag", etag(doc.Revision))
	writeJSON(w, status, doc)
	return nil
}

// getDoc answers a document's raw bytes with its revision as ETag; an
// If-None-Match of that revision answers 304.
func (s *Server) getDoc(w http.ResponseWriter, r *http.Request, c call) error {
	key, err := docKey(r)
	if err != nil {
		return err
	}
	ctx, cancel := s.timeout(r)
	defer cancel()
	doc, err := s.app.GetDoc(ctx, c.query(), usecase.DocRef{App: c.app, Key: key})
	if err != nil {
		return err
	}
	tag := etag(doc.Revision)
	w.Header().Set("ETag", tag)
	if !doc.Updated.IsZero() {
		w.Header().Set("Last-Modified", doc.Updated.UTC().Format(http.TimeFormat))
	}
	if match := r.Header.Get("If-None-Match"); match != "" && etagMatches(match, tag) {
		w.WriteHeader(http.StatusNotModified)
		return nil
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.Itoa(len(doc.Value)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(doc.Value)
	return nil
}

// deleteDoc removes a document: 204; app_in_maintenance while the app is
// in maintenance.
func (s *Server) deleteDoc(w http.ResponseWriter, r *http.Request, c call) error {
	key, err := docKey(r)
	if err != nil {
		return err
	}
	ctx, cancel := s.timeout(r)
	defer cancel()
	if err := s.app.DeleteDoc(ctx, c.query(), usecase.DocRef{App: c.app, Key: key}); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// listDocs answers the app's documents sorted by key, without values.
func (s *Server) listDocs(w http.ResponseWriter, r *http.Request, c call) error {
	ctx, cancel := s.timeout(r)
	defer cancel()
	v, err := s.app.ListDocs(ctx, c.query(), c.app)
	return respond(w, http.StatusOK, v, err)
}

func etag(rev uint64) string { return `"` + strconv.FormatUint(rev, 10) + `"` }

// etagMatches reports whether an If-None-Match list names tag (or is "*").
func etagMatches(header, tag string) bool {
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimSpace(t)
		if t == "*" || strings.TrimPrefix(t, "W/") == tag {
			return true
		}
	}
	return false
}
