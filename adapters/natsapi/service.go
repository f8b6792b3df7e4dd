// Package natsapi is the NATS API of backupledger (DESIGN §7): a micro
// service named "backup-ledger" whose endpoints under ledger.api.> offer
// the same commands and queries as the HTTP API, with the same JSON bodies
// and the same error codes. Archives travel through the staging object
// store bucket: an upload names an object put there, a download answers
// where to read one.
//
// Requests carry "Authorization: Bearer <token>" as a NATS header. Errors
// are micro error responses: Nats-Service-Error-Code is the HTTP-like status
// ("409"), Nats-Service-Error the stable code ("backup_too_soon"), and the
// body the same application/problem+json document as over HTTP.
//
// The micro package calls one endpoint's handler for one request after
// another; this package hands every request to its own goroutine (bounded by
// Config.MaxConcurrent) and responds from there, so that a slow request does
// not hold up the others.
package natsapi

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/backupledger/backupledger/domain"
	"github.com/backupledger/backupledger/usecase"
)

// ServiceName is the micro service's name.
const ServiceName = "backup-ledger"

// Defaults of Config.
const (
	DefaultVersion         = "0.1.0"
	DefaultMaxConcurrent   = 256
	DefaultRequestTimeout  = 30 * time.Second
	DefaultTransferTimeout = 10 * time.Minute
)

// Config configures a Service. The zero value is usable: Validate fills in
// the defaults.
type Config struct {
	// Version is the service version that micro's INFO and PING report
	// (semver; default 0.1.0).
	Version string
	// QueueGroup is the queue group of every endpoint, so that the
	// replicas of backupd share the requests (default micro's "q").
	QueueGroup string
	// MaxConcurrent bounds the requests handled at once over all
	// endpoints (default 256); beyond it, delivery waits.
	MaxConcurrent int
	// RequestTimeout bounds one request (default 30s); past it the answer
	// is 503 unavailable.
	RequestTimeout time.Duration
	// ProblemBaseURL, when set, makes a problem's "type" the URL
	// ProblemBaseURL + "#" + code; otherwise it is "about:blank".
	ProblemBaseURL string
	// TransferTimeout bounds an upload or download request instead of
	// RequestTimeout (default 10 min): it copies a whole archive.
	TransferTimeout time.Duration
}

// Validate fills in defaults and reports every invalid field at once.
func (c *Config) Validate() error {
	var errs []error
	if c.Version == "" {
		c.Version = DefaultVersion
	}
	if c.MaxConcurrent == 0 {
		c.MaxConcurrent = DefaultMaxConcurrent
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = DefaultRequestTimeout
	}
	if c.TransferTimeout == 0 {
		c.TransferTimeout = DefaultTransferTimeout
	}
	if c.MaxConcurrent < 0 {
		errs = append(errs, fmt.Errorf("max concurrent requests must be positive, got %d", c.MaxConcurrent))
	}
	if c.RequestTimeout < 0 {
		errs = append(errs, fmt.Errorf("request timeout must be positive, got %s", c.RequestTimeout))
	}
	if c.TransferTimeout < 0 {
		errs = append(errs, fmt.Errorf("transfer timeout must be positive, got %s", c.TransferTimeout))
	}
	return errors.Join(errs...)
}

// Deps are the parts a Service talks to.
type Deps struct {
	// App is the application: every use case of the API. Required.
	App  *usecase.Application
	Auth usecase.Authenticator // required
	// Ready reports whether the projections have caught up at start; until
	// it does every request answers 503 unavailable. Nil means always
	// ready.
	Ready func() bool
	// NewID makes a command id when the request names no idempotency key;
	// nil uses 26 random base32 characters.
	NewID func() string
	// Logger receives one line per request and the details of internal
	// errors; nil discards.
	Logger *slog.Logger
}

func (d *Deps) validate() error {
	var errs []error
	if d.App == nil {
		errs = append(errs, errors.New("the application is required"))
	}
	if d.Auth == nil {
		errs = append(errs, errors.New("authenticator is required"))
	}
	if d.Ready == nil {
		d.Ready = func() bool { return true }
	}
	if d.NewID == nil {
		d.NewID = rand.Text
	}
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	return errors.Join(errs...)
}

// Service is the running micro service.
type Service struct {
	cfg  Config
	deps Deps
	log  *slog.Logger
	// app holds the use cases that this service answers.
	app *usecase.Application
	nc  *nats.Conn
	svc micro.Service
	sem chan struct{}

	ctx    context.Context
	cancel context.CancelFunc

	mu       sync.Mutex
	idle     *sync.Cond
	inflight int
	closed   bool
}

// New adds the service and its endpoints to nc and starts serving; when it
// returns, the server knows the endpoints. It returns an error for an invalid Config, missing Deps, or a failure to
// subscribe.
func New(nc *nats.Conn, cfg Config, deps Deps) (*Service, error) {
	if nc == nil {
		return nil, errors.New("natsapi: nil connection")
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("natsapi config: %w", err)
	}
	if err := deps.validate(); err != nil {
		return nil, fmt.Errorf("natsapi deps: %w", err)
	}
	s := &Service{cfg: cfg, deps: deps, log: deps.Logger, app: deps.App, nc: nc, sem: make(chan struct{}, cfg.MaxConcurrent)}
	s.idle = sync.NewCond(&s.mu)
	s.ctx, s.cancel = context.WithCancel(context.Background())

	svc, err := micro.AddService(nc, micro.Config{
		Name:        ServiceName,
		Version:     cfg.Version,
		Description: "the backup ledger: backups, restores, app state, logs and config documents",
		QueueGroup:  cfg.QueueGroup,
		ErrorHandler: func(_ micro.Service, e *micro.NATSError) {
			s.log.Error("nats service error", "subject", e.Subject, "err", e.Description)
		},
	})
	if err != nil {
		s.cancel()
		return nil, fmt.Errorf("add micro service %s: %w", ServiceName, err)
	}
	s.svc = svc
	for _, e := range s.endpoints() {
		if err := svc.AddEndpoint(e.name, s.dispatch(e), micro.WithEndpointSubject(e.subject)); err != nil {
			_ = svc.Stop()
			s.cancel()
			return nil, fmt.Errorf("add endpoint %s: %w", e.subject, err)
		}
	}
	// Once the server has the subscriptions, requests from any connection
	// reach the service.
	if err := nc.FlushTimeout(10 * time.Second); err != nil {
		_ = svc.Stop()
		s.cancel()
		return nil, fmt.Errorf("flush subscriptions of %s: %w", ServiceName, err)
	}
	return s, nil
}

// Info returns micro's description of the service and its endpoints.
func (s *Service) Info() micro.Info { return s.svc.Info() }

// Stop stops taking requests and waits for the ones being handled to be
// answered. Requests that reach the service after that answer 503
// unavailable. It returns the error of stopping the micro service.
func (s *Service) Stop() error {
	err := s.svc.Stop()
	if err == nil && !s.nc.IsClosed() {
		// The server has our unsubscriptions once the flush returns;
		// requests it delivered before are still handled below.
		_ = s.nc.Flush()
	}
	s.mu.Lock()
	for s.inflight > 0 {
		s.idle.Wait()
	}
	s.closed = true
	s.mu.Unlock()
	s.cancel()
	if err != nil {
		return fmt.Errorf("stop micro service %s: %w", ServiceName, err)
	}
	return nil
}

// dispatch hands each request of an endpoint to its own goroutine. The
// semaphore bounds them; a full semaphore holds up delivery (back-pressure)
// rather than dropping requests.
func (s *Service) dispatch(e endpoint) micro.HandlerFunc {
	return func(req micro.Request) {
		s.sem <- struct{}{}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			<-s.sem
			s.serveClosed(req)
			return
		}
		s.inflight++
		s.mu.Unlock()
		go func() {
			defer func() {
				<-s.sem
				s.mu.Lock()
				s.inflight--
				if s.inflight == 0 {
					s.idle.Broadcast()
				}
				s.mu.Unlock()
			}()
			s.serve(e, req)
		}()
	}
}

// serveClosed answers a request that arrives after Stop.
func (s *Service) serveClosed(req micro.Request) {
	c := &call{req: req, hdr: nats.Header{}}
	s.respondError(c, domain.Errorf(domain.CodeUnavailable, "the service is stopping; retry"))
}
