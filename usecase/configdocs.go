package usecase

import (
	"context"
	"time"

	"github.com/backupledger/backupledger/domain"
)

// DocView is a config document without its value: the answer of a put and
// an element of a list.
type DocView struct {
	Key       string    `json:"key"`
	SizeBytes int64     `json:"size_bytes"`
	Revision  uint64    `json:"revision"`
	UpdatedAt time.Time `json:"updated_at"`
}

// DocValue is a config document with its value (base64 in JSON).
type DocValue struct {
	DocView
	Value []byte `json:"value"`
}

// DocList is an app's documents sorted by key, without values.
type DocList struct {
	Documents []DocView `json:"documents"`
}

// NewDocView returns the view of d.
func NewDocView(d domain.ConfigDoc) DocView {
	return DocView{Key: d.Key, SizeBytes: d.Size, Revision: d.Revision, UpdatedAt: d.Updated.UTC()}
}

// DocRef names one config document of an app.
type DocRef struct {
	App string
	Key string
}

// PutDoc stores Value as the document Key of App.
type PutDoc struct {
	App   string
	Key   string
	Value []byte
}

// PutDoc stores a document and answers its new revision, and whether it is
// new (a concurrent writer may make that wrong, never the document):
// app_in_maintenance while the app is in maintenance, invalid_argument (no
// key), not_found (the app), unavailable (no config store).
func (a *Application) PutDoc(ctx context.Context, c *Call, req PutDoc) (DocView, bool, error) {
	store, err := a.checkDoc(c, req.App, req.Key)
	if err != nil {
		return DocView{}, false, err
	}
	if err := a.refuseInMaintenance(req.App); err != nil {
		return DocView{}, false, err
	}
	if req.Value == nil {
		req.Value = []byte{}
	}
	_, err = store.GetDoc(ctx, req.App, req.Key)
	created := domain.Code(err) == domain.CodeNotFound
	doc, err := store.PutDoc(ctx, req.App, req.Key, req.Value)
	if err != nil {
		return DocView{}, false, err
	}
	return NewDocView(doc), created, nil
}

// GetDoc answers a document with its value: not_found.
func (a *Application) GetDoc(ctx context.Context, c *Call, req DocRef) (domain.ConfigDoc, error) {
	store, err := a.checkDoc(c, req.App, req.Key)
	if err != nil {
		return domain.ConfigDoc{}, err
	}
	doc, err := store.GetDoc(ctx, req.App, req.Key)
	if err != nil {
		return domain.ConfigDoc{}, err
	}
	if doc.Value == nil {
		doc.Value = []byte{}
	}
	return doc, nil
}

// DeleteDoc removes a document: not_found, app_in_maintenance while the
// app is in maintenance.
func (a *Application) DeleteDoc(ctx context.Context, c *Call, req DocRef) error {
	store, err := a.checkDoc(c, req.App, req.Key)
	if err != nil {
		return err
	}
	if err := a.refuseInMaintenance(req.App); err != nil {
		return err
	}
	return store.DeleteDoc(ctx, req.App, req.Key)
}

// ListDocs answers the app's documents sorted by key, without values.
func (a *Application) ListDocs(ctx context.Context, c *Call, app string) (DocList, error) {
	if err := a.CheckApp(c.Principal, app); err != nil {
		return DocList{}, err
	}
	store, err := a.config()
	if err != nil {
		return DocList{}, err
	}
	docs, err := store.ListDocs(ctx, app)
	if err != nil {
		return DocList{}, err
	}
	out := DocList{Documents: make([]DocView, 0, len(docs))}
	for _, d := range docs {
		out.Documents = append(out.Documents, NewDocView(d))
	}
	return out, nil
}

// checkDoc checks the app and the key of a document request and returns
// the config store.
func (a *Application) checkDoc(c *Call, app, key string) (ConfigStore, error) {
	if err := a.CheckApp(c.Principal, app); err != nil {
		return nil, err
	}
	if key == "" {
		return nil, domain.Errorf(domain.CodeInvalidArgument, "the config key is required")
	}
	return a.config()
}

// config returns the config store, or unavailable.
func (a *Application) config() (ConfigStore, error) {
	if a.deps.Config == nil {
		return nil, domain.Errorf(domain.CodeUnavailable, "the config store is not configured on this server")
	}
	return a.deps.Config, nil
}

// refuseInMaintenance answers app_in_maintenance while the app is in
// maintenance: its configuration documents are not to change then (a
// restore may be replacing them). Reads stay allowed.
func (a *Application) refuseInMaintenance(app string) error {
	return a.deps.Queries.Maintenance(app).RefuseConfigChange(app)
}
