package workqueue

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Handler decides what becomes of one message: it returns the Outcome
// that settles it, or a task (Go, GoBeside) whose outcome will. It runs in
// the fetch loop, so it must be quick. ctx is Run's: once it has ended, the
// queue is stopping and a handler usually hands the message back.
type Handler func(ctx context.Context, m *Msg) Outcome

// Task is the slow part of handling a message. Its ctx ends when the
// stopping Run's grace has passed; it must return soon after. It returns
// the outcome that settles the message; Go and GoBeside leave it unsettled.
type Task func(ctx context.Context) Outcome

// Msg is one delivery of a message of the queue. The runner settles it,
// as its Outcome says.
type Msg struct {
	msg     jetstream.Msg
	backoff Backoff

	// Seq is the message's stream sequence.
	Seq uint64
	// Delivery counts the deliveries of the message, from 1; a hand-back
	// counts too.
	Delivery int
	// Final is set on the last delivery the server makes (MaxDeliver):
	// what fails now fails for good.
	Final bool
	// Stored is when the stream stored the message.
	Stored time.Time
	// Log is the queue's logger with the key seq. The runner logs the
	// heartbeats and the settling of the message with it; a handler may
	// replace it, a task must not.
	Log *slog.Logger
}

// Subject returns the message's subject.
func (m *Msg) Subject() string { return m.msg.Subject() }

// Data returns the message's body.
func (m *Msg) Data() []byte { return m.msg.Data() }

// Headers returns the message's headers.
func (m *Msg) Headers() nats.Header { return m.msg.Headers() }

// Backoff returns how long the message waits when this delivery fails:
// the queue's Backoff of Delivery.
func (m *Msg) Backoff() time.Duration { return m.backoff(m.Delivery) }

// Settle is a way to settle a message.
type Settle int

// The ways to settle a message.
const (
	// SettleAck acknowledges the message: it is done.
	SettleAck Settle = iota + 1
	// SettleNak has the message delivered again, after a delay.
	SettleNak
	// SettleHandBack has the message delivered again because this process
	// stops.
	SettleHandBack
	// SettleTerm ends the message for good.
	SettleTerm
)

// String returns "ack", "nak", "hand back" or "term".
func (s Settle) String() string {
	switch s {
	case SettleAck:
		return "ack"
	case SettleNak:
		return "nak"
	case SettleHandBack:
		return "hand back"
	case SettleTerm:
		return "term"
	}
	return fmt.Sprintf("settle(%d)", int(s))
}

// Outcome says what the runner does with a message once its Handler or
// Task returns. The zero Outcome leaves the message unsettled: the server
// delivers it again after the ack wait.
type Outcome struct {
	settle Settle
	delay  time.Duration
	reason string
	task   Task
	beside bool
}

// Ack returns the outcome that acknowledges the message: it is done (with
// Config.AckSync, once the server has confirmed it).
func Ack() Outcome { return Outcome{settle: SettleAck} }

// Retry returns the outcome of a failed delivery: the message is delivered
// again, to any process, after delay (usually Msg.Backoff), or at once
// when delay is 0. On a Final delivery the server does not deliver it
// again.
func Retry(delay time.Duration) Outcome { return Outcome{settle: SettleNak, delay: delay} }

// HandBack returns the outcome of a process that stops before the message
// is done: it is delivered again, to any process, after delay, or at once
// when delay is 0. A hand-back counts as a delivery.
func HandBack(delay time.Duration) Outcome { return Outcome{settle: SettleHandBack, delay: delay} }

// Term returns the outcome of a poison message, one that can never be
// handled (e.g. it does not decode): it is never delivered again. reason,
// if not empty, goes into the server's advisory.
func Term(reason string) Outcome { return Outcome{settle: SettleTerm, reason: reason} }

// Go returns the outcome that runs task on one of the queue's workers, in
// its own goroutine with heartbeats, and settles the message with the
// task's outcome.
func Go(task Task) Outcome { return Outcome{task: task} }

// GoBeside is Go without taking a worker: for a task that may wait for the
// task of another message (a restore waits for its pre-restore backup).
func GoBeside(task Task) Outcome { return Outcome{task: task, beside: true} }
