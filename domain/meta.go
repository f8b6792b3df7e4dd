package domain

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// This file holds what a command carries besides itself (Meta), what the
// command loop appends (PendingEvent, EncodeEvent) and what it answers
// (Result).

// Meta is who sends a command and how it relates to others.
type Meta struct {
	// Actor is the authenticated caller; it is recorded in the event.
	Actor string
	// CommandID is the client's idempotency key or a generated id.
	CommandID string
	// ClientKey says that CommandID is the client's idempotency key: the
	// event then records the request's fingerprint (Envelope.CommandHash),
	// and the key reused for another request is
	// CodeIdempotencyKeyReused.
	ClientKey     bool
	CorrelationID string
	CausationID   string
	// commandHash is the request's fingerprint, set by Prepare when
	// ClientKey.
	commandHash string
}

// Result is the outcome of an accepted command.
type Result struct {
	// Seq is the stream sequence of the command's event.
	Seq       uint64
	EventType string
	BackupID  string
	RestoreID string
	// Duplicate is true when the command had been accepted before and this
	// is the first result again.
	Duplicate bool
}

// PendingEvent is one encoded event ready to be appended.
type PendingEvent struct {
	App  string
	Type string
	// MsgID is the deduplication id (Nats-Msg-Id): the command id scoped by
	// app and caller.
	MsgID string
	// ExpectedSeq is the stream sequence of the app's last event as the
	// deciding state knew it; 0 means the app has no event yet.
	ExpectedSeq uint64
	Body        []byte
	// Seal, when its Signature is set, is the event's signature and MAC
	// (key events seal their own); empty, the store seals the event with
	// the ledger's current key.
	Seal Seal
}

// AppendResult is the store's answer to an append.
type AppendResult struct {
	Seq uint64
	// Duplicate is true when MsgID was already stored; Seq is then the
	// sequence of the first copy.
	Duplicate bool
}

// ErrRefused is returned (wrapped) when the ledger's own check refused an
// event this process appended (e.g. signed with a key retired long
// enough ago): the command did not happen.
var ErrRefused = errors.New("the ledger refused this process's event")

// Prepare completes m for a command: a generated command id (newID) when
// the client sent none (a client's key is validated: CodeInvalidArgument),
// the correlation id, and, when the id is the client's key, the request's
// fingerprint, made of name and cmd (CommandHash).
func (m Meta) Prepare(newID func() string, name string, cmd any) (Meta, error) {
	if m.CommandID == "" {
		m.CommandID = newID()
	} else if err := ValidateCommandKey(m.CommandID); err != nil {
		return Meta{}, err
	}
	if m.CorrelationID == "" {
		m.CorrelationID = m.CommandID
	}
	if m.ClientKey {
		m.commandHash = RequestHash(name, cmd)
	}
	return m, nil
}

// CommandHash returns the request's fingerprint that Prepare set: empty
// unless the command id is the client's key.
func (m Meta) CommandHash() string { return m.commandHash }

// MsgID is the deduplication id (Nats-Msg-Id) of m's event on subject
// token: the command id scoped by subject and caller.
func MsgID(token string, m Meta) string { return token + "|" + m.CommandID + "|" + m.Actor }

// EncodeEvent builds the envelope of ev, decided at now on subject app
// with the command's meta, the previous event's hash and the event id, and
// returns it with its JSON.
func EncodeEvent(app string, now time.Time, ev Event, m Meta, prev, id string) (*Envelope, []byte, error) {
	data, err := json.Marshal(ev)
	if err != nil {
		return nil, nil, fmt.Errorf("encode %s: %w", ev.EventType(), err)
	}
	env := &Envelope{
		ID: id, Type: ev.EventType(), Version: registry.version(ev.EventType()), App: app, Time: now,
		Actor: m.Actor, CommandID: m.CommandID, CorrelationID: m.CorrelationID,
		CausationID: m.CausationID, CommandHash: m.commandHash, PrevHash: prev, Data: data,
	}
	body, err := json.Marshal(env)
	if err != nil {
		return nil, nil, fmt.Errorf("encode envelope of %s: %w", ev.EventType(), err)
	}
	return env, body, nil
}
