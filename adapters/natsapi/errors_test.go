package natsapi_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/backupledger/backupledger/adapters/natsapi"
	"github.com/backupledger/backupledger/domain"
	"github.com/backupledger/backupledger/projections"
)

func TestBadInput(t *testing.T) {
	a := newAPI(t, nil)
	var b projections.BackupView
	a.request(natsapi.SubjectBackupsCreate, `{"app":"crm"}`).ok(t, &b)
	before := a.st.Store.Appends()

	tests := []struct {
		name    string
		subject string
		body    string
		kv      []string
		status  int
		code    string
		detail  string
	}{
		{"malformed JSON", natsapi.SubjectBackupsCreate, `{"app":`, nil, 400, "invalid_argument", "malformed JSON"},
		{"unknown field", natsapi.SubjectBackupsCreate, `{"app":"crm","nme":"x"}`, nil, 400, "invalid_argument", `unknown field "nme"`},
		{"wrong type", natsapi.SubjectBackupsCreate, `{"app":"crm","name":5}`, nil, 400, "invalid_argument", `field "name"`},
		{"trailing data", natsapi.SubjectBackupsCreate, `{"app":"crm"} x`, nil, 400, "invalid_argument", "single JSON object"},
		{"missing app", natsapi.SubjectBackupsCreate, `{}`, nil, 400, "invalid_argument", "app id"},
		{"invalid app id", natsapi.SubjectBackupsCreate, `{"app":"CRM"}`, nil, 400, "invalid_argument", "app id"},
		{"invalid app id on read", natsapi.SubjectBackupsList, `{"app":"a b"}`, nil, 400, "invalid_argument", "app id"},
		{"empty name", natsapi.SubjectBackupsCreate, `{"app":"crm","name":" "}`, nil, 400, "invalid_argument", "name"},
		{"101-char name", natsapi.SubjectBackupsCreate, `{"app":"crm","name":"` + strings.Repeat("n", 101) + `"}`, nil, 400, "invalid_argument", "got 101"},
		{"rename without name", natsapi.SubjectBackupsRename, `{"app":"crm","id":"` + b.ID + `"}`, nil, 400, "invalid_argument", "required"},
		{"unknown backup", natsapi.SubjectBackupsRename, `{"app":"crm","id":"nope","name":"x"}`, nil, 404, "not_found", "nope"},
		{"unknown backup log", natsapi.SubjectLogsBackup, `{"app":"crm","id":"nope"}`, nil, 404, "not_found", "nope"},
		{"missing token", natsapi.SubjectBackupsCreate, `{"app":"crm"}`, []string{"Authorization", ""}, 401, "unauthenticated", "token"},
		{"bad token", natsapi.SubjectBackupsAll, ``, []string{"Authorization", "Bearer nope"}, 401, "unauthenticated", "token"},
		{"bad idempotency key", natsapi.SubjectBackupsCreate, `{"app":"crm","idempotency_key":"a b"}`, nil, 400, "invalid_argument", "idempotency_key"},
		{"bad idempotency header", natsapi.SubjectBackupsDelete, `{"app":"crm","id":"` + b.ID + `"}`, []string{"Idempotency-Key", strings.Repeat("k", 65)}, 400, "invalid_argument", "idempotency_key"},
		{"key field and header disagree", natsapi.SubjectBackupsCreate, `{"app":"crm","idempotency_key":"a"}`, []string{"Idempotency-Key", "b"}, 400, "invalid_argument", "disagree"},
		{"not visible", natsapi.SubjectBackupsCreate, `{"app":"crm"}`, []string{"Authorization", "Bearer eve-token"}, 404, "not_found", "crm"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := a.request(tt.subject, tt.body, tt.kv...).problem(t, tt.status, tt.code)
			if !strings.Contains(p.Detail, tt.detail) {
				t.Errorf("detail %q lacks %q", p.Detail, tt.detail)
			}
			if p.Instance != tt.subject {
				t.Errorf("instance %q", p.Instance)
			}
			if got := a.st.Store.Appends(); got != before {
				t.Errorf("the store received %d appends", got-before)
			}
		})
	}
	if strings.Contains(a.logs.String(), "alice-token") {
		t.Errorf("a token was logged")
	}
}

func TestRules(t *testing.T) {
	a := newAPI(t, nil)
	a.request(natsapi.SubjectBackupsCreate, `{"app":"crm"}`).ok(t, nil)
	a.st.Clock.Advance(90 * time.Second)
	r := a.request(natsapi.SubjectBackupsCreate, `{"app":"crm"}`)
	if p := r.problem(t, 409, "backup_too_soon"); p.RetryAfterSeconds != 210 || r.msg.Header.Get("Retry-After") != "210" {
		t.Errorf("too soon: %+v", p)
	}
	for range 9 {
		a.st.Clock.Advance(5 * time.Minute)
		a.request(natsapi.SubjectBackupsCreate, `{"app":"crm"}`).ok(t, nil)
	}
	a.st.Clock.Advance(5 * time.Minute)
	a.request(natsapi.SubjectBackupsCreate, `{"app":"crm"}`).problem(t, 409, "backup_quota_exceeded")
	if got := a.st.Store.Appends(); got != 10 {
		t.Errorf("appends %d, want 10", got)
	}
}

// commandsFunc adapts a function to usecase.Commands.
type commandsFunc func(ctx context.Context, cmd domain.Command, m domain.Meta) (domain.Result, error)

func (f commandsFunc) Execute(ctx context.Context, cmd domain.Command, m domain.Meta) (domain.Result, error) {
	return f(ctx, cmd, m)
}

func (f commandsFunc) Retention(string) (domain.Retention, error) {
	return domain.Retention{}, errors.New("no retention in this test")
}

func TestInternalErrorIsHidden(t *testing.T) {
	a := newAPI(t, func(d *deps) {
		d.Commands = commandsFunc(func(context.Context, domain.Command, domain.Meta) (domain.Result, error) {
			return domain.Result{}, errors.New("disk on fire at /secret/path")
		})
	})
	r := a.request(natsapi.SubjectBackupsCreate, `{"app":"crm"}`)
	if p := r.problem(t, 500, "internal"); p.Detail != "internal error" || strings.Contains(string(r.msg.Data), "secret") {
		t.Errorf("leaked: %s", r.msg.Data)
	}
	if !strings.Contains(a.logs.String(), "disk on fire") {
		t.Errorf("not logged: %s", a.logs.String())
	}
}

func TestNotReady(t *testing.T) {
	a := newAPI(t, func(d *deps) { d.Ready = func() bool { return false } })
	a.request(natsapi.SubjectBackupsAll, "").problem(t, 503, "unavailable")
}
