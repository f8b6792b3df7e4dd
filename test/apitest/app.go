package apitest

import (
	"testing"
	"time"

	"github.com/backupledger/backupledger/usecase"
)

// AppDeps returns the parts of a usecase.Application over the stack: its
// ledger, projection, config store, identity, restores and transfers.
func (s *Stack) AppDeps() usecase.Deps {
	return usecase.Deps{
		Commands:  s.Ledger,
		Queries:   s.Proj,
		Config:    s.Config,
		Identity:  s.Identity,
		Transfers: s.Transfers,
		Restores:  s.Restores,
	}
}

// NewApp returns the application of deps, with download names in loc (nil
// is UTC), or fails the test.
func NewApp(t testing.TB, loc *time.Location, deps usecase.Deps) *usecase.Application {
	t.Helper()
	app, err := usecase.New(usecase.Config{Location: loc}, deps)
	if err != nil {
		t.Fatalf("new application: %v", err)
	}
	return app
}
