// Package jetstream is the NATS JetStream adapter of the ledger: the stream
// LEDGER that holds every event (DESIGN §3), the event store that appends to
// it with optimistic concurrency, the follower that feeds the in-memory
// projection with an ordered consumer (DESIGN §4), and the backup work queue
// that all processes share through one durable consumer (DESIGN §5).
package jetstream

import (
	"errors"
	"fmt"
	"os"
	"time"
)

// Names on the server. They are part of the contract with other processes,
// audit consumers and operators: never rename them.
const (
	// StreamName is the stream that holds every event of the ledger.
	StreamName = "LEDGER"
	// SubjectPrefix starts the subject of every event; the app id follows.
	SubjectPrefix = "ledger.events."
	// SubjectAll matches the events of every app.
	SubjectAll = SubjectPrefix + ">"
	// ConsumerName is the durable pull consumer that the backup workers of
	// all processes share (work-queue semantics). It is a contract: every
	// backupd of an installation binds to this name, so renaming it would
	// make a new consumer deliver the whole ledger again.
	ConsumerName = "backup-worker"
	// HeaderEventType is the message header that carries the event's type
	// (the envelope's "type", e.g. "backup.requested"), so that consumers can
	// filter events without decoding the body. Audit consumers may rely on
	// it; the body stays the source of truth.
	HeaderEventType = "Ledger-Event-Type"
)

// Subject returns the subject of app's events: ledger.events.<app>.
func Subject(app string) string { return SubjectPrefix + app }

// Defaults of Config.
const (
	DefaultReplicas        = 1
	DefaultDuplicateWindow = 2 * time.Minute
	DefaultAckWait         = 30 * time.Second
	DefaultMaxDeliver      = 5
	DefaultWorkers         = 2
	DefaultRetryDelay      = 2 * time.Second
)

// MinDuplicateWindow is the shortest duplicate window Validate accepts: a
// retried command inside it is stored once by the server itself.
const MinDuplicateWindow = 2 * time.Minute

// Config configures the stream, the job consumer and the workers. The zero
// value of a field means its default (see DefaultConfig).
type Config struct {
	// Replicas is the number of stream replicas: 1 for the embedded
	// server, 3 on a cluster.
	Replicas int
	// DuplicateWindow is how long the server remembers a Nats-Msg-Id; at
	// least MinDuplicateWindow.
	DuplicateWindow time.Duration
	// AckWait is how long the job consumer waits for an acknowledgement
	// before it delivers a job again; running jobs send a heartbeat every
	// AckWait/3. At least one second.
	AckWait time.Duration
	// MaxDeliver is how often a job is delivered at most; the last delivery
	// is marked final, so that the worker fails the backup instead of trying
	// once more. At least 2.
	MaxDeliver int
	// Workers is how many jobs this process runs at once.
	Workers int
	// WorkerName identifies this process in logs; it defaults to the host
	// name and process id.
	WorkerName string
	// RetryDelay is how long a job whose run returned an error waits before
	// it is delivered again.
	RetryDelay time.Duration
	// Grace is how long a stopping process lets its running jobs finish
	// before it cancels them and hands them back. 0 hands them back at once.
	Grace time.Duration
}

// DefaultConfig returns the defaults: 1 replica, a 2 minute duplicate window,
// 30 s ack wait, 5 deliveries, 2 workers, a 2 s retry delay, and the host
// name and process id as the worker name.
func DefaultConfig() Config {
	return Config{}.withDefaults()
}

// withDefaults returns c with every zero field set to its default.
func (c Config) withDefaults() Config {
	if c.Replicas == 0 {
		c.Replicas = DefaultReplicas
	}
	if c.DuplicateWindow == 0 {
		c.DuplicateWindow = DefaultDuplicateWindow
	}
	if c.AckWait == 0 {
		c.AckWait = DefaultAckWait
	}
	if c.MaxDeliver == 0 {
		c.MaxDeliver = DefaultMaxDeliver
	}
	if c.Workers == 0 {
		c.Workers = DefaultWorkers
	}
	if c.RetryDelay == 0 {
		c.RetryDelay = DefaultRetryDelay
	}
	if c.WorkerName == "" {
		host, err := os.Hostname()
		if err != nil || host == "" {
			host = "backupd"
		}
		c.WorkerName = fmt.Sprintf("%s-%d", host, os.Getpid())
	}
	return c
}

// Validate reports every invalid field at once (errors.Join). It checks the
// fields as they are: a zero field is invalid here, although Setup and
// NewJobs replace zero fields with defaults before they validate.
func (c Config) Validate() error {
	var errs []error
	if c.Replicas < 1 || c.Replicas > 5 {
		errs = append(errs, fmt.Errorf("replicas must be 1 to 5, got %d", c.Replicas))
	}
	if c.DuplicateWindow < MinDuplicateWindow {
		errs = append(errs, fmt.Errorf("duplicate window must be at least %s, got %s", MinDuplicateWindow, c.DuplicateWindow))
	}
	if c.AckWait < time.Second {
		errs = append(errs, fmt.Errorf("ack wait must be at least 1s, got %s", c.AckWait))
	}
	if c.MaxDeliver < 2 {
		errs = append(errs, fmt.Errorf("max deliver must be at least 2, got %d", c.MaxDeliver))
	}
	if c.Workers < 1 {
		errs = append(errs, fmt.Errorf("workers must be at least 1, got %d", c.Workers))
	}
	if c.Grace < 0 {
		errs = append(errs, fmt.Errorf("grace must not be negative, got %s", c.Grace))
	}
	if c.RetryDelay <= 0 {
		errs = append(errs, fmt.Errorf("retry delay must be positive, got %s", c.RetryDelay))
	}
	if c.WorkerName == "" {
		errs = append(errs, errors.New("worker name must be set"))
	}
	return errors.Join(errs...)
}
