package natsapi

import (
	"context"

	"github.com/backupledger/backupledger/domain"
	"github.com/backupledger/backupledger/usecase"
)

// DocRequest names one config document: the body of config.get and
// config.delete.
type DocRequest struct {
	App string `json:"app"`
	Key string `json:"key"`
}

// PutDocRequest is the body of config.put; Value is base64 in JSON.
type PutDocRequest struct {
	App   string `json:"app"`
	Key   string `json:"key"`
	Value []byte `json:"value"`
}

func requireKey(key string) error {
	if key == "" {
		return domain.Errorf(domain.CodeInvalidArgument, "field \"key\" is required")
	}
	return nil
}

// putDoc stores a document and answers its new revision;
// app_in_maintenance while the app is in maintenance.
func (s *Service) putDoc(ctx context.Context, c *call) (any, error) {
	var req PutDocRequest
	if err := s.decodeApp(c, &req, &req.App); err != nil {
		return nil, err
	}
	if err := requireKey(req.Key); err != nil {
		return nil, err
	}
	doc, _, err := s.app.PutDoc(ctx, c.query(), usecase.PutDoc{App: req.App, Key: req.Key, Value: req.Value})
	if err != nil {
		return nil, err
	}
	return doc, nil
}

// getDoc answers a document with its value.
func (s *Service) getDoc(ctx context.Context, c *call) (any, error) {
	var req DocRequest
	if err := s.decodeApp(c, &req, &req.App); err != nil {
		return nil, err
	}
	if err := requireKey(req.Key); err != nil {
		return nil, err
	}
	doc, err := s.app.GetDoc(ctx, c.query(), usecase.DocRef{App: req.App, Key: req.Key})
	if err != nil {
		return nil, err
	}
	return usecase.DocValue{DocView: usecase.NewDocView(doc), Value: doc.Value}, nil
}

// deleteDoc removes a document; app_in_maintenance while the app is in
// maintenance.
func (s *Service) deleteDoc(ctx context.Context, c *call) (any, error) {
	var req DocRequest
	if err := s.decodeApp(c, &req, &req.App); err != nil {
		return nil, err
	}
	if err := requireKey(req.Key); err != nil {
		return nil, err
	}
	if err := s.app.DeleteDoc(ctx, c.query(), usecase.DocRef{App: req.App, Key: req.Key}); err != nil {
		return nil, err
	}
	return Deleted{App: req.App, Key: req.Key, Deleted: true}, nil
}

// listDocs answers the app's documents sorted by key, without values.
func (s *Service) listDocs(ctx context.Context, c *call) (any, error) {
	var req AppRequest
	if err := s.decodeApp(c, &req, &req.App); err != nil {
		return nil, err
	}
	return s.app.ListDocs(ctx, c.query(), req.App)
}
