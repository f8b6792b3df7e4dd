//go:build unix

package dir_test

import (
	"context"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/backupledger/backupledger/domain"
)

func TestExportRefusesNamedPipes(t *testing.T) {
	s, root := setup(t)
	writeTree(t, filepath.Join(root, "crm"), map[string]string{"a": "real"})
	if err := syscall.Mkfifo(filepath.Join(root, "crm", "pipe"), 0o644); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	err := s.Export(context.Background(), "crm", func(domain.Item) error { return nil })
	if domain.Code(err) != domain.CodeInvalidArgument || !strings.Contains(err.Error(), "pipe") || !strings.Contains(err.Error(), "named pipe") {
		t.Errorf("Export with a named pipe = %v; want invalid_argument naming it", err)
	}
}
