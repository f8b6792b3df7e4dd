package notify_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/backupledger/backupledger/adapters/notify"
	"github.com/backupledger/backupledger/test/natstest"
)

func TestValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  notify.Config
		want []string // substrings of the error; none means valid
	}{
		{name: "zero value takes the defaults", cfg: notify.Config{}},
		{name: "full", cfg: notify.Config{
			Replicas: 3, Workers: 8, Timeout: time.Second, Backoff: time.Second, MaxBackoff: time.Minute,
			RetryFor: time.Hour, LogMaxAge: time.Hour, LogPerWebhook: 10, UserAgent: "bl/1",
			SMTP: notify.SMTPConfig{Host: "mail.example.com", Port: 25, StartTLS: "always", User: "u", Password: "p", From: "Backups <b@example.com>", Timeout: time.Second},
		}},
		{name: "negative timeout", cfg: notify.Config{Timeout: -time.Second}, want: []string{"timeout must not be negative"}},
		{name: "negative backoff", cfg: notify.Config{Backoff: -1}, want: []string{"backoff must not be negative"}},
		{name: "max backoff below backoff", cfg: notify.Config{Backoff: time.Minute, MaxBackoff: time.Second}, want: []string{"max backoff 1s must not be less than backoff 1m0s"}},
		{name: "negative retry for", cfg: notify.Config{RetryFor: -time.Hour}, want: []string{"retry for must not be negative"}},
		{name: "negative log max age", cfg: notify.Config{LogMaxAge: -time.Hour}, want: []string{"log max age must not be negative"}},
		{name: "tiny log max age", cfg: notify.Config{LogMaxAge: time.Millisecond}, want: []string{"log max age must be at least 1s"}},
		{name: "negative log per webhook", cfg: notify.Config{LogPerWebhook: -1}, want: []string{"log per webhook must be at least 1"}},
		{name: "negative workers", cfg: notify.Config{Workers: -2}, want: []string{"workers must be 1 to 1000"}},
		{name: "too many replicas", cfg: notify.Config{Replicas: 6}, want: []string{"replicas must be 1 to 5"}},
		{name: "user agent with line break", cfg: notify.Config{UserAgent: "a\r\nX-Evil: 1"}, want: []string{"user agent"}},
		{name: "bad starttls", cfg: notify.Config{SMTP: notify.SMTPConfig{StartTLS: "sometimes"}}, want: []string{`smtp starttls must be "auto", "always" or "never", got "sometimes"`}},
		{name: "host without from", cfg: notify.Config{SMTP: notify.SMTPConfig{Host: "mail.example.com"}}, want: []string{"smtp from must be set"}},
		{name: "bad from", cfg: notify.Config{SMTP: notify.SMTPConfig{Host: "mail.example.com", From: "not an address"}}, want: []string{"smtp from"}},
		{name: "from with line break", cfg: notify.Config{SMTP: notify.SMTPConfig{Host: "h", From: "a@example.com\r\nBcc: x@example.com"}}, want: []string{"line breaks"}},
		{name: "bad port", cfg: notify.Config{SMTP: notify.SMTPConfig{Port: 70000}}, want: []string{"smtp port must be 1 to 65535"}},
		{name: "password without user", cfg: notify.Config{SMTP: notify.SMTPConfig{Password: "p"}}, want: []string{"password is set without a user"}},
		{name: "negative smtp timeout", cfg: notify.Config{SMTP: notify.SMTPConfig{Timeout: -time.Second}}, want: []string{"smtp timeout must not be negative"}},
		{name: "all errors at once", cfg: notify.Config{Workers: -1, Backoff: -1, SMTP: notify.SMTPConfig{Host: "h", StartTLS: "x"}},
			want: []string{"workers", "backoff must not be negative", "smtp starttls", "smtp from must be set"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Validate = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate = nil, want an error with %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate = %q, want it to contain %q", err, w)
				}
			}
		})
	}
}

func TestNewAndSetupRefuseInvalidConfig(t *testing.T) {
	t.Parallel()
	s := natstest.Server(t, "")
	_, js := natstest.Connect(t, s)
	bad := notify.Config{Workers: -1}
	if err := notify.Setup(t.Context(), js, bad); err == nil || !strings.Contains(err.Error(), "workers") {
		t.Errorf("Setup = %v, want a workers error", err)
	}
	if _, err := notify.New(js, bad, newHooks(), nil); err == nil || !strings.Contains(err.Error(), "workers") {
		t.Errorf("New = %v, want a workers error", err)
	}
	if _, err := notify.New(js, notify.Config{}, nil, nil); err == nil {
		t.Error("New without webhooks = nil, want an error")
	}
	// Nothing was created by the refused Setup.
	if _, err := js.Stream(t.Context(), notify.StreamName); !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Errorf("stream after refused setup: %v, want not found", err)
	}
}

func TestSetupIsIdempotentAndUpdates(t *testing.T) {
	t.Parallel()
	s := natstest.Server(t, "")
	_, js := natstest.Connect(t, s)
	ctx := t.Context()
	cfg := notify.Config{Timeout: 45 * time.Second} // longer than the SMTP timeout
	for range 2 {
		if err := notify.Setup(ctx, js, cfg); err != nil {
			t.Fatalf("setup: %v", err)
		}
	}
	st, err := js.Stream(ctx, notify.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	sc := st.CachedInfo().Config
	if sc.Retention != jetstream.WorkQueuePolicy || sc.Storage != jetstream.FileStorage || sc.Subjects[0] != "notify.>" || sc.Duplicates != notify.DuplicateWindow {
		t.Errorf("stream %s: retention %v, storage %v, subjects %v, duplicates %s", notify.StreamName, sc.Retention, sc.Storage, sc.Subjects, sc.Duplicates)
	}
	cons, err := js.Consumer(ctx, notify.StreamName, notify.ConsumerName)
	if err != nil {
		t.Fatal(err)
	}
	cc := cons.CachedInfo().Config
	if cc.AckPolicy != jetstream.AckExplicitPolicy || cc.MaxDeliver != -1 || cc.AckWait != 75*time.Second || cc.FilterSubject != "notify.>" {
		t.Errorf("consumer %s: ack %v, max deliver %d, ack wait %s, filter %s", notify.ConsumerName, cc.AckPolicy, cc.MaxDeliver, cc.AckWait, cc.FilterSubject)
	}

	// A changed configuration updates the log stream.
	cfg.LogPerWebhook, cfg.LogMaxAge = 5, time.Hour
	if err := notify.Setup(ctx, js, cfg); err != nil {
		t.Fatalf("setup again: %v", err)
	}
	ls, err := js.Stream(ctx, notify.LogStreamName)
	if err != nil {
		t.Fatal(err)
	}
	lc := ls.CachedInfo().Config
	if lc.Retention != jetstream.LimitsPolicy || lc.MaxMsgsPerSubject != 5 || lc.MaxAge != time.Hour || lc.Subjects[0] != "notifylog.>" {
		t.Errorf("stream %s: retention %v, per subject %d, max age %s, subjects %v", notify.LogStreamName, lc.Retention, lc.MaxMsgsPerSubject, lc.MaxAge, lc.Subjects)
	}
}
