package notify

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/mail"
	"strings"
	"time"
)

// Defaults of Config and SMTPConfig.
const (
	DefaultReplicas      = 1
	DefaultWorkers       = 4
	DefaultTimeout       = 10 * time.Second
	DefaultBackoff       = 5 * time.Second
	DefaultMaxBackoff    = 10 * time.Minute
	DefaultRetryFor      = 24 * time.Hour
	DefaultLogMaxAge     = 30 * 24 * time.Hour
	DefaultLogPerWebhook = 1000
	DefaultUserAgent     = "backupledger"
	DefaultSMTPPort      = 587
	DefaultSMTPTimeout   = 30 * time.Second
)

// Values of SMTPConfig.StartTLS.
const (
	// StartTLSAuto uses STARTTLS when the server offers it (the default).
	StartTLSAuto = "auto"
	// StartTLSAlways refuses to send without STARTTLS.
	StartTLSAlways = "always"
	// StartTLSNever never uses STARTTLS.
	StartTLSNever = "never"
)

// SMTPConfig configures the SMTP relay that e-mails go through. Only
// STARTTLS is supported, not implicit TLS (port 465).
type SMTPConfig struct {
	// Host is the relay's host name or address; empty turns e-mail off:
	// e-mail jobs are then acknowledged and logged as not sent.
	Host string
	// Port is the relay's port, default 587.
	Port int
	// StartTLS is StartTLSAuto (default), StartTLSAlways or StartTLSNever.
	StartTLS string
	// User and Password authenticate with AUTH PLAIN when User is set; the
	// password is sent only over TLS or to localhost.
	User, Password string
	// From is the sender address (RFC 5322, e.g. "Backups
	// <backups@example.com>"); required when Host is set.
	From string
	// TLSConfig is the TLS configuration of STARTTLS; nil means the system
	// roots. Its ServerName defaults to Host.
	TLSConfig *tls.Config
	// Timeout bounds the whole conversation of one e-mail, default 30s.
	Timeout time.Duration
}

// LogValue implements slog.LogValuer: the configuration without the
// password.
func (c SMTPConfig) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("host", c.Host),
		slog.Int("port", c.Port),
		slog.String("starttls", c.StartTLS),
		slog.String("user", c.User),
		slog.Bool("password_set", c.Password != ""),
		slog.String("from", c.From),
		slog.Duration("timeout", c.Timeout),
	)
}

var _ slog.LogValuer = SMTPConfig{}

// Config configures the streams, the consumer and the deliveries. The zero
// value of a field means its default.
type Config struct {
	// Replicas is the number of replicas of both streams, default 1.
	Replicas int
	// Workers is how many deliveries this process makes at once, default 4.
	Workers int
	// Timeout bounds one webhook POST, default 10s.
	Timeout time.Duration
	// Backoff is the delay before the first retry, default 5s; it doubles
	// with every attempt.
	Backoff time.Duration
	// MaxBackoff caps the delay between two attempts, default 10m (or
	// Backoff, if that is longer).
	MaxBackoff time.Duration
	// RetryFor is how long a job is retried after it was enqueued, default
	// 24h; the first failed attempt after it gives up.
	RetryFor time.Duration
	// LogMaxAge is how long the delivery log keeps an entry, default 30 days.
	LogMaxAge time.Duration
	// LogPerWebhook is how many entries of the delivery log are kept per
	// webhook, default 1000.
	LogPerWebhook int
	// SMTP configures e-mail; its zero value turns e-mail off.
	SMTP SMTPConfig
	// Client makes the webhook requests; nil means a default client. It
	// never follows redirects, also when it is given here (this package
	// uses a copy with its own CheckRedirect), and every request is bounded
	// by Timeout. Unless AllowPrivateTargets, its Transport must be nil or
	// an *http.Transport, of which a copy is used with this package's own
	// dialer and without a proxy.
	Client *http.Client
	// AllowPrivateTargets lets webhook requests connect to loopback,
	// private, link-local and other non-public addresses
	// (domain.NonPublicAddr), and through the proxy of the environment or
	// of Client. Off (the default), every address a request connects to is
	// checked after DNS resolution, so that a name resolving (or
	// rebinding) to such an address is refused as well as the address
	// itself; requests go directly, never through a proxy (which would
	// resolve the name itself); and a refused attempt is recorded as
	// "target address not allowed" and given up at once. The identity
	// service's IdentityConfig.AllowPrivateWebhookTargets is the same
	// setting at registration.
	AllowPrivateTargets bool
	// OnAttempt, when set, is told the result of every webhook attempt
	// (ResultDelivered, ...), for metrics.
	OnAttempt func(result string)
	// UserAgent is the User-Agent of the webhook requests, default
	// "backupledger".
	UserAgent string

	// resolver resolves the host names of the webhook requests when
	// private targets are not allowed; nil means the default resolver.
	// Only the tests set it, to have a name resolve to a loopback address.
	resolver *net.Resolver
}

// withDefaults returns c with every zero field set to its default.
func (c Config) withDefaults() Config {
	if c.Replicas == 0 {
		c.Replicas = DefaultReplicas
	}
	if c.Workers == 0 {
		c.Workers = DefaultWorkers
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.Backoff == 0 {
		c.Backoff = DefaultBackoff
	}
	if c.MaxBackoff == 0 {
		c.MaxBackoff = max(DefaultMaxBackoff, c.Backoff)
	}
	if c.RetryFor == 0 {
		c.RetryFor = DefaultRetryFor
	}
	if c.LogMaxAge == 0 {
		c.LogMaxAge = DefaultLogMaxAge
	}
	if c.LogPerWebhook == 0 {
		c.LogPerWebhook = DefaultLogPerWebhook
	}
	if c.UserAgent == "" {
		c.UserAgent = DefaultUserAgent
	}
	if c.SMTP.Port == 0 {
		c.SMTP.Port = DefaultSMTPPort
	}
	if c.SMTP.StartTLS == "" {
		c.SMTP.StartTLS = StartTLSAuto
	}
	if c.SMTP.Timeout == 0 {
		c.SMTP.Timeout = DefaultSMTPTimeout
	}
	return c
}

// Validate reports every invalid field at once (errors.Join). A zero field
// is valid: it takes its default.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	if c.Replicas < 1 || c.Replicas > 5 {
		errs = append(errs, fmt.Errorf("replicas must be 1 to 5, got %d", c.Replicas))
	}
	if c.Workers < 1 || c.Workers > 1000 {
		errs = append(errs, fmt.Errorf("workers must be 1 to 1000, got %d", c.Workers))
	}
	positive := []struct {
		name string
		d    time.Duration
	}{
		{"timeout", c.Timeout},
		{"backoff", c.Backoff},
		{"max backoff", c.MaxBackoff},
		{"retry for", c.RetryFor},
		{"log max age", c.LogMaxAge},
		{"smtp timeout", c.SMTP.Timeout},
	}
	for _, p := range positive {
		if p.d < 0 {
			errs = append(errs, fmt.Errorf("%s must not be negative, got %s", p.name, p.d))
		}
	}
	if c.Backoff > 0 && c.MaxBackoff > 0 && c.MaxBackoff < c.Backoff {
		errs = append(errs, fmt.Errorf("max backoff %s must not be less than backoff %s", c.MaxBackoff, c.Backoff))
	}
	if c.LogMaxAge > 0 && c.LogMaxAge < time.Second {
		errs = append(errs, fmt.Errorf("log max age must be at least 1s, got %s", c.LogMaxAge))
	}
	if c.LogPerWebhook < 1 {
		errs = append(errs, fmt.Errorf("log per webhook must be at least 1, got %d", c.LogPerWebhook))
	}
	if strings.ContainsAny(c.UserAgent, "\r\n") {
		errs = append(errs, errors.New("user agent must not contain line breaks"))
	}
	if !c.AllowPrivateTargets && c.Client != nil && c.Client.Transport != nil {
		if t, ok := c.Client.Transport.(*http.Transport); !ok || t == nil {
			errs = append(errs, fmt.Errorf("client transport %T cannot check the addresses webhooks connect to: use an *http.Transport, or allow private targets", c.Client.Transport))
		}
	}
	errs = append(errs, c.SMTP.validate()...)
	return errors.Join(errs...)
}

// validate returns the errors of an SMTP configuration with defaults.
func (c SMTPConfig) validate() []error {
	var errs []error
	switch c.StartTLS {
	case StartTLSAuto, StartTLSAlways, StartTLSNever:
	default:
		errs = append(errs, fmt.Errorf("smtp starttls must be %q, %q or %q, got %q", StartTLSAuto, StartTLSAlways, StartTLSNever, c.StartTLS))
	}
	if c.Port < 1 || c.Port > 65535 {
		errs = append(errs, fmt.Errorf("smtp port must be 1 to 65535, got %d", c.Port))
	}
	if strings.ContainsAny(c.Host, "\r\n \t/") {
		errs = append(errs, fmt.Errorf("smtp host %q is not a host name", c.Host))
	}
	if c.Password != "" && c.User == "" {
		errs = append(errs, errors.New("smtp password is set without a user"))
	}
	if strings.ContainsAny(c.User, "\r\n\x00") || strings.ContainsAny(c.Password, "\r\n\x00") {
		errs = append(errs, errors.New("smtp user and password must not contain line breaks or NUL"))
	}
	switch {
	case c.Host != "" && c.From == "":
		errs = append(errs, errors.New("smtp from must be set when smtp host is set"))
	case c.From != "":
		if _, err := parseAddress(c.From); err != nil {
			errs = append(errs, fmt.Errorf("smtp from: %w", err))
		}
	}
	return errs
}

// parseAddress parses one RFC 5322 address and refuses line breaks, which
// could inject headers.
func parseAddress(s string) (*mail.Address, error) {
	if strings.ContainsAny(s, "\r\n") {
		return nil, errors.New("address must not contain line breaks")
	}
	a, err := mail.ParseAddress(s)
	if err != nil {
		return nil, fmt.Errorf("address %q: %w", s, err)
	}
	return a, nil
}
