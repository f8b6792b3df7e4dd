package workqueue

import (
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// DefaultRetryDelay is how long a message waits after a failed delivery
// when Config.Backoff is nil.
const DefaultRetryDelay = 2 * time.Second

// Config configures a Queue. A zero field takes its default.
type Config struct {
	// Stream is the stream of the consumer (required).
	Stream string
	// Durable is the durable pull consumer that the queue binds to
	// (required); Run does not create it. It is a contract: every process of
	// an installation binds to the same name.
	Durable string
	// Batch is the most messages one pull request asks for: default
	// Workers, or 1 without workers. With workers, a pull request asks for
	// no more than the free ones.
	Batch int
	// Workers is how many tasks (Go) run at once. 0 runs a task in the fetch
	// loop, before the next message is handled.
	Workers int
	// AckWait is the consumer's ack wait; 0 takes it from the consumer.
	AckWait time.Duration
	// FallbackAckWait is the ack wait when AckWait is 0 and the consumer
	// reports none; 0 leaves the heartbeat at its shortest then.
	FallbackAckWait time.Duration
	// Heartbeat is how often a running task tells the server that its
	// message is still in progress: default a third of the ack wait.
	Heartbeat time.Duration
	// MaxDeliver is how often the server delivers a message at most; the
	// last delivery is marked Msg.Final. 0 takes it from the consumer, -1
	// means unbounded.
	MaxDeliver int
	// Backoff is how long a message waits after a failed delivery
	// (Msg.Backoff): default ConstantBackoff(DefaultRetryDelay).
	Backoff Backoff
	// Grace is how long a stopping Run lets running tasks finish before it
	// cancels them; 0 cancels them at once.
	Grace time.Duration
	// AckSync has an Ack wait, up to five seconds, for the server's
	// confirmation (a double ack), so that a message whose work is done is
	// not delivered again when the acknowledgement is lost. Without it an
	// Ack is sent and not confirmed.
	AckSync bool
	// Words are the texts of the queue's logs and errors.
	Words Wording
}

// Wording holds the texts of a queue's logs and errors. Operators and tests
// match them, so each queue keeps its own; an empty field takes a generic
// default.
type Wording struct {
	// Consumer names the consumer in Run's error when it cannot be looked
	// up: Consumer, the durable name, and the cause. Default "consumer".
	Consumer string
	// Fetch is the warning of a failed pull request. Default "fetch " and
	// the durable name.
	Fetch string
	// FetchError starts Run's error when the connection is closed. Default
	// Fetch.
	FetchError string
	// NoMetadata is the error logged for a message without JetStream
	// metadata, which can be neither handled nor settled. Default "message
	// without metadata".
	NoMetadata string
	// Heartbeat is the warning of a failed heartbeat. Default "heartbeat".
	Heartbeat string
	// Flush is the warning when the last acknowledgements cannot be flushed
	// as Run returns. Default "flush acknowledgements".
	Flush string
	// SettleFailed logs a failed settle step with the message's logger;
	// nil logs "settle message" with the keys step, subject and err.
	SettleFailed func(log *slog.Logger, m *Msg, s Settle, err error)
}

// Backoff returns how long a message waits after its delivery-th delivery
// failed (delivery counts from 1).
type Backoff func(delivery int) time.Duration

// ConstantBackoff returns a Backoff that waits d after every failure.
func ConstantBackoff(d time.Duration) Backoff {
	return func(int) time.Duration { return d }
}

// withDefaults returns c with every zero field set to its default, except
// AckWait, FallbackAckWait and MaxDeliver, which Run takes from the
// consumer.
func (c Config) withDefaults() Config {
	if c.Batch == 0 {
		c.Batch = max(c.Workers, 1)
	}
	if c.Backoff == nil {
		c.Backoff = ConstantBackoff(DefaultRetryDelay)
	}
	w := &c.Words
	if w.Consumer == "" {
		w.Consumer = "consumer"
	}
	if w.Fetch == "" {
		w.Fetch = "fetch " + c.Durable
	}
	if w.FetchError == "" {
		w.FetchError = w.Fetch
	}
	if w.NoMetadata == "" {
		w.NoMetadata = "message without metadata"
	}
	if w.Heartbeat == "" {
		w.Heartbeat = "heartbeat"
	}
	if w.Flush == "" {
		w.Flush = "flush acknowledgements"
	}
	if w.SettleFailed == nil {
		w.SettleFailed = func(log *slog.Logger, m *Msg, s Settle, err error) {
			log.Warn("settle message", "step", s.String(), "subject", m.Subject(), "err", err)
		}
	}
	return c
}

// Validate reports every invalid field at once (errors.Join). A zero field
// is valid: it takes its default.
func (c Config) Validate() error {
	var errs []error
	if c.Stream == "" || c.Durable == "" {
		errs = append(errs, errors.New("work queue needs a stream and a durable consumer"))
	}
	if c.Batch < 0 || c.Workers < 0 {
		errs = append(errs, fmt.Errorf("batch and workers must not be negative, got %d and %d", c.Batch, c.Workers))
	}
	if c.AckWait < 0 || c.Heartbeat < 0 || c.Grace < 0 {
		errs = append(errs, fmt.Errorf("ack wait, heartbeat and grace must not be negative, got %s, %s and %s", c.AckWait, c.Heartbeat, c.Grace))
	}
	if c.FallbackAckWait < 0 {
		errs = append(errs, fmt.Errorf("fallback ack wait must not be negative, got %s", c.FallbackAckWait))
	}
	if c.AckWait > 0 && c.Heartbeat >= c.AckWait {
		errs = append(errs, fmt.Errorf("heartbeat %s must be shorter than the ack wait %s", c.Heartbeat, c.AckWait))
	}
	if c.MaxDeliver < -1 {
		errs = append(errs, fmt.Errorf("max deliver must be -1 (unbounded) or more, got %d", c.MaxDeliver))
	}
	return errors.Join(errs...)
}
