package kv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/backupledger/backupledger/adapters/internal/ensure"
	"github.com/backupledger/backupledger/adapters/internal/natserr"
	"github.com/backupledger/backupledger/domain"
	"github.com/backupledger/backupledger/service"
	"github.com/backupledger/backupledger/usecase"
)

// Kind is the source kind recorded in archives of this source.
const Kind = "kv"

// SchemaVersion is the version of the structure this source exports.
const SchemaVersion = 1

// Source is the built-in configuration store and backup source on a
// JetStream key-value bucket. It is safe for concurrent use.
type Source struct {
	kv          jetstream.KeyValue
	maxValue    int
	maxDocs     int
	maxBufBytes int64
	// call bounds one read or write, list one listing (Config.CallTimeout):
	// a call that the bucket's leader never answers (it died, or lost its
	// quorum) fails instead of holding a backup's worker or a restore until
	// the job's own timeout.
	call, list time.Duration
}

var (
	_ service.Source      = (*Source)(nil)
	_ usecase.ConfigStore = (*Source)(nil)
	_ service.Replacer    = (*Source)(nil)
)

// New creates the bucket of cfg, or updates it to cfg if it exists, and
// returns a Source on it. It is idempotent and safe to call at every start.
// It returns an error if cfg is invalid, if cfg.MaxValueBytes exceeds the
// server's max_payload, or if the bucket cannot be created or updated.
func New(ctx context.Context, js jetstream.JetStream, cfg Config) (*Source, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("kv config: %w", err)
	}
	cfg = cfg.withDefaults()
	if nc := js.Conn(); nc != nil {
		if mp := nc.MaxPayload(); mp > 0 && int64(cfg.MaxValueBytes) > mp {
			return nil, fmt.Errorf("kv config: max value bytes %d exceeds the server's max_payload %d", cfg.MaxValueBytes, mp)
		}
	}
	kv, err := ensure.KeyValue(ctx, js, jetstream.KeyValueConfig{
		Bucket:       cfg.Bucket,
		Description:  "backupledger: app configuration documents, keys <app>.<doc key>",
		MaxValueSize: int32(cfg.MaxValueBytes),
		History:      1,
		Storage:      jetstream.FileStorage,
		Replicas:     cfg.Replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("create or update kv bucket %s: %w", cfg.Bucket, err)
	}
	// A backup's or a restore's digest must read what the bucket holds.
	if kv, err = ensure.LeaderReads(ctx, js, cfg.Bucket); err != nil {
		return nil, fmt.Errorf("kv bucket %s: reads from the leader: %w", cfg.Bucket, err)
	}
	return &Source{kv: kv, maxValue: cfg.MaxValueBytes, maxDocs: cfg.MaxReplaceDocs, maxBufBytes: cfg.MaxReplaceBytes,
		call: cfg.CallTimeout, list: 6 * cfg.CallTimeout}, nil
}

// Kind returns "kv".
func (s *Source) Kind() string { return Kind }

// SchemaVersion returns SchemaVersion.
func (s *Source) SchemaVersion() int { return SchemaVersion }

// Components implements service.Source: documents go into "config".
func (s *Source) Components() []string { return []string{domain.ComponentConfig} }

// PutDoc stores value under key of app and returns the stored document. A
// bad app id or key, or a value over the size limit, returns an
// *domain.Error with CodeInvalidArgument and writes nothing.
func (s *Source) PutDoc(ctx context.Context, app, key string, value []byte) (domain.ConfigDoc, error) {
	k, err := kvKey(app, key)
	if err != nil {
		return domain.ConfigDoc{}, err
	}
	if len(value) > s.maxValue {
		return domain.ConfigDoc{}, domain.Errorf(domain.CodeInvalidArgument, "config value of %q is %d bytes; the limit is %d", key, len(value), s.maxValue)
	}
	pctx, cancel := context.WithTimeout(ctx, s.call)
	defer cancel()
	rev, err := s.kv.Put(pctx, k, value)
	if err != nil {
		return domain.ConfigDoc{}, fmt.Errorf("put config %s: %w", k, natserr.Write(err, true))
	}
	doc := domain.ConfigDoc{Key: key, Value: value, Size: int64(len(value)), Revision: rev}
	// The revision's server time; if it was overwritten meanwhile, this
	// process's clock is close enough.
	if e, err := s.kv.GetRevision(pctx, k, rev); err == nil {
		doc.Updated = e.Created().UTC()
	} else {
		doc.Updated = time.Now().UTC()
	}
	return doc, nil
}

// GetDoc returns the document key of app with its value. A bad app id or key
// returns an *domain.Error with CodeInvalidArgument, a missing or deleted
// document one with CodeNotFound.
func (s *Source) GetDoc(ctx context.Context, app, key string) (domain.ConfigDoc, error) {
	k, err := kvKey(app, key)
	if err != nil {
		return domain.ConfigDoc{}, err
	}
	doc, err := s.get(ctx, k, key)
	if errors.Is(err, errMissing) {
		return domain.ConfigDoc{}, domain.Errorf(domain.CodeNotFound, "config key %q of app %q not found", key, app)
	}
	return doc, err
}

// DeleteDoc removes the document key of app; the bucket keeps a delete
// marker in its place. A bad app id or key returns an *domain.Error with
// CodeInvalidArgument, a missing document one with CodeNotFound.
func (s *Source) DeleteDoc(ctx context.Context, app, key string) error {
	k, err := kvKey(app, key)
	if err != nil {
		return err
	}
	if _, err := s.get(ctx, k, key); err != nil {
		if errors.Is(err, errMissing) {
			return domain.Errorf(domain.CodeNotFound, "config key %q of app %q not found", key, app)
		}
		return err
	}
	dctx, cancel := context.WithTimeout(ctx, s.call)
	defer cancel()
	if err := s.kv.Delete(dctx, k); err != nil {
		return fmt.Errorf("delete config %s: %w", k, natserr.Write(err, true))
	}
	return nil
}

// ListDocs returns app's documents sorted by key, with size, revision and
// time but without values. It lists every key under the app's prefix, also
// one written directly by another service that breaks the key scheme. A bad app id returns an *domain.Error with
// CodeInvalidArgument; an app without documents gives an empty list.
func (s *Source) ListDocs(ctx context.Context, app string) ([]domain.ConfigDoc, error) {
	if err := domain.ValidateAppID(app); err != nil {
		return nil, err
	}
	keys, err := s.keys(ctx, app)
	if err != nil {
		return nil, err
	}
	docs := make([]domain.ConfigDoc, 0, len(keys))
	for _, key := range keys {
		doc, err := s.get(ctx, app+"."+key, key)
		if errors.Is(err, errMissing) {
			continue // deleted since the listing
		}
		if err != nil {
			return nil, err
		}
		doc.Value = nil
		docs = append(docs, doc)
	}
	return docs, nil
}

// Export calls emit for every document of app, sorted by key, each read at
// its latest revision when its turn comes (see the package documentation
// for what that guarantees). Item.Path is the document key. A bad app id,
// or a key in the bucket that breaks the key scheme (written directly by
// another service), returns an *domain.Error with CodeInvalidArgument; an
// error of emit is returned as is; other errors are the bucket's.
func (s *Source) Export(ctx context.Context, app string, emit func(domain.Item) error) error {
	if err := domain.ValidateAppID(app); err != nil {
		return err
	}
	keys, err := s.keys(ctx, app)
	if err != nil {
		return err
	}
	for _, key := range keys {
		if err := validateKey(key); err != nil {
			// Written directly by another service: fail loudly rather than
			// leave it out of the backup or put an unsafe path in the archive.
			return fmt.Errorf("export app %s: %w", app, err)
		}
		doc, err := s.get(ctx, app+"."+key, key)
		if errors.Is(err, errMissing) {
			continue // deleted since the listing
		}
		if err != nil {
			return err
		}
		if err := emit(domain.Item{Component: domain.ComponentConfig, Path: key, Size: doc.Size, Body: bytes.NewReader(doc.Value)}); err != nil {
			return err
		}
	}
	return nil
}

// errMissing marks a key that does not exist or whose latest revision is a
// delete or purge marker.
var errMissing = errors.New("missing")

// get reads bucket key k (document key key) at its latest revision.
func (s *Source) get(ctx context.Context, k, key string) (domain.ConfigDoc, error) {
	ctx, cancel := context.WithTimeout(ctx, s.call)
	defer cancel()
	e, err := s.kv.Get(ctx, k)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return domain.ConfigDoc{}, errMissing
	}
	if err != nil {
		return domain.ConfigDoc{}, fmt.Errorf("get config %s: %w", k, natserr.Read(err))
	}
	v := e.Value()
	return domain.ConfigDoc{Key: key, Value: v, Size: int64(len(v)), Revision: e.Revision(), Updated: e.Created().UTC()}, nil
}

// keys returns the document keys of app that are not deleted, sorted and
// without duplicates, from a listing filtered on "<app>.>" on the server.
func (s *Source) keys(ctx context.Context, app string) ([]string, error) {
	prefix := app + "."
	ctx, cancel := context.WithTimeout(ctx, s.list)
	defer cancel()
	kl, err := s.kv.ListKeysFiltered(ctx, prefix+">")
	if err != nil {
		return nil, fmt.Errorf("list config keys of %s: %w", app, natserr.Read(err))
	}
	var keys []string
	for k := range kl.Keys() {
		if key, ok := strings.CutPrefix(k, prefix); ok && key != "" {
			keys = append(keys, key)
		}
	}
	// The lister closes its channel both when it is done and when ctx ends.
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("list config keys of %s: %w", app, natserr.Read(err))
	}
	slices.Sort(keys)
	return slices.Compact(keys), nil
}
