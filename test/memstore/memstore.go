// Package memstore is the one in-memory service.EventStore of the module's
// tests: the transports' stack (test/apitest) and the domain's unit tests
// use it. It imports only the standard library and domain.
package memstore

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/backupledger/backupledger/domain"
	"github.com/backupledger/backupledger/service"
)

// Store is the in-memory service.EventStore. It keeps the
// stream LEDGER as a single JetStream server does, and passes the same
// contract suite as adapters/jetstream.EventStore (test/storetest):
//
//   - one sequence over the whole stream, from 1, without gaps;
//   - an append expects the last sequence of its subject (0: no message
//     yet) and is refused otherwise with an error wrapping
//     domain.ErrConflict (code 10071 on a server);
//   - the expected sequence is checked before the message id, so a retry
//     with a stale expected sequence is a conflict (a replicated stream
//     may answer a duplicate instead: Config.DedupFirst);
//   - message ids (Nats-Msg-Id) are deduplicated over the whole stream,
//     the duplicate answered with the first copy's sequence; a refused
//     append records no id; an empty id is never deduplicated; the
//     duplicate window does not pass unless ForgetMsgIDs says so;
//   - subject tokens are app ids, domain.IdentityStream or
//     domain.KeysStream (domain.CodeInvalidArgument otherwise);
//   - a context done before the append stores nothing.
//
// Messages are stored with the seal of their PendingEvent as given (the
// store has no key) and stamped with the store's clock.
type Store struct {
	// proj, if set, is applied every stored message, in order, under mu.
	proj Applier

	mu         sync.Mutex
	msgs       []Message
	last       map[string]uint64 // subject token → its last sequence
	msgIDs     map[string]uint64 // message id → sequence of its first copy
	appends    int
	clock      domain.Clock
	dedupFirst bool
}

// Message is one message of a Store: what the stream holds of it.
type Message struct {
	domain.StoredMessage
	// MsgID is its Nats-Msg-Id, "" if none.
	MsgID string
	// Type is its event type header (PendingEvent.Type).
	Type string
}

// Applier folds stored messages: a projection.
type Applier interface{ Apply(domain.StoredMessage) }

// Config configures a Store.
type Config struct {
	// Apply, if set, is applied every stored message, in order, before
	// Append returns (a Stack's projection).
	Apply Applier
	// Clock stamps each message's Stored time, as the server's clock
	// does; nil is the wall clock.
	Clock domain.Clock
	// DedupFirst answers a known message id as a duplicate before the
	// expected sequence is checked, as a replicated (R3) stream may under
	// concurrent writers (DESIGN §11). False checks the sequence first, as
	// a single server does.
	DedupFirst bool
}

var (
	_ service.EventStore    = (*Store)(nil)
	_ service.SubjectReader = (*Store)(nil)
)

// New returns an empty Store.
func New(cfg Config) *Store {
	return &Store{proj: cfg.Apply, last: map[string]uint64{}, msgIDs: map[string]uint64{}, clock: cfg.Clock, dedupFirst: cfg.DedupFirst}
}

// SetDedupFirst sets Config.DedupFirst from now on.
func (s *Store) SetDedupFirst(dedupFirst bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dedupFirst = dedupFirst
}

// Append stores ev on the subject of ev.App if that subject's last
// sequence is ev.ExpectedSeq, and returns its sequence; a known ev.MsgID
// returns the first copy's sequence with Duplicate set and stores
// nothing. It returns an error wrapping domain.ErrConflict for a wrong
// expected sequence, an *domain.Error (CodeInvalidArgument) for an
// invalid subject token, and ctx's error, wrapped, when ctx is done.
func (s *Store) Append(ctx context.Context, ev domain.PendingEvent) (domain.AppendResult, error) {
	if err := validToken(ev.App); err != nil {
		return domain.AppendResult{}, err
	}
	if err := ctx.Err(); err != nil {
		return domain.AppendResult{}, fmt.Errorf("append ledger.events.%s: %w", ev.App, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.init()
	if s.dedupFirst {
		if seq, ok := s.msgIDs[ev.MsgID]; ok && ev.MsgID != "" {
			return domain.AppendResult{Seq: seq, Duplicate: true}, nil
		}
	}
	if last := s.last[ev.App]; last != ev.ExpectedSeq {
		return domain.AppendResult{}, fmt.Errorf("append ledger.events.%s at expected seq %d (last %d): %w", ev.App, ev.ExpectedSeq, last, domain.ErrConflict)
	}
	if seq, ok := s.msgIDs[ev.MsgID]; ok && ev.MsgID != "" {
		return domain.AppendResult{Seq: seq, Duplicate: true}, nil
	}
	seq := s.storeLocked(Message{
		StoredMessage: domain.StoredMessage{Token: ev.App, Body: ev.Body, KeyID: ev.Seal.KeyID, Signature: ev.Seal.Signature, MAC: ev.Seal.MAC},
		MsgID:         ev.MsgID, Type: ev.Type,
	})
	s.appends++
	return domain.AppendResult{Seq: seq}, nil
}

// Publish stores m on its subject (m.Token) without expecting a sequence
// and without checking the token, as any client allowed to publish on the
// ledger's subjects could, and returns its sequence. Like Append, it
// stores nothing for a known m.MsgID and returns the first copy's
// sequence. m.Seq and m.Stored are the store's to set.
func (s *Store) Publish(m Message) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.init()
	if seq, ok := s.msgIDs[m.MsgID]; ok && m.MsgID != "" {
		return seq
	}
	return s.storeLocked(m)
}

// storeLocked stores m as the stream's next message.
func (s *Store) storeLocked(m Message) uint64 {
	m.Seq = uint64(len(s.msgs) + 1)
	m.Body = slices.Clone(m.Body)
	m.Stored = time.Now().UTC()
	if s.clock != nil {
		m.Stored = s.clock.Now().UTC()
	}
	s.msgs = append(s.msgs, m)
	s.last[m.Token] = m.Seq
	if m.MsgID != "" {
		s.msgIDs[m.MsgID] = m.Seq
	}
	if s.proj != nil {
		s.proj.Apply(m.StoredMessage)
	}
	return m.Seq
}

// init makes the maps of a Store made without New.
func (s *Store) init() {
	if s.last == nil {
		s.last = map[string]uint64{}
	}
	if s.msgIDs == nil {
		s.msgIDs = map[string]uint64{}
	}
}

// LastSeq returns the sequence of the last message of app's subject, 0 if
// it has none. It returns an *domain.Error (CodeInvalidArgument) for an
// invalid subject token.
func (s *Store) LastSeq(_ context.Context, app string) (uint64, error) {
	if err := validToken(app); err != nil {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last[app], nil
}

// Message implements service.EventStore: the message at seq, or an
// *domain.Error with CodeNotFound.
func (s *Store) Message(_ context.Context, seq uint64) (domain.StoredMessage, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if seq == 0 || seq > uint64(len(s.msgs)) {
		return domain.StoredMessage{}, domain.Errorf(domain.CodeNotFound, "no message at stream sequence %d", seq)
	}
	return s.msgs[seq-1].StoredMessage, nil
}

// ReadSubject implements service.SubjectReader: the messages of token's
// subject, in stream order.
func (s *Store) ReadSubject(_ context.Context, token string) ([]domain.StoredMessage, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []domain.StoredMessage
	for _, m := range s.msgs {
		if m.Token == token {
			out = append(out, m.StoredMessage)
		}
	}
	return out, nil
}

// Messages returns a copy of every stored message, in stream order.
func (s *Store) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.msgs)
}

// Len returns how many messages the stream holds.
func (s *Store) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.msgs)
}

// ForgetMsgIDs forgets the message ids stored so far: their duplicate
// window has passed.
func (s *Store) ForgetMsgIDs() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.msgIDs)
}

// ResetAppends sets the count of Appends back to 0: a stack's set-up does
// not count.
func (s *Store) ResetAppends() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.appends = 0
}

// Appends returns how many events were stored since the stack was made
// (its registrations of Apps not counted).
func (s *Store) Appends() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.appends
}

// validToken checks the subject token of an append, as
// adapters/jetstream does: an app id, domain.IdentityStream or
// domain.KeysStream.
func validToken(token string) error {
	if token == domain.IdentityStream || token == domain.KeysStream {
		return nil
	}
	return domain.ValidateAppID(token)
}
