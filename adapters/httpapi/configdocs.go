package httpapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/backupledger/backupledger/domain"
	"github.com/backupledger/backupledger/usecase"
)

// DocView is the JSON of a config document without its value.
type DocView struct {
	Key       string    `json:"key"`
	SizeBytes int64     `json:"size_bytes"`
	Revision  uint64    `json:"revision"`
	UpdatedAt time.Time `json:"updated_at"`
}

// DocList is the JSON of GET /v1/apps/{app}/config.
type DocList struct {
	Documents []DocView `json:"documents"`
}

func newDocView(d domain.ConfigDoc) DocView {
	return DocView{Key: d.Key, SizeBytes: d.Size, Revision: d.Revision, UpdatedAt: d.Updated.UTC()}
}

// docKey returns the {key...} path value, which must not be empty.
func docKey(r *http.Request) (string, error) {
	key := r.PathValue("key")
	if key == "" {
		return "", domain.Errorf(domain.CodeInvalidArgument, "config key is missing from the path")
	}
	return key, nil
}

// withTimeout bounds one config store call.
func (s *Server) withTimeout(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
}

// putDoc stores the raw body as a document: 201 when it is new, 200 when it
// replaced one; app_in_maintenance while the app is in maintenance.
func (s *Server) putDoc(w http.ResponseWriter, r *http.Request, c call) error {
	key, err := docKey(r)
	if err != nil {
		return err
	}
	if err := s.refuseInMaintenance(c.app); err != nil {
		return err
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
	ctx, cancel := s.withTimeout(r)
	defer cancel()
	// Whether the document is new only chooses between 201 and 200; a
	// concurrent writer may make it wrong, never the document.
	status := http.StatusOK
	if _, err := s.deps.Config.GetDoc(ctx, c.app, key); domain.Code(err) == domain.CodeNotFound {
		status = http.StatusCreated
	}
	doc, err := s.deps.Config.PutDoc(ctx, c.app, key, value)
	if err != nil {
		return err
	}
	if status == http.StatusCreated {
		w.Header().Set("Location", (&url.URL{Path: "/v1/apps/" + c.app + "/config/" + key}).EscapedPath())
	}
	w.Header().Set("ETag", etag(doc.Revision))
	writeJSON(w, status, newDocView(doc))
	return nil
}

// getDoc answers a document's raw bytes with its revision as ETag; an
// If-None-Match of that revision answers 304.
func (s *Server) getDoc(w http.ResponseWriter, r *http.Request, c call) error {
	key, err := docKey(r)
	if err != nil {
		return err
	}
	ctx, cancel := s.withTimeout(r)
	defer cancel()
	doc, err := s.deps.Config.GetDoc(ctx, c.app, key)
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
	if err := s.refuseInMaintenance(c.app); err != nil {
		return err
	}
	ctx, cancel := s.withTimeout(r)
	defer cancel()
	if err := s.deps.Config.DeleteDoc(ctx, c.app, key); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// listDocs answers the app's documents sorted by key, without values.
func (s *Server) listDocs(w http.ResponseWriter, r *http.Request, c call) error {
	ctx, cancel := s.withTimeout(r)
	defer cancel()
	docs, err := s.deps.Config.ListDocs(ctx, c.app)
	if err != nil {
		return err
	}
	out := DocList{Documents: make([]DocView, 0, len(docs))}
	for _, d := range docs {
		out.Documents = append(out.Documents, newDocView(d))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
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
