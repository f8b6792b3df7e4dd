package natsapi

import (
	"context"
	"time"

	"github.com/backupledger/backupledger/domain"
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

// DocView is a config document without its value: the answer of
// config.put and an element of config.list.
type DocView struct {
	Key       string    `json:"key"`
	SizeBytes int64     `json:"size_bytes"`
	Revision  uint64    `json:"revision"`
	UpdatedAt time.Time `json:"updated_at"`
}

// DocValue is a config document with its value (base64 in JSON): the
// answer of config.get.
type DocValue struct {
	DocView
	Value []byte `json:"value"`
}

// DocList is the answer of config.list.
type DocList struct {
	Documents []DocView `json:"documents"`
}

func newDocView(d domain.ConfigDoc) DocView {
	return DocView{Key: d.Key, SizeBytes: d.Size, Revision: d.Revision, UpdatedAt: d.Updated.UTC()}
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
	if err := decode(c.req.Data(), &req); err != nil {
		return nil, err
	}
	if err := s.checkApp(c, req.App); err != nil {
		return nil, err
	}
	if err := requireKey(req.Key); err != nil {
		return nil, err
	}
	if err := s.refuseInMaintenance(req.App); err != nil {
		return nil, err
	}
	if req.Value == nil {
		req.Value = []byte{}
	}
	doc, err := s.deps.Config.PutDoc(ctx, req.App, req.Key, req.Value)
	if err != nil {
		return nil, err
	}
	return newDocView(doc), nil
}

// getDoc answers a document with its value.
func (s *Service) getDoc(ctx context.Context, c *call) (any, error) {
	var req DocRequest
	if err := decode(c.req.Data(), &req); err != nil {
		return nil, err
	}
	if err := s.checkApp(c, req.App); err != nil {
		return nil, err
	}
	if err := requireKey(req.Key); err != nil {
		return nil, err
	}
	doc, err := s.deps.Config.GetDoc(ctx, req.App, req.Key)
	if err != nil {
		return nil, err
	}
	v := doc.Value
	if v == nil {
		v = []byte{}
	}
	return DocValue{DocView: newDocView(doc), Value: v}, nil
}

// deleteDoc removes a document; app_in_maintenance while the app is in
// maintenance.
func (s *Service) deleteDoc(ctx context.Context, c *call) (any, error) {
	var req DocRequest
	if err := decode(c.req.Data(), &req); err != nil {
		return nil, err
	}
	if err := s.checkApp(c, req.App); err != nil {
		return nil, err
	}
	if err := requireKey(req.Key); err != nil {
		return nil, err
	}
	if err := s.refuseInMaintenance(req.App); err != nil {
		return nil, err
	}
	if err := s.deps.Config.DeleteDoc(ctx, req.App, req.Key); err != nil {
		return nil, err
	}
	return Deleted{App: req.App, Key: req.Key, Deleted: true}, nil
}

// listDocs answers the app's documents sorted by key, without values.
func (s *Service) listDocs(ctx context.Context, c *call) (any, error) {
	var req AppRequest
	if err := decode(c.req.Data(), &req); err != nil {
		return nil, err
	}
	if err := s.checkApp(c, req.App); err != nil {
		return nil, err
	}
	docs, err := s.deps.Config.ListDocs(ctx, req.App)
	if err != nil {
		return nil, err
	}
	out := DocList{Documents: make([]DocView, 0, len(docs))}
	for _, d := range docs {
		out.Documents = append(out.Documents, newDocView(d))
	}
	return out, nil
}
