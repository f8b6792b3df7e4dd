package notify

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"net/smtp"
	"net/textproto"
	"strconv"
	"strings"
	"time"

	"github.com/backupledger/backupledger/adapters/internal/workqueue"
)

// emailLog returns log with the keys of e-mail job j: the number of
// recipients, not their addresses.
func emailLog(log *slog.Logger, j *EmailJob) *slog.Logger {
	log = log.With("email_id", j.ID, "event_id", j.EventID, "event_type", j.EventType, "recipients", len(j.To))
	if j.App != "" {
		log = log.With("app", j.App)
	}
	return log
}

// deliverEmail makes one attempt to send j, the job of m, and returns the
// outcome that settles m. E-mail attempts are logged with slog only (m.Log
// has the message's sequence, the attempt and the job's keys: emailLog),
// not in a webhook's delivery log.
func (n *Notifier) deliverEmail(ctx context.Context, m *workqueue.Msg, j *EmailJob) workqueue.Outcome {
	log := m.Log
	if n.cfg.SMTP.Host == "" {
		log.Info("e-mail is off (no SMTP host); e-mail not sent")
		return workqueue.Ack()
	}
	start := time.Now()
	err := n.sendMail(ctx, j)
	took := time.Since(start)
	switch {
	case err == nil:
		log.Info("e-mail sent", "duration", took)
		return workqueue.Ack()
	case ctx.Err() != nil:
		return handBack(log)
	case permanentSMTP(err) || n.expired(m.Stored, time.Now()):
		log.Error("e-mail gave up", "err", err, "permanent", permanentSMTP(err), "duration", took)
		return workqueue.Term("gave up: " + clean(err.Error()))
	default:
		delay := m.Backoff()
		log.Warn("e-mail failed; retrying", "err", err, "retry_in", delay, "duration", took)
		return workqueue.Retry(delay)
	}
}

// permanentSMTP reports whether err is an SMTP answer 5xx, which retrying
// cannot change.
func permanentSMTP(err error) bool {
	var te *textproto.Error
	return errors.As(err, &te) && te.Code >= 500 && te.Code < 600
}

// sendMail sends j through the relay in one conversation bounded by
// SMTP.Timeout and ctx.
func (n *Notifier) sendMail(ctx context.Context, j *EmailJob) error {
	c := n.cfg.SMTP
	from := n.from
	var err error
	to := make([]*mail.Address, len(j.To))
	for i, s := range j.To {
		if to[i], err = parseAddress(s); err != nil {
			return fmt.Errorf("recipient: %w", err)
		}
	}
	msg, err := buildMessage(from, to, j, time.Now())
	if err != nil {
		return err
	}

	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	addr := net.JoinHostPort(c.Host, strconv.Itoa(c.Port))
	var dialer net.Dialer
	conn, err := dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("dial smtp %s: %w", addr, err)
	}
	defer conn.Close()
	if deadline, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(deadline)
	}
	// Cancelling ctx ends a conversation that waits for the server.
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	cl, err := smtp.NewClient(conn, c.Host)
	if err != nil {
		return fmt.Errorf("smtp greeting: %w", err)
	}
	defer cl.Close()
	if err := cl.Hello(n.hello); err != nil {
		return fmt.Errorf("smtp ehlo: %w", err)
	}
	if c.StartTLS != StartTLSNever {
		offered, _ := cl.Extension("STARTTLS")
		switch {
		case offered:
			tc := &tls.Config{MinVersion: tls.VersionTLS12}
			if c.TLSConfig != nil {
				tc = c.TLSConfig.Clone()
			}
			if tc.ServerName == "" {
				tc.ServerName = c.Host
			}
			if err := cl.StartTLS(tc); err != nil {
				return fmt.Errorf("smtp starttls: %w", err)
			}
		case c.StartTLS == StartTLSAlways:
			return errors.New("smtp server does not offer STARTTLS, which the configuration requires")
		}
	}
	if c.User != "" {
		if ok, _ := cl.Extension("AUTH"); !ok {
			return errors.New("smtp server does not offer AUTH, which the configuration requires")
		}
		// PlainAuth sends the password only over TLS or to localhost.
		if err := cl.Auth(smtp.PlainAuth("", c.User, c.Password, c.Host)); err != nil {
			return fmt.Errorf("smtp auth: %w", err)
		}
	}
	if err := cl.Mail(from.Address); err != nil {
		return fmt.Errorf("smtp mail from: %w", err)
	}
	for _, a := range to {
		if err := cl.Rcpt(a.Address); err != nil {
			return fmt.Errorf("smtp rcpt to %s: %w", a.Address, err)
		}
	}
	w, err := cl.Data()
	if err != nil {
		return fmt.Errorf("smtp data: %w", err)
	}
	if _, err := w.Write(msg); err != nil {
		return fmt.Errorf("smtp data: %w", err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("smtp data: %w", err)
	}
	// The server has taken the message; a failed QUIT does not change that.
	_ = cl.Quit()
	return nil
}

// buildMessage returns the message of j: headers and a quoted-printable
// text/plain body, with CRLF line ends.
// The job is valid, so that no field can break a header line.
func buildMessage(from *mail.Address, to []*mail.Address, j *EmailJob, now time.Time) ([]byte, error) {
	var b bytes.Buffer
	tos := make([]string, len(to))
	for i, a := range to {
		tos[i] = a.String()
	}
	header := func(k, v string) {
		b.WriteString(k)
		b.WriteString(": ")
		b.WriteString(v)
		b.WriteString("\r\n")
	}
	header("From", from.String())
	header("To", strings.Join(tos, ", "))
	header("Subject", mime.QEncoding.Encode("utf-8", j.Subject))
	header("Date", now.Format(time.RFC1123Z))
	header("Message-ID", "<"+j.ID+"@backupledger>")
	header("MIME-Version", "1.0")
	header("Content-Type", "text/plain; charset=utf-8")
	header("Content-Transfer-Encoding", "quoted-printable")
	header(HeaderEvent, j.EventType)
	b.WriteString("\r\n")
	qp := quotedprintable.NewWriter(&b)
	if _, err := qp.Write([]byte(j.Body)); err != nil {
		return nil, fmt.Errorf("encode e-mail body: %w", err)
	}
	if err := qp.Close(); err != nil {
		return nil, fmt.Errorf("encode e-mail body: %w", err)
	}
	return b.Bytes(), nil
}
