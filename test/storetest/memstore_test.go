package storetest_test

import (
	"testing"

	"github.com/backupledger/backupledger/service"
	"github.com/backupledger/backupledger/test/memstore"
	"github.com/backupledger/backupledger/test/storetest"
)

// The in-memory store keeps the contract of a single JetStream server.
func TestMemStore(t *testing.T) {
	storetest.Run(t, func(*testing.T) service.EventStore { return memstore.New(memstore.Config{}) })
}

// Set to check the message id first, it keeps the contract as a
// replicated stream may.
func TestMemStoreDedupFirst(t *testing.T) {
	storetest.RunWith(t, storetest.Options{DedupFirst: true}, func(*testing.T) service.EventStore {
		return memstore.New(memstore.Config{DedupFirst: true})
	})
}
