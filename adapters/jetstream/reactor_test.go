package jetstream_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/backupledger/backupledger/adapters/jetstream"
	"github.com/backupledger/backupledger/domain"
)

// A reactor that wants some event types hands the handler those only,
// and acknowledges the rest without decoding them: the consumer ends with
// nothing pending.
func TestReactorHandsOnlyTheTypesItWants(t *testing.T) {
	s := newServer(t, jetstream.Config{})
	st := newStack(t, s, &counterIDs{})
	runFollower(t, st.follower)
	var (
		mu      sync.Mutex
		handled []string
	)
	r := jetstream.NewReactor(st.js, "test-reactor", time.Second, func(_ context.Context, _ uint64, env *domain.Envelope, _ []byte) error {
		mu.Lock()
		handled = append(handled, env.Type)
		mu.Unlock()
		return nil
	}, nil)
	r.Wants(func(typ string) bool { return typ == domain.TypeScheduleSet })
	if err := r.Setup(t.Context()); err != nil {
		t.Fatal(err)
	}
	runInBackground(t, "reactor", r.Run)

	ctx := t.Context()
	alice := func(id string) domain.Meta { return domain.Meta{Actor: "alice", CommandID: id} }
	b, err := st.ledger.Execute(ctx, domain.RequestBackup{App: "crm", Origin: domain.OriginManual}, alice("c1"))
	if err != nil {
		t.Fatal(err)
	}
	name := "renamed"
	for i, cmd := range []domain.Command{
		domain.RenameBackup{App: "crm", BackupID: b.BackupID, Name: name},
		domain.SetSchedule{App: "crm", Schedule: domain.Schedule{Enabled: true, Time: "03:00", TimeZone: "UTC"}},
		domain.RenameBackup{App: "crm", BackupID: b.BackupID, Name: name + " again"},
	} {
		if _, err := st.ledger.Execute(ctx, cmd, alice(string(rune('a'+i)))); err != nil {
			t.Fatalf("%s: %v", cmd.CommandName(), err)
		}
	}
	last := lastSeq(t, st.js)
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := st.js.Consumer(ctx, jetstream.StreamName, "test-reactor")
		if err != nil {
			t.Fatal(err)
		}
		info, err := c.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.AckFloor.Stream >= last && info.NumAckPending == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the reactor did not settle every event: ack floor %d of %d, %d pending", info.AckFloor.Stream, last, info.NumAckPending)
		}
		time.Sleep(20 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(handled, []string{domain.TypeScheduleSet}) {
		t.Errorf("handled %v, want only the %s", handled, domain.TypeScheduleSet)
	}
}
