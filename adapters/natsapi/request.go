package natsapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/backupledger/backupledger/domain"
	"github.com/backupledger/backupledger/projections"
	"github.com/backupledger/backupledger/usecase"
)

// call is one request being handled.
type call struct {
	req micro.Request
	p   domain.Principal
	// hdr holds the headers of the response.
	hdr nats.Header
	// for the log line
	app, commandID, code string
}

// serve authenticates a request, runs its handler and responds.
func (s *Service) serve(e endpoint, req micro.Request) {
	start := time.Now()
	c := &call{req: req, hdr: nats.Header{}}
	defer func() {
		if v := recover(); v != nil {
			s.log.Error("panic in handler", "subject", req.Subject(), "panic", v)
			s.respondError(c, fmt.Errorf("panic: %v", v))
		}
		attrs := []slog.Attr{slog.String("subject", req.Subject()), slog.Duration("duration", time.Since(start))}
		for _, a := range [][2]string{{"actor", c.p.ID}, {"app", c.app}, {"command_id", c.commandID}, {"code", c.code}} {
			if a[1] != "" {
				attrs = append(attrs, slog.String(a[0], a[1]))
			}
		}
		s.log.LogAttrs(context.Background(), slog.LevelInfo, "nats request", attrs...)
	}()

	timeout := s.cfg.RequestTimeout
	if e.transfer {
		timeout = s.cfg.TransferTimeout
	}
	ctx, cancel := context.WithTimeout(s.ctx, timeout)
	defer cancel()
	v, err := s.run(ctx, e, c)
	if err != nil {
		s.respondError(c, err)
		return
	}
	data, err := json.Marshal(v)
	if err != nil {
		s.respondError(c, fmt.Errorf("encode answer: %w", err))
		return
	}
	if err := s.reply(req, data, c.hdr); err != nil {
		s.log.Warn("respond", "subject", req.Subject(), "err", err)
	}
}

// reply publishes an answer to req's reply subject itself: requests are
// served on goroutines of their own, after micro's handler returned, and
// micro's Respond and Error write the request, which micro reads then for
// its statistics (so its error count stays 0; the request log has them).
func (s *Service) reply(req micro.Request, data []byte, hdr nats.Header) error {
	if req.Reply() == "" {
		return errors.New("request without a reply subject")
	}
	return s.nc.PublishMsg(&nats.Msg{Subject: req.Reply(), Data: data, Header: hdr})
}

// run checks readiness, authenticates (except for a public endpoint: the
// login), and calls the handler.
func (s *Service) run(ctx context.Context, e endpoint, c *call) (any, error) {
	if !s.deps.Ready() {
		return nil, domain.Errorf(domain.CodeUnavailable, "the service is starting: its projections are catching up")
	}
	if e.public {
		return e.h(ctx, c)
	}
	p, err := s.authenticate(ctx, c.req.Headers())
	if err != nil {
		return nil, err
	}
	c.p = p
	return e.h(ctx, c)
}

// authenticate is the one place where a NATS request is authenticated: the
// bearer token of its Authorization header goes to Deps.Auth, and the
// principal it returns is the actor of every command of the request.
func (s *Service) authenticate(ctx context.Context, h micro.Headers) (domain.Principal, error) {
	scheme, token, ok := strings.Cut(strings.TrimSpace(header(h, "Authorization")), " ")
	token = strings.TrimSpace(token)
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return domain.Principal{}, domain.ErrUnauthenticated
	}
	p, err := s.deps.Auth.Authenticate(ctx, token)
	if err != nil {
		return domain.Principal{}, err
	}
	if p.ID == "" {
		return domain.Principal{}, domain.ErrUnauthenticated
	}
	return p, nil
}

// header returns the first value of a header, whatever the case of its
// name (NATS headers are case-sensitive).
func header(h micro.Headers, name string) string {
	if v := nats.Header(h).Get(name); v != "" {
		return v
	}
	for k, v := range h {
		if strings.EqualFold(k, name) && len(v) > 0 {
			return v[0]
		}
	}
	return ""
}

// visible reports whether p may see and act on app: the application's one
// access check.
func (s *Service) visible(p domain.Principal, app string) bool {
	return s.app.Visible(p, app)
}

// checkApp validates an app id from a request (400) and the caller's
// access to it (404, so that callers cannot probe for apps).
func (s *Service) checkApp(c *call, app string) error {
	c.app = app
	return s.app.CheckApp(c.p, app)
}

// decode reads a request body into dst: one JSON object, valid UTF-8
// (RFC 8259) without unpaired surrogate escapes, no unknown fields, nothing
// after it. An empty body leaves dst unchanged.
func decode(data []byte, dst any) error {
	return projections.DecodeRequest(data, dst)
}

// CommandFields are the fields that every command request may carry.
type CommandFields struct {
	// IdempotencyKey is the command id: 1 to 64 characters of
	// [A-Za-z0-9_.-]. The Idempotency-Key header is accepted as well; a new
	// id is made when both are absent.
	IdempotencyKey string `json:"idempotency_key,omitempty"`
	// CorrelationID relates the command to others (or the X-Correlation-Id
	// header); same characters.
	CorrelationID string `json:"correlation_id,omitempty"`
}

// meta builds the Meta of a command from the principal, the request's
// fields and its headers, and echoes the command id in the X-Command-Id
// response header.
func (s *Service) meta(c *call, f CommandFields) (domain.Meta, error) {
	m := domain.Meta{Actor: c.p.ID}
	key, err := field(f.IdempotencyKey, c.req.Headers(), "idempotency_key", "Idempotency-Key")
	if err != nil {
		return m, err
	}
	if key != "" {
		if err := domain.ValidateCommandKey(key); err != nil {
			return m, domain.Errorf(domain.CodeInvalidArgument,
				"idempotency_key must be 1 to %d characters of [A-Za-z0-9_.-]", domain.MaxKeyLen)
		}
		m.CommandID, m.ClientKey = key, true
	} else {
		m.CommandID = s.deps.NewID()
	}
	corr, err := field(f.CorrelationID, c.req.Headers(), "correlation_id", "X-Correlation-Id")
	if err != nil {
		return m, err
	}
	if corr != "" {
		if err := domain.ValidateCommandKey(corr); err != nil {
			return m, domain.Errorf(domain.CodeInvalidArgument,
				"correlation_id must be 1 to %d characters of [A-Za-z0-9_.-]", domain.MaxKeyLen)
		}
		m.CorrelationID = corr
	}
	c.commandID = m.CommandID
	c.hdr.Set("X-Command-Id", m.CommandID)
	return m, nil
}

// field returns a value given in the body or as a header; when both are
// given they must agree.
func field(body string, h micro.Headers, fieldName, headerName string) (string, error) {
	v := strings.TrimSpace(header(h, headerName))
	switch {
	case v == "":
		return body, nil
	case body != "" && body != v:
		return "", domain.Errorf(domain.CodeInvalidArgument, "field %s and header %s disagree", fieldName, headerName)
	}
	return v, nil
}

// decodeApp decodes c's request into dst and checks the app it names
// (*app, filled by the decoding): invalid_argument, not_found.
func (s *Service) decodeApp(c *call, dst any, app *string) error {
	if err := decode(c.req.Data(), dst); err != nil {
		return err
	}
	return s.checkApp(c, *app)
}

// command returns the use-case call of a command of c, with the metadata
// of meta.
func (s *Service) command(c *call, f CommandFields) (*usecase.Call, error) {
	m, err := s.meta(c, f)
	if err != nil {
		return nil, err
	}
	return &usecase.Call{Principal: c.p, Meta: m}, nil
}

// query returns the use-case call of a query of c.
func (c *call) query() *usecase.Call { return &usecase.Call{Principal: c.p} }

// commandAnswer passes a command's answer through, marked Idempotent-Replayed
// when uc answered a retried command.
func commandAnswer(c *call, uc *usecase.Call, v any, err error) (any, error) {
	if err != nil {
		return nil, err
	}
	if uc.Replayed {
		c.hdr.Set("Idempotent-Replayed", "true")
	}
	return v, nil
}
