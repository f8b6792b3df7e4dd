package dir_test

import (
	"context"
	"path/filepath"
	"slices"
	"testing"

	"github.com/backupledger/backupledger/adapters/source/dir"
	"github.com/backupledger/backupledger/domain"
	"github.com/backupledger/backupledger/service"
)

var _ service.Replacer = (*dir.Source)(nil)

func TestReplace(t *testing.T) {
	tests := []struct {
		name  string
		items map[string]string
		code  string
		want  map[string]string // nil: the old files are left
	}{
		{name: "replaces everything", items: newFiles, want: newFiles},
		{name: "no items empties the app", items: map[string]string{}, want: map[string]string{}},
		{name: "a bad path changes nothing", items: map[string]string{"../escape": "x"}, code: domain.CodeInvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, root := setup(t)
			app := filepath.Join(root, "crm")
			writeTree(t, app, oldFiles)
			writeTree(t, filepath.Join(root, "other"), map[string]string{"x": "untouched"})

			err := s.Replace(context.Background(), "crm", itemsOf(tt.items))
			if got := domain.Code(err); got != tt.code {
				t.Fatalf("Replace = %v, want code %q", err, tt.code)
			}
			want := tt.want
			if want == nil {
				want = oldFiles
			}
			if got := readTree(t, app); !equalTrees(got, treeOf(want)) {
				t.Errorf("app after Replace:\n got %+v\nwant %+v", got, treeOf(want))
			}
			if got, want := readTree(t, filepath.Join(root, "other")), treeOf(map[string]string{"x": "untouched"}); !equalTrees(got, want) {
				t.Errorf("other app changed: %+v", got)
			}
			if got, want := rootEntries(t, root), []string{"crm", "other"}; !slices.Equal(got, want) {
				t.Errorf("root holds %q, want %q", got, want)
			}
		})
	}
}
