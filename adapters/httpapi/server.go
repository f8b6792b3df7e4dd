// Package httpapi is the HTTP JSON API of backupledger (DESIGN §7): backups,
// their archives (download and upload), restores and maintenance, app
// state, logs and the built-in config store under /v1, and the operational
// endpoints /healthz and /readyz. /metrics has a handler of its own
// (MetricsHandler), served on another listener.
//
// Every /v1 request is authenticated in one place (requireAuth) with a bearer
// token; errors are application/problem+json bodies with a stable code,
// mapped to a status in one table (problem.go). A request without a valid
// token is answered without reading its body, and the routes without a
// token take small bodies only, read within UnauthenticatedReadTimeout
// (strangers.go).
package httpapi

import (
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/backupledger/backupledger/usecase"
)

// Defaults of Config.
const (
	DefaultMaxJSONBytes        = 64 << 10
	DefaultMaxDocBytes         = 1 << 20
	DefaultRequestTimeout      = 30 * time.Second
	DefaultMaxUploadBytes      = 2 << 30
	DefaultTransferIdleTimeout = time.Minute
	// DefaultMaxUnauthenticatedBodyBytes bounds the body of a request
	// without a token (a login): ample for a user name and a password of
	// 1,024 bytes.
	DefaultMaxUnauthenticatedBodyBytes = 8 << 10
	// DefaultUnauthenticatedReadTimeout bounds the arrival of such a body.
	DefaultUnauthenticatedReadTimeout = 10 * time.Second
)

// Config configures a Server. The zero value is usable: Validate fills in
// the defaults.
type Config struct {
	// MaxJSONBytes bounds a JSON request body (default 64 KiB).
	MaxJSONBytes int64
	// MaxDocBytes bounds a config document in a PUT (default 1 MiB); it
	// should match the config store's own limit.
	MaxDocBytes int64
	// RequestTimeout bounds how long one command or config store call may
	// take (default 30s); past it the answer is 503 unavailable.
	RequestTimeout time.Duration
	// ProblemBaseURL, when set, makes a problem's "type" the URL
	// ProblemBaseURL + "#" + code (e.g. a link to docs/api.md); otherwise
	// it is "about:blank".
	ProblemBaseURL string
	// MaxUploadBytes bounds an uploaded archive (default 2 GiB): a raw
	// body over it, or a multipart body over it plus a little room for
	// the form's framing, is refused with 413 archive_too_large as soon as
	// the limit is crossed. It should match the archive store's own limit.
	MaxUploadBytes int64
	// TransferIdleTimeout is how long an archive download or upload may
	// make no progress before its connection is dropped (default 1 min).
	// Archive routes have no overall time limit: while bytes move they
	// push the connection's deadlines ahead, overriding the http.Server's
	// ReadTimeout and WriteTimeout, and RequestTimeout does not apply.
	TransferIdleTimeout time.Duration
	// MaxUnauthenticatedBodyBytes bounds the body of a request to a route
	// that takes no token (POST /v1/sessions; default 8 KiB): a larger
	// declared body is refused unread with 413 payload_too_large.
	MaxUnauthenticatedBodyBytes int64
	// UnauthenticatedReadTimeout is how long the body of a request to a
	// route that takes no token may take to arrive after its headers
	// (default 10s); past it the request is refused and its connection
	// closed. The http.Server's ReadTimeout bounds every other body.
	UnauthenticatedReadTimeout time.Duration
	// MetricsToken, when set, is the bearer token MetricsHandler requires
	// (Prometheus' authorization setting); empty serves /metrics to anyone
	// who reaches its listener.
	MetricsToken string
}

// Validate fills in defaults and reports every invalid field at once.
func (c *Config) Validate() error {
	var errs []error
	if c.MaxJSONBytes == 0 {
		c.MaxJSONBytes = DefaultMaxJSONBytes
	}
	if c.MaxDocBytes == 0 {
		c.MaxDocBytes = DefaultMaxDocBytes
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = DefaultRequestTimeout
	}
	if c.MaxUploadBytes == 0 {
		c.MaxUploadBytes = DefaultMaxUploadBytes
	}
	if c.TransferIdleTimeout == 0 {
		c.TransferIdleTimeout = DefaultTransferIdleTimeout
	}
	if c.MaxUnauthenticatedBodyBytes == 0 {
		c.MaxUnauthenticatedBodyBytes = DefaultMaxUnauthenticatedBodyBytes
	}
	if c.UnauthenticatedReadTimeout == 0 {
		c.UnauthenticatedReadTimeout = DefaultUnauthenticatedReadTimeout
	}
	if c.MaxJSONBytes < 0 {
		errs = append(errs, fmt.Errorf("max JSON bytes must be positive, got %d", c.MaxJSONBytes))
	}
	if c.MaxDocBytes < 0 {
		errs = append(errs, fmt.Errorf("max document bytes must be positive, got %d", c.MaxDocBytes))
	}
	if c.RequestTimeout < 0 {
		errs = append(errs, fmt.Errorf("request timeout must be positive, got %s", c.RequestTimeout))
	}
	if c.MaxUploadBytes < 0 {
		errs = append(errs, fmt.Errorf("max upload bytes must be positive, got %d", c.MaxUploadBytes))
	}
	if c.TransferIdleTimeout < 0 {
		errs = append(errs, fmt.Errorf("transfer idle timeout must be positive, got %s", c.TransferIdleTimeout))
	}
	if c.MaxUnauthenticatedBodyBytes < 0 {
		errs = append(errs, fmt.Errorf("max unauthenticated body bytes must be positive, got %d", c.MaxUnauthenticatedBodyBytes))
	}
	if c.UnauthenticatedReadTimeout < 0 {
		errs = append(errs, fmt.Errorf("unauthenticated read timeout must be positive, got %s", c.UnauthenticatedReadTimeout))
	}
	return errors.Join(errs...)
}

// Deps are the parts a Server talks to.
type Deps struct {
	// App is the application: every use case of the API. Required.
	App  *usecase.Application
	Auth usecase.Authenticator // required
	// Ready reports whether the projections have caught up at start;
	// /readyz and every /v1 route answer 503 until it does. Nil means
	// always ready.
	Ready func() bool
	// Readiness, if set, says why the server is not ready (nil when it
	// is) at /readyz: beyond Ready, whether it can take writes now. Nil
	// answers /readyz from Ready.
	Readiness func() error
	// Metrics serves GET /metrics of MetricsHandler (not of Handler); nil
	// answers 404 there.
	Metrics http.Handler
	// OpenAPI is the OpenAPI document of this API (docs.OpenAPI), served
	// without a token at GET /v1/openapi.yaml; nil answers 404.
	OpenAPI []byte
	// NewID makes a command id when the client sends no Idempotency-Key;
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

// Server is the HTTP API. It holds no listener; Handler is served by an
// http.Server that the caller owns.
type Server struct {
	cfg  Config
	deps Deps
	log  *slog.Logger
	// app holds the use cases that this server answers.
	app     *usecase.Application
	handler http.Handler
	// metricsHandler serves GET /metrics, for a listener of its own.
	metricsHandler http.Handler
	// bufs holds the copy buffers of downloads.
	bufs sync.Pool
	// patterns are the patterns of the routes registered, for Routes.
	patterns []string
}

// New returns a Server. It returns an error for an invalid Config or
// missing Deps.
func New(cfg Config, deps Deps) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("httpapi config: %w", err)
	}
	if err := deps.validate(); err != nil {
		return nil, fmt.Errorf("httpapi deps: %w", err)
	}
	s := &Server{cfg: cfg, deps: deps, log: deps.Logger, app: deps.App}
	s.bufs.New = func() any { b := make([]byte, copyBufferSize); return &b }
	s.handler = s.logRequests(s.routes())
	s.metricsHandler = s.logRequests(s.metricsRoutes())
	return s, nil
}

// Handler returns the handler of every route of the API. It does not serve
// /metrics: MetricsHandler does.
func (s *Server) Handler() http.Handler { return s.handler }

// Routes returns the pattern of every route the server answers, as
// registered on its http.ServeMux ("GET /v1/apps/{app}/config/{key...}"),
// sorted. A GET route also answers HEAD. The /v1/ subtree that leads to
// the authenticated routes is not a route of its own.
func (s *Server) Routes() []string {
	return slices.Sorted(slices.Values(s.patterns))
}

// record notes the pattern of a route for Routes.
func (s *Server) record(pattern string) {
	s.patterns = append(s.patterns, pattern)
}

// handle registers an unauthenticated route on the root mux: its body is
// bounded in size and in time (strangers.go).
func (s *Server) handle(root *http.ServeMux, pattern string, h http.Handler) {
	s.record(pattern)
	root.Handle(pattern, s.boundStrangerBody(h))
}

// routes builds the route table: operations at the root, the API under /v1
// behind the readiness gate and authentication. /metrics is not among them
// (metricsRoutes).
func (s *Server) routes() http.Handler {
	api := http.NewServeMux()
	s.v1(api, "POST /v1/apps/{app}/backups", s.createBackup)
	s.v1(api, "GET /v1/apps/{app}/backups", s.listBackups)
	s.v1(api, "GET /v1/backups", s.allBackups)
	s.v1(api, "GET /v1/apps/{app}/backups/{id}", s.getBackup)
	s.v1(api, "PATCH /v1/apps/{app}/backups/{id}", s.renameBackup)
	s.v1(api, "DELETE /v1/apps/{app}/backups/{id}", s.deleteBackup)
	s.v1(api, "POST /v1/apps/{app}/backups/{id}/verify", s.verifyBackup)
	s.v1(api, "POST /v1/apps/{app}/backups/quote", s.quote)
	s.v1(api, "GET /v1/apps/{app}/backups/{id}/archive", s.downloadArchive)
	s.v1(api, "POST /v1/apps/{app}/backups/upload", s.uploadArchive)
	s.v1(api, "GET /v1/apps/{app}", s.getApp)
	s.v1(api, "GET /v1/apps/{app}/logs", s.appLog)
	s.v1(api, "GET /v1/apps/{app}/retention", s.retention)
	s.v1(api, "GET /v1/apps/{app}/backups/{id}/logs", s.backupLog)
	s.v1(api, "GET /v1/apps/{app}/config", s.listDocs)
	s.v1(api, "PUT /v1/apps/{app}/config/{key...}", s.putDoc)
	s.v1(api, "GET /v1/apps/{app}/config/{key...}", s.getDoc)
	s.v1(api, "DELETE /v1/apps/{app}/config/{key...}", s.deleteDoc)
	s.v1(api, "POST /v1/apps/{app}/maintenance", s.startMaintenance)
	s.v1(api, "DELETE /v1/apps/{app}/maintenance", s.endMaintenance)
	s.v1(api, "POST /v1/apps/{app}/restores", s.createRestore)
	s.v1(api, "GET /v1/apps/{app}/restores", s.listRestores)
	s.v1(api, "GET /v1/apps/{app}/restores/{id}", s.getRestore)

	root := http.NewServeMux()
	s.identityRoutes(api, root)
	s.lifecycleRoutes(api)
	s.keyRoutes(api, root)
	s.handle(root, "GET /healthz", http.HandlerFunc(s.healthz))
	s.handle(root, "GET /readyz", http.HandlerFunc(s.readyz))
	s.handle(root, "GET /v1/openapi.yaml", http.HandlerFunc(s.openAPI))
	root.Handle("/v1/", s.requireReady(s.requireAuth(s.problemRouter(api))))
	return s.problemRouter(root)
}
