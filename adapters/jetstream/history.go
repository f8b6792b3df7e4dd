package jetstream

import (
	"context"
	"errors"
	"fmt"
	"time"

	njs "github.com/nats-io/nats.go/jetstream"

	"github.com/backupledger/backupledger/domain"
)

// History reads one app's events back from the stream, for time travel
// (GET /v1/apps/{app}/backups?as_of=).
type History struct {
	js njs.JetStream
}

// NewHistory returns a History of the ledger stream.
func NewHistory(js njs.JetStream) *History { return &History{js: js} }

// historyBatch is how many messages one fetch of a history read asks for.
const historyBatch = 256

// AppEvents calls fn with the stream sequence and raw body of each event
// of app, oldest first, until fn returns false or the events end. An app
// without events calls fn never. Errors are the server's, wrapped.
func (h *History) AppEvents(ctx context.Context, app string, fn func(seq uint64, raw []byte) bool) error {
	if err := domain.ValidateAppID(app); err != nil {
		return err
	}
	st, err := h.js.Stream(ctx, StreamName)
	if err != nil {
		return fmt.Errorf("stream %s: %w", StreamName, err)
	}
	lastMsg, err := st.GetLastMsgForSubject(ctx, Subject(app))
	if errors.Is(err, njs.ErrMsgNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("last event of %s: %w", app, err)
	}
	last := lastMsg.Sequence
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
