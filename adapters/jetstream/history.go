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

// Messages calls fn with each message of the subjects of tokens (app ids,
// domain.IdentityStream, domain.KeysStream), in stream order, with its
// signature headers and store time, until fn returns false or the messages
// stored when it began end. Time travel (GET
// /v1/apps/{app}/backups?as_of=) reads an app's with the keys' this way,
// and checks them as the projection does. Errors are the server's,
// wrapped.
func (s *EventStore) Messages(ctx context.Context, tokens []string, fn func(domain.StoredMessage) bool) error {
	var (
		last     uint64
		subjects []string
	)
	for _, tok := range tokens {
		if err := validSubject(tok); err != nil {
			return err
		}
		l, err := s.LastSeq(ctx, tok)
		if err != nil {
			return err
		}
		last = max(last, l)
		subjects = append(subjects, Subject(tok))
	}
	if last == 0 {
		return nil
	}
	st := s.stream
	// A read across a failover may reset its consumer a few times; nats.go
	// would otherwise reset without end, also on a closed connection,
	// without looking at ctx (the follower's lesson).
	cons, err := st.OrderedConsumer(ctx, njs.OrderedConsumerConfig{FilterSubjects: subjects, DeliverPolicy: njs.DeliverAllPolicy,
		MaxResetAttempts: followerResets})
	if err != nil {
		return fmt.Errorf("ordered consumer of %v: %w", subjects, err)
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
		return fmt.Errorf("read %v: %w", subjects, err)
	}
	defer it.Stop()
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	next := njs.NextContext(ctx)
	for {
		msg, err := it.Next(next)
		if err != nil {
			return fmt.Errorf("read %v: %w", subjects, err)
		}
		md, err := msg.Metadata()
		if err != nil {
			continue
		}
		if !fn(storedMessage(msg, md)) || md.Sequence.Stream >= last {
			return nil
		}
	}
}

// ReadSubject returns every message of the subject of token stored when
// it began, in stream order (service.SubjectReader): the keys' subject,
// which is short.
func (s *EventStore) ReadSubject(ctx context.Context, token string) ([]domain.StoredMessage, error) {
	var out []domain.StoredMessage
	err := s.Messages(ctx, []string{token}, func(m domain.StoredMessage) bool {
		out = append(out, m)
		return true
	})
	return out, err
}
