package jetstream

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go"
	njs "github.com/nats-io/nats.go/jetstream"

	"github.com/backupledger/backupledger/adapters/internal/ensure"
	"github.com/backupledger/backupledger/adapters/internal/natserr"
	"github.com/backupledger/backupledger/domain"
	"github.com/backupledger/backupledger/service"
)

// Signer seals the body of an event with the ledger's current key and its
// event MAC (*service.Signing): the values of domain.HeaderKeyID,
// domain.HeaderSignature and domain.HeaderMAC.
type Signer interface {
	Sign(ctx context.Context, body []byte) (domain.Seal, error)
}

// EventStore appends the ledger's events to the stream LEDGER, one subject
// per app, with the app's expected last subject sequence (optimistic
// concurrency), the command's deduplication id and the event's signature.
type EventStore struct {
	js     njs.JetStream
	stream njs.Stream
	signer Signer
}

var (
	_ service.EventStore    = (*EventStore)(nil)
	_ service.SubjectReader = (*EventStore)(nil)
)

// NewEventStore returns an EventStore on js that signs what it appends
// with signer; with a nil signer it appends only events that come signed
// (key events). It looks the stream up once (see Setup), so that LastSeq
// does not, and returns the server's error, wrapped, when the stream does
// not exist or cannot be reached.
func NewEventStore(ctx context.Context, js njs.JetStream, signer Signer) (*EventStore, error) {
	st, err := ensure.Retry(ctx, func(ctx context.Context) (njs.Stream, error) { return js.Stream(ctx, StreamName) })
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", StreamName, err)
	}
	return &EventStore{js: js, stream: st, signer: signer}, nil
}

// errUnsigned refuses an append that neither comes signed nor can be
// signed: the ledger takes no unsigned event.
var errUnsigned = errors.New("append: the event is not signed and this store has no signer")

// Append publishes ev.Body to ledger.events.<ev.App> with the headers
// Nats-Msg-Id (ev.MsgID), Nats-Expected-Last-Subject-Sequence
// (ev.ExpectedSeq, always sent: 0 means the subject must be empty),
// Ledger-Event-Type (ev.Type) and the seal (signature and MAC): ev.Seal
// when set, else the signer's. It returns the stream sequence of the
// event, or of its first copy with Duplicate set when the server already
// held ev.MsgID. It returns an *domain.Error (CodeInvalidArgument) for an
// invalid app id, an error wrapping domain.ErrConflict (and the server's
// *jetstream.APIError) when the subject's last sequence is not
// ev.ExpectedSeq, the signer's error, and other errors, wrapped, when the
// publish fails.
func (s *EventStore) Append(ctx context.Context, ev domain.PendingEvent) (domain.AppendResult, error) {
	if err := validSubject(ev.App); err != nil {
		return domain.AppendResult{}, err
	}
	if ev.Seal.Signature == "" {
		if s.signer == nil {
			return domain.AppendResult{}, errUnsigned
		}
		var err error
		if ev.Seal, err = s.signer.Sign(ctx, ev.Body); err != nil {
			return domain.AppendResult{}, fmt.Errorf("sign %s: %w", ev.Type, natserr.Write(err, false))
		}
	}
	h := make(nats.Header, 6)
	h[domain.HeaderKeyID] = []string{ev.Seal.KeyID}
	h[domain.HeaderSignature] = []string{ev.Seal.Signature}
	if ev.Seal.MAC != "" {
		h[domain.HeaderMAC] = []string{ev.Seal.MAC}
	}
	h[njs.ExpectedLastSubjSeqHeader] = []string{strconv.FormatUint(ev.ExpectedSeq, 10)}
	if ev.MsgID != "" {
		h[njs.MsgIDHeader] = []string{ev.MsgID}
	}
	if ev.Type != "" {
		h[HeaderEventType] = []string{ev.Type}
	}
	subject := Subject(ev.App)
	ack, err := s.js.PublishMsg(ctx, &nats.Msg{Subject: subject, Header: h, Data: ev.Body})
	if err != nil {
		if isWrongLastSequence(err) {
			return domain.AppendResult{}, fmt.Errorf("append %s at expected seq %d: %w: %w", subject, ev.ExpectedSeq, domain.ErrConflict, err)
		}
		return domain.AppendResult{}, fmt.Errorf("append %s: %w", subject, natserr.Write(err, true))
	}
	return domain.AppendResult{Seq: ack.Sequence, Duplicate: ack.Duplicate}, nil
}

// validSubject checks the subject token of an append: an app id,
// domain.IdentityStream or domain.KeysStream.
func validSubject(app string) error {
	if app == domain.IdentityStream || app == domain.KeysStream {
		return nil
	}
	return domain.ValidateAppID(app)
}

// storedMessage is msg of LEDGER as domain.LedgerCheck takes it.
func storedMessage(msg njs.Msg, md *njs.MsgMetadata) domain.StoredMessage {
	m := domain.StoredMessage{Seq: md.Sequence.Stream, Token: strings.TrimPrefix(msg.Subject(), SubjectPrefix),
		Body: msg.Data(), Stored: md.Timestamp}
	if h := msg.Headers(); h != nil {
		// As sent, without canonicalising: a header spelt otherwise is
		// not backupd's.
		m.KeyID, m.Signature, m.MAC = first(h[domain.HeaderKeyID]), first(h[domain.HeaderSignature]), first(h[domain.HeaderMAC])
	}
	return m
}

func first(v []string) string {
	if len(v) == 0 {
		return ""
	}
	return v[0]
}

// isWrongLastSequence reports whether err is the server's answer to a wrong
// expected last sequence: code 10071 on R1, 10164 on replicated streams
// under concurrent writers (DESIGN §10).
func isWrongLastSequence(err error) bool {
	var apiErr *njs.APIError
	if !errors.As(err, &apiErr) {
		return false
	}
	return apiErr.ErrorCode == njs.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == njs.JSErrCodeStreamWrongLastSequenceConstant
}

// LastSeq returns the stream sequence of app's last event, 0 when the app
// has none. It uses a direct get of the subject's last message, which does
// not scan the stream. It returns an *domain.Error (CodeInvalidArgument) for
// an invalid app id and other errors, wrapped, when the stream cannot be
// reached.
func (s *EventStore) LastSeq(ctx context.Context, app string) (uint64, error) {
	if err := validSubject(app); err != nil {
		return 0, err
	}
	msg, err := s.stream.GetLastMsgForSubject(ctx, Subject(app))
	if errors.Is(err, njs.ErrMsgNotFound) {
		return 0, nil
	}
	if err != nil {
		// Asked after a refused append: nothing of this command was stored.
		return 0, fmt.Errorf("last message of %s: %w", Subject(app), natserr.Write(err, false))
	}
	return msg.Sequence, nil
}

// Message implements service.EventStore: a direct get by stream
// sequence, which does not scan the stream. It returns an *domain.Error
// (CodeNotFound) when the stream holds no message at seq, and other
// errors, wrapped, when it cannot be reached.
func (s *EventStore) Message(ctx context.Context, seq uint64) (domain.StoredMessage, error) {
	if seq == 0 {
		return domain.StoredMessage{}, domain.Errorf(domain.CodeNotFound, "no message at stream sequence 0")
	}
	msg, err := s.stream.GetMsg(ctx, seq)
	if errors.Is(err, njs.ErrMsgNotFound) {
		return domain.StoredMessage{}, domain.Errorf(domain.CodeNotFound, "no message at stream sequence %d", seq)
	}
	if err != nil {
		return domain.StoredMessage{}, fmt.Errorf("message at seq %d: %w", seq, natserr.Read(err))
	}
	m := domain.StoredMessage{Seq: msg.Sequence, Token: strings.TrimPrefix(msg.Subject, SubjectPrefix), Body: msg.Data, Stored: msg.Time}
	if h := msg.Header; h != nil {
		m.KeyID, m.Signature, m.MAC = first(h[domain.HeaderKeyID]), first(h[domain.HeaderSignature]), first(h[domain.HeaderMAC])
	}
	return m, nil
}
