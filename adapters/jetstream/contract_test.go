package jetstream_test

import (
	"testing"

	"github.com/backupledger/backupledger/adapters/jetstream"
	"github.com/backupledger/backupledger/service"
	"github.com/backupledger/backupledger/test/natstest"
	"github.com/backupledger/backupledger/test/storetest"
)

// The event store keeps the contract of service.EventStore on a single
// server (R1), each subtest on a server of its own.
func TestEventStoreContract(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) service.EventStore {
		s := newServer(t, jetstream.Config{})
		_, js := natstest.Connect(t, s)
		return newStore(t, js)
	})
}

// On a cluster of three servers, with the stream and its buckets at three
// replicas (--replicas 3), the event store keeps the same contract, except
// that a replicated stream checks a message id before the expected
// sequence (DESIGN §11: a stale retry is answered as a duplicate). Each
// subtest runs on a cluster of its own.
func TestEventStoreContractR3(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster per case")
	}
	t.Parallel()
	storetest.RunWith(t, storetest.Options{DedupFirst: true}, func(t *testing.T) service.EventStore {
		servers := natstest.Cluster(t, 3)
		_, js := natstest.Connect(t, servers[0])
		if err := jetstream.Setup(t.Context(), js, jetstream.Config{Replicas: 3}); err != nil {
			t.Fatalf("setup: %v", err)
		}
		return newStore(t, js)
	})
}
