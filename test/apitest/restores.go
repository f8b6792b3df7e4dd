package apitest

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/backupledger/backupledger/domain"
	"github.com/backupledger/backupledger/service"
)

// This file has the stand-ins that the restore service needs in these
// transport tests: the runner is not run here, so the source only says
// what it is (and exports the config documents), and no archive is read.

// SourceSchema is the schema version of MemSource: that of the archives
// MemArchives accepts, so their backups can be restored.
const SourceSchema = 3

// MemSource is a service.Source of kind "kv" over the MemConfig's
// documents, component "config".
type MemSource struct {
	config *MemConfig
}

var _ service.Source = (*MemSource)(nil)

// Kind implements service.Source.
func (s *MemSource) Kind() string { return "kv" }

// SchemaVersion implements service.Source.
func (s *MemSource) SchemaVersion() int { return SourceSchema }

// Components implements service.Source.
func (s *MemSource) Components() []string { return []string{"config"} }

// Export implements service.Source: the app's documents sorted by key.
func (s *MemSource) Export(ctx context.Context, app string, emit func(domain.Item) error) error {
	docs, err := s.config.ListDocs(ctx, app)
	if err != nil {
		return fmt.Errorf("list documents of %s: %w", app, err)
	}
	for _, d := range docs {
		full, err := s.config.GetDoc(ctx, app, d.Key)
		if err != nil {
			return fmt.Errorf("read document %s of %s: %w", d.Key, app, err)
		}
		if err := emit(domain.Item{Component: "config", Path: d.Key, Size: full.Size, Body: bytes.NewReader(full.Value)}); err != nil {
			return err
		}
	}
	return nil
}

// errNoArchives is what NoArchives answers.
var errNoArchives = errors.New("archives are not read in the transport tests")

// NoArchives is a service.ArchiveReader that reads nothing: the restore
// runner does not run in these tests.
type NoArchives struct{}

var _ service.ArchiveReader = NoArchives{}

// ReadArchive implements service.ArchiveReader with an error.
func (NoArchives) ReadArchive(_ context.Context, backupID string, _ int64, _ string, _ func(domain.ArchiveContents) error) error {
	return fmt.Errorf("read archive %s: %w", backupID, errNoArchives)
}
