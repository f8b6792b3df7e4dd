// Package natserr tells the failures of NATS and JetStream calls that a
// retry can cure (no leader or quorum, a reconnecting connection, no
// answer in time) from the others, and turns them into the domain's
// unavailable errors, which clients see as 503 with Retry-After.
package natserr

import (
	"context"
	"errors"

	"github.com/nats-io/nats.go"
	njs "github.com/nats-io/nats.go/jetstream"

	"github.com/backupledger/backupledger/domain"
)

// kind is what a failure says about whether the call reached the store.
type kind int

const (
	other       kind = iota // not transient: returned as it is
	notReceived             // no leader, no quorum: nothing was taken
	unanswered              // no answer in time, or the connection went: maybe taken
)

// errCodeDuplicateInProcess is the server's answer to a message whose id
// is the id of a message still being stored (proposed, not yet
// committed): a retry while the first copy is in flight.
const errCodeDuplicateInProcess njs.ErrorCode = 10158

// classify returns what err says.
func classify(err error) kind {
	var apiErr *njs.APIError
	// The legacy API's, which a key-value watch (a listing of keys)
	// returns when its consumer cannot be made.
	var legacyErr *nats.APIError
	switch {
	case err == nil:
		return other
	case errors.Is(err, njs.ErrNoStreamResponse), errors.Is(err, nats.ErrNoResponders),
		errors.As(err, &apiErr) && apiErr.Code == 503, errors.As(err, &legacyErr) && legacyErr.Code == 503:
		return notReceived
	case errors.As(err, &apiErr) && apiErr.ErrorCode == errCodeDuplicateInProcess,
		errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout), errors.Is(err, njs.ErrAsyncPublishTimeout),
		errors.Is(err, nats.ErrConnectionReconnecting), errors.Is(err, nats.ErrConnectionClosed),
		errors.Is(err, nats.ErrDisconnected), errors.Is(err, nats.ErrConnectionDraining):
		return unanswered
	}
	return other
}

// Write returns the error of a write as domain.StoreUnavailable when a
// retry can cure it, saying whether it may have been recorded. sent says
// whether the message was handed to the connection: then only no responder
// or the server's 503 prove that it was not stored. Other errors are
// returned as they are.
func Write(err error, sent bool) error {
	switch classify(err) {
	case notReceived:
		return domain.StoreUnavailable(domain.RecordedNo, err)
	case unanswered:
		if !sent {
			return domain.StoreUnavailable(domain.RecordedNo, err)
		}
		return domain.StoreUnavailable(domain.RecordedMaybe, err)
	}
	return err
}

// Read returns the error of a read as domain.ReadUnavailable when a retry
// can cure it, and other errors as they are.
func Read(err error) error {
	if classify(err) != other {
		return domain.ReadUnavailable(err)
	}
	return err
}

// Transient reports whether err is a failure that a retry can cure (no
// leader or quorum, a reconnecting connection, no answer in time).
func Transient(err error) bool { return classify(err) != other }
