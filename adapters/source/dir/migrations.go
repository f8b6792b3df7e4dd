package dir

import (
	"golang.org/x/text/unicode/norm"

	"github.com/backupledger/backupledger/domain"
)

// Migrations are the steps that bring archives of older versions of this
// source to SchemaVersion, for restores (domain.Migrations).
func Migrations() domain.Migrations {
	return domain.Migrations{{
		Source: Kind,
		From:   1,
		Name:   "file names in Unicode NFC",
		// A version 1 archive holds names as the file system gave them; a
		// decomposed (NFD) name is composed. Two names that become one are
		// refused by the import as a path given twice.
		Apply: func(it domain.Item) ([]domain.Item, error) {
			it.Path = norm.NFC.String(it.Path)
			return []domain.Item{it}, nil
		},
	}}
}
