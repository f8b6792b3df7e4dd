package jetstream

import (
	"context"
	"fmt"
	"time"

	njs "github.com/nats-io/nats.go/jetstream"

	"github.com/backupledger/backupledger/domain"
)

// historyBatch is how many messages one fetch of a history read asks for.
const historyBatch = 256

// AppEvents calls fn with the stream sequence and raw body of each event
// of app, oldest first, until fn returns false or the events end: the
// history that time travel (GET /v1/apps/{app}/backups?as_of=) folds. An
// app without events calls fn never. Errors are the server's, wrapped.
func (s *EventStore) AppEvents(ctx context.Context, app string, fn func(seq uint64, raw []byte) bool) error {
	if err := domain.ValidateAppID(app); err != nil {
		return err
	}
	last, err := s.LastSeq(ctx, app)
	if err != nil || last == 0 {
		return err
	}
	st := s.stream
	cons, err := st.OrderedConsumer(ctx, njs.OrderedConsumerConfig{FilterSubjects: []string{Subject(app)}, DeliverPolicy: njs.DeliverAllPolicy})
	if err != nil {
		return fmt.Errorf("ordered consumer of %s: %w", app, err)
	}
	defer func() {
		if info := cons.CachedInfo(); info != nil {
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
			_ = st.DeleteConsumer(dctx, info.Name)
			cancel()
		}
	}()
	it, err := cons.Messages(njs.PullMaxMessages(historyBatch))
	if err != nil {
		return fmt.Errorf("read events of %s: %w", app, err)
	}
	defer it.Stop()
	next := njs.NextContext(ctx)
	for {
		msg, err := it.Next(next)
		if err != nil {
			return fmt.Errorf("read events of %s: %w", app, err)
		}
		md, err := msg.Metadata()
		if err != nil {
			continue
		}
		if !fn(md.Sequence.Stream, msg.Data()) || md.Sequence.Stream >= last {
			return nil
		}
	}
}
