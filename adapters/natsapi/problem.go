package natsapi

import (
	"encoding/json"
	"strconv"

	"github.com/nats-io/nats.go/micro"

	"github.com/backupledger/backupledger/usecase"
)

// respondError answers err as a micro error: Nats-Service-Error-Code the
// status, Nats-Service-Error the stable code, the body the problem.
// Internal errors show only "internal error" and are logged here with their
// context.
func (s *Service) respondError(c *call, err error) {
	p := usecase.ProblemOf(err, c.req.Subject(), s.cfg.ProblemBaseURL)
	c.code = p.Code
	if p.Internal() {
		s.log.Error("internal error", "subject", c.req.Subject(), "app", c.app, "err", err)
	}
	if p.RetryAfterSeconds > 0 {
		c.hdr.Set("Retry-After", strconv.FormatInt(p.RetryAfterSeconds, 10))
	}
	c.hdr.Set("Content-Type", "application/problem+json")
	body, _ := json.Marshal(p)
	c.hdr.Set(micro.ErrorHeader, p.Code)
	c.hdr.Set(micro.ErrorCodeHeader, strconv.Itoa(p.Status))
	if err := s.reply(c.req, body, c.hdr); err != nil {
		s.log.Warn("respond with error", "subject", c.req.Subject(), "code", p.Code, "err", err)
	}
}
