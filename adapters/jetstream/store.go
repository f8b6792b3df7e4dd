package jetstream

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go"
	njs "github.com/nats-io/nats.go/jetstream"

	"github.com/backupledger/backupledger/domain"
)

// EventStore appends the ledger's events to the stream LEDGER, one subject
// per app, with the app's expected last subject sequence (optimistic
// concurrency) and the command's deduplication id.
type EventStore struct {
	js     njs.JetStream
	stream njs.Stream
}

var _ domain.EventStore = (*EventStore)(nil)

// NewEventStore returns an EventStore on js. It looks the stream up once
// (see Setup), so that LastSeq does not, and returns the server's error,
// wrapped, when the stream does not exist or cannot be reached.
func NewEventStore(ctx context.Context, js njs.JetStream) (*EventStore, error) {
	st, err := js.Stream(ctx, StreamName)
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", StreamName, err)
	}
	return &EventStore{js: js, stream: st}, nil
}

// Append publishes ev.Body to ledger.events.<ev.App> with the headers
// Nats-Msg-Id (ev.MsgID), Nats-Expected-Last-Subject-Sequence
// (ev.ExpectedSeq, always sent: 0 means the subject must be empty) and
// Ledger-Event-Type (ev.Type). It returns the stream sequence of the event,
// or of its first copy with Duplicate set when the server already held
// ev.MsgID. It returns an *domain.Error (CodeInvalidArgument) for an invalid
// app id, an error wrapping domain.ErrConflict (and the server's
// *jetstream.APIError) when the subject's last sequence is not
// ev.ExpectedSeq, and other errors, wrapped, when the publish fails.
func (s *EventStore) Append(ctx context.Context, ev domain.PendingEvent) (domain.AppendResult, error) {
	if err := validSubject(ev.App); err != nil {
		return domain.AppendResult{}, err
	}
	h := make(nats.Header, 3)
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
		return domain.AppendResult{}, fmt.Errorf("append %s: %w", subject, err)
	}
	return domain.AppendResult{Seq: ack.Sequence, Duplicate: ack.Duplicate}, nil
}

// validSubject checks the subject token of an append: an app id, or
// domain.IdentityStream.
func validSubject(app string) error {
	if app == domain.IdentityStream {
		return nil
	}
	return domain.ValidateAppID(app)
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
		return 0, fmt.Errorf("last message of %s: %w", Subject(app), err)
	}
	return msg.Sequence, nil
}
