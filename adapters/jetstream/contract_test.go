package jetstream_test

import (
	"testing"

	"github.com/backupledger/backupledger/adapters/jetstream"
	"github.com/backupledger/backupledger/domain"
	"github.com/backupledger/backupledger/test/natstest"
	"github.com/backupledger/backupledger/test/storetest"
)

// The event store keeps the contract of domain.EventStore on a single
// server (R1), each subtest on a server of its own. (No test of this
// package starts a cluster; the R3 differences are DESIGN §11's, and the
// suite's Options.DedupFirst.)
func TestEventStoreContract(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) domain.EventStore {
		s := newServer(t, jetstream.Config{})
		_, js := natstest.Connect(t, s)
		return newStore(t, js)
	})
}
