package notify_test

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"mime"
	"mime/quotedprintable"
	"net/mail"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/backupledger/backupledger/adapters/notify"
	"github.com/backupledger/backupledger/domain"
	"github.com/backupledger/backupledger/test/natstest"
	"github.com/backupledger/backupledger/test/smtptest"
)

// emailJob returns an e-mail job of event ev with a non-ASCII subject and
// body, a long line and a line that starts with a dot.
func emailJob(ev string) notify.EmailJob {
	return notify.EmailJob{
		ID:        ev + ".email",
		To:        []string{"ops@example.com", "Jürgen Müller <juergen@example.com>"},
		Subject:   "Sicherung fertig: Grüße ✓",
		Body:      "Die Sicherung von shop ist fertig.\nGrüße aus Köln\n.a line with a dot\n" + strings.Repeat("long line ", 20) + "\n",
		EventID:   ev,
		EventType: "backup.completed",
		App:       "shop",
	}
}

// smtpConfig returns the configuration for the relay s.
func smtpConfig(s *smtptest.Server) notify.SMTPConfig {
	return notify.SMTPConfig{Host: "127.0.0.1", Port: s.Port(), From: "Backups <backups@example.com>", Timeout: 5 * time.Second}
}

// waitMails waits until s has accepted n e-mails and returns them.
func waitMails(t *testing.T, s *smtptest.Server, n int) []smtptest.Mail {
	t.Helper()
	var mails []smtptest.Mail
	natstest.CheckFor(t, wait, 10*time.Millisecond, func() error {
		_, _, mails = s.Stats()
		if len(mails) < n {
			return fmt.Errorf("%d e-mails accepted, want %d", len(mails), n)
		}
		return nil
	})
	return mails
}

func TestEmailIsSent(t *testing.T) {
	t.Parallel()
	relay := smtptest.Start(t, &smtptest.Server{})
	cfg := testConfig()
	cfg.SMTP = smtpConfig(relay)
	s := newServer(t, cfg)
	rec := newLogRecorder()
	n, js := newNotifier(t, s, cfg, newHooks(), loggerOf(rec))
	job := emailJob("ev1")
	if err := n.EnqueueEmail(t.Context(), job); err != nil {
		t.Fatalf("enqueue: %v", err)
	}
	runInBackground(t, "notifier", n.Run)
	m := waitMails(t, relay, 1)[0]
	waitEmpty(t, js)

	if m.From != "backups@example.com" {
		t.Errorf("MAIL FROM %q, want backups@example.com", m.From)
	}
	if want := []string{"ops@example.com", "juergen@example.com"}; !slices.Equal(m.To, want) {
		t.Errorf("RCPT TO %q, want %q", m.To, want)
	}
	msg, err := mail.ReadMessage(bytes.NewReader(m.Data))
	if err != nil {
		t.Fatalf("read message: %v", err)
	}
	h := msg.Header
	if from, err := mail.ParseAddress(h.Get("From")); err != nil || from.Address != "backups@example.com" || from.Name != "Backups" {
		t.Errorf("From %q (%v), want Backups <backups@example.com>", h.Get("From"), err)
	}
	to, err := h.AddressList("To")
	if err != nil || len(to) != 2 || to[0].Address != "ops@example.com" || to[1].Address != "juergen@example.com" || to[1].Name != "Jürgen Müller" {
		t.Errorf("To %q (%v), want both recipients with the name decoded", h.Get("To"), err)
	}
	raw := h.Get("Subject")
	if !strings.HasPrefix(strings.ToLower(raw), "=?utf-8?q?") {
		t.Errorf("Subject %q is not Q-encoded", raw)
	}
	subject, err := new(mime.WordDecoder).DecodeHeader(raw)
	if err != nil || subject != job.Subject {
		t.Errorf("Subject decodes to %q (%v), want %q", subject, err, job.Subject)
	}
	for k, want := range map[string]string{
		"Message-Id":                "<ev1.email@backupledger>",
		"Mime-Version":              "1.0",
		"Content-Type":              "text/plain; charset=utf-8",
		"Content-Transfer-Encoding": "quoted-printable",
		notify.HeaderEvent:          "backup.completed",
	} {
		if got := h.Get(k); got != want {
			t.Errorf("%s: %q, want %q", k, got, want)
		}
	}
	if d, err := h.Date(); err != nil || time.Since(d) > time.Minute {
		t.Errorf("Date %q (%v), want now", h.Get("Date"), err)
	}
	body, err := io.ReadAll(quotedprintable.NewReader(msg.Body))
	if err != nil {
		t.Fatalf("decode body: %v", err)
	}
	if got := strings.ReplaceAll(string(body), "\r\n", "\n"); got != job.Body {
		t.Errorf("body %q, want %q", got, job.Body)
	}
	if m.TLS {
		t.Error("the relay offers no STARTTLS, yet the conversation was encrypted")
	}
	if recs := rec.records("e-mail sent"); len(recs) != 1 || recs[0].attrs["attempt"] != "1" || recs[0].attrs["email_id"] != "ev1.email" {
		t.Errorf("log records of the sent e-mail: %+v", recs)
	}
	if rec.contains("juergen@example.com") {
		t.Error("a recipient address was logged")
	}
}

func TestEmailWithStartTLSAndAuth(t *testing.T) {
	t.Parallel()
	cert, roots := smtptest.SelfSigned(t)
	const password = "p4ss-w0rd"
	relay := smtptest.Start(t, &smtptest.Server{
		TLS:  &tls.Config{Certificates: []tls.Certificate{cert}},
		User: "mailer",
		Pass: password,
	})
	cfg := testConfig()
	cfg.SMTP = smtpConfig(relay)
	cfg.SMTP.StartTLS = notify.StartTLSAlways
	cfg.SMTP.TLSConfig = &tls.Config{RootCAs: roots}
	cfg.SMTP.User, cfg.SMTP.Password = "mailer", password
	s := newServer(t, cfg)
	rec := newLogRecorder()
	n, js := newNotifier(t, s, cfg, newHooks(), loggerOf(rec))
	if err := n.EnqueueEmail(t.Context(), emailJob("ev1")); err != nil {
		t.Fatalf("enqueue: %v", err)
	}
	runInBackground(t, "notifier", n.Run)
	m := waitMails(t, relay, 1)[0]
	waitEmpty(t, js)
	if !m.TLS || m.User != "mailer" {
		t.Errorf("e-mail accepted with tls %v, user %q; want STARTTLS and AUTH as mailer", m.TLS, m.User)
	}
	if len(m.To) != 2 {
		t.Errorf("RCPT TO %q, want 2 recipients", m.To)
	}
	if rec.contains(password) {
		t.Error("the SMTP password was logged")
	}
}

func TestEmailStartTLSAlwaysRefusesPlainRelay(t *testing.T) {
	t.Parallel()
	relay := smtptest.Start(t, &smtptest.Server{})
	cfg := testConfig()
	cfg.RetryFor = 200 * time.Millisecond
	cfg.SMTP = smtpConfig(relay)
	cfg.SMTP.StartTLS = notify.StartTLSAlways
	s := newServer(t, cfg)
	rec := newLogRecorder()
	n, js := newNotifier(t, s, cfg, newHooks(), loggerOf(rec))
	if err := n.EnqueueEmail(t.Context(), emailJob("ev1")); err != nil {
		t.Fatalf("enqueue: %v", err)
	}
	runInBackground(t, "notifier", n.Run)
	waitEmpty(t, js)
	if tx, mails, _ := relay.Stats(); tx != 0 || mails != 0 {
		t.Errorf("%d transactions, %d MAIL commands without STARTTLS; want none", tx, mails)
	}
	recs := rec.records("e-mail gave up")
	if len(recs) != 1 || !strings.Contains(recs[0].attrs["err"], "STARTTLS") {
		t.Errorf("gave-up records %+v, want one about STARTTLS", recs)
	}
}

func TestEmailTemporaryFailureIsRetried(t *testing.T) {
	t.Parallel()
	relay := smtptest.Start(t, &smtptest.Server{Answer: func(n int) string {
		if n == 1 {
			return "451 4.3.0 try again later"
		}
		return ""
	}})
	cfg := testConfig()
	cfg.SMTP = smtpConfig(relay)
	s := newServer(t, cfg)
	rec := newLogRecorder()
	n, js := newNotifier(t, s, cfg, newHooks(), loggerOf(rec))
	if err := n.EnqueueEmail(t.Context(), emailJob("ev1")); err != nil {
		t.Fatalf("enqueue: %v", err)
	}
	runInBackground(t, "notifier", n.Run)
	waitMails(t, relay, 1)
	waitEmpty(t, js)
	if tx, _, mails := relay.Stats(); tx != 2 || len(mails) != 1 {
		t.Errorf("%d transactions, %d e-mails; want 2 and 1", tx, len(mails))
	}
	if recs := rec.records("e-mail failed; retrying"); len(recs) != 1 || !strings.Contains(recs[0].attrs["err"], "451") {
		t.Errorf("retry records %+v, want one with the 451", recs)
	}
	if recs := rec.records("e-mail sent"); len(recs) != 1 || recs[0].attrs["attempt"] != "2" {
		t.Errorf("sent records %+v, want one on attempt 2", recs)
	}
}

func TestEmailPermanentFailureGivesUpAtOnce(t *testing.T) {
	t.Parallel()
	relay := smtptest.Start(t, &smtptest.Server{Answer: func(int) string { return "550 5.1.1 mailbox unavailable" }})
	cfg := testConfig()
	cfg.SMTP = smtpConfig(relay)
	s := newServer(t, cfg)
	rec := newLogRecorder()
	n, js := newNotifier(t, s, cfg, newHooks(), loggerOf(rec))
	if err := n.EnqueueEmail(t.Context(), emailJob("ev1")); err != nil {
		t.Fatalf("enqueue: %v", err)
	}
	runInBackground(t, "notifier", n.Run)
	waitEmpty(t, js)
	// The job is gone, so these counts are final.
	if tx, _, mails := relay.Stats(); tx != 1 || len(mails) != 0 {
		t.Errorf("%d transactions, %d e-mails; want 1 and none", tx, len(mails))
	}
	recs := rec.records("e-mail gave up")
	if len(recs) != 1 || recs[0].attrs["attempt"] != "1" || recs[0].attrs["permanent"] != "true" {
		t.Errorf("gave-up records %+v, want one permanent on attempt 1", recs)
	}
}

func TestEmailOffAcknowledgesWithoutSending(t *testing.T) {
	t.Parallel()
	cfg := testConfig() // no SMTP host
	s := newServer(t, cfg)
	rec := newLogRecorder()
	n, js := newNotifier(t, s, cfg, newHooks(), loggerOf(rec))
	if err := n.EnqueueEmail(t.Context(), emailJob("ev1")); err != nil {
		t.Fatalf("enqueue: %v", err)
	}
	runInBackground(t, "notifier", n.Run)
	waitEmpty(t, js)
	if recs := rec.records("e-mail is off (no SMTP host); e-mail not sent"); len(recs) != 1 {
		t.Errorf("%d records of the unsent e-mail, want 1", len(recs))
	}
}

func TestEnqueueEmailRefusesHeaderInjection(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	s := newServer(t, cfg)
	n, js := newNotifier(t, s, cfg, newHooks(), nil)
	j := emailJob("ev1")
	j.Subject = "Backup done\r\nBcc: x@example.com"
	err := n.EnqueueEmail(t.Context(), j)
	if domain.Code(err) != domain.CodeInvalidArgument || !strings.Contains(err.Error(), "line breaks") {
		t.Errorf("EnqueueEmail = %v, want an invalid argument about line breaks", err)
	}
	if got := streamMsgs(t, js); got != 0 {
		t.Errorf("stream holds %d jobs, want none", got)
	}
}
