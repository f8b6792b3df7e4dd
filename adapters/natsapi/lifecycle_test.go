package natsapi_test

import (
	"bytes"
	"context"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	_ "time/tzdata" // Europe/Berlin without a system zone database

	"github.com/backupledger/backupledger/adapters/natsapi"
	"github.com/backupledger/backupledger/domain"
	"github.com/backupledger/backupledger/projections"
	"github.com/backupledger/backupledger/test/apitest"
	"github.com/backupledger/backupledger/usecase"
)

// stackSchedules reads schedules from the stack's projection, with the
// ledger's default and the fake clock, as backupd does.
type stackSchedules struct{ st *apitest.Stack }

func (s stackSchedules) Schedule(app string) projections.ScheduleView {
	var v projections.ScheduleView
	s.st.Proj.ReadApp(app, func(a *domain.App) {
		v = projections.ScheduleViewOf(a, s.st.Ledger.Rules().Nightly, s.st.Clock.Now())
	})
	return v
}

// fakeDeliveries answers two attempts of every webhook and records what
// it was asked.
type fakeDeliveries struct {
	mu    sync.Mutex
	asked []string // "id limit"
}

var deliveryT0 = apitest.Start.Add(time.Minute)

func (f *fakeDeliveries) Deliveries(_ context.Context, id string, limit int) ([]projections.DeliveryView, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.asked = append(f.asked, id+" "+strconv.Itoa(limit))
	next := deliveryT0.Add(time.Minute)
	return []projections.DeliveryView{
		{DeliveryID: "D1", WebhookID: id, EventID: "E1", EventType: domain.TypeBackupFailed, App: "crm", Attempt: 1,
			Time: deliveryT0, Result: "failed", StatusCode: 502, Error: "bad gateway", DurationMS: 12, NextAttemptAt: &next},
		{DeliveryID: "D1", WebhookID: id, EventID: "E1", EventType: domain.TypeBackupFailed, App: "crm", Attempt: 2,
			Time: next, Result: "delivered", StatusCode: 204, DurationMS: 7},
	}, nil
}

func (f *fakeDeliveries) calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.asked)
}

func TestSchedule(t *testing.T) {
	a := newScheduleAPI(t)

	var v projections.ScheduleView
	a.request(natsapi.SubjectScheduleGet, `{"app":"crm"}`).ok(t, &v)
	want := projections.ScheduleView{App: "crm", Time: "02:00", TimeZone: "UTC", Default: true}
	if v.App != want.App || v.Enabled || v.Time != want.Time || v.TimeZone != want.TimeZone || !v.Default || v.NextRunAt != nil || v.LastNight != "" {
		t.Fatalf("default schedule = %+v", v)
	}

	// On at 03:30 in Berlin: the clock reads 2026-08-31 12:02 UTC (14:02
	// CEST), so the next run is the next morning, 01:30 UTC.
	r := a.request(natsapi.SubjectScheduleSet, `{"app":"crm","enabled":true,"time":"03:30","time_zone":"Europe/Berlin","idempotency_key":"sched-1"}`).ok(t, &v)
	next := time.Date(2026, 9, 1, 1, 30, 0, 0, time.UTC)
	if !v.Enabled || v.Time != "03:30" || v.TimeZone != "Europe/Berlin" || v.Default || v.NextRunAt == nil || !v.NextRunAt.Equal(next) {
		t.Fatalf("set schedule = %+v", v)
	}
	if r.msg.Header.Get("X-Command-Id") != "sched-1" || r.msg.Header.Get("Idempotent-Replayed") != "" {
		t.Errorf("headers %v", r.msg.Header)
	}
	var got projections.ScheduleView
	a.request(natsapi.SubjectScheduleGet, natsapi.AppRequest{App: "crm"}).ok(t, &got)
	if got.Enabled != v.Enabled || got.Time != v.Time || got.TimeZone != v.TimeZone || got.Default || got.NextRunAt == nil || !got.NextRunAt.Equal(next) {
		t.Errorf("get after set = %+v", got)
	}

	// A retry answers the same and appends nothing; the key cannot be
	// reused for another command.
	before := a.st.Store.Appends()
	r = a.request(natsapi.SubjectScheduleSet, `{"app":"crm","enabled":true,"time":"03:30","time_zone":"Europe/Berlin"}`, "Idempotency-Key", "sched-1").ok(t, &v)
	if r.msg.Header.Get("Idempotent-Replayed") != "true" || v.Time != "03:30" {
		t.Errorf("retry: %+v %v", v, r.msg.Header)
	}
	if n := a.st.Store.Appends(); n != before {
		t.Errorf("the retry appended %d events", n-before)
	}
	a.request(natsapi.SubjectBackupsCreate, `{"app":"crm","idempotency_key":"sched-1"}`).problem(t, 422, domain.CodeIdempotencyKeyReused)

	// Off keeps the time and zone that are left out.
	off := false
	a.request(natsapi.SubjectScheduleSet, natsapi.SetScheduleRequest{App: "crm", Enabled: &off}).ok(t, &v)
	if v.Enabled || v.Time != "03:30" || v.TimeZone != "Europe/Berlin" || v.NextRunAt != nil || v.Default {
		t.Errorf("off = %+v", v)
	}

	// Refused requests change nothing.
	before = a.st.Store.Appends()
	tests := []struct {
		name   string
		body   string
		token  string
		status int
		code   string
	}{
		{"bad time", `{"app":"crm","enabled":true,"time":"25:00"}`, "", 400, domain.CodeInvalidArgument},
		{"time without colon", `{"app":"crm","enabled":true,"time":"0330"}`, "", 400, domain.CodeInvalidArgument},
		{"empty time", `{"app":"crm","enabled":true,"time":""}`, "", 400, domain.CodeInvalidArgument},
		{"unknown zone", `{"app":"crm","enabled":true,"time_zone":"Mars/Olympus"}`, "", 400, domain.CodeInvalidArgument},
		{"no enabled", `{"app":"crm","time":"04:00"}`, "", 400, domain.CodeInvalidArgument},
		{"enabled not a bool", `{"app":"crm","enabled":"yes"}`, "", 400, domain.CodeInvalidArgument},
		{"misspelt field", `{"app":"crm","enabled":true,"timezone":"UTC"}`, "", 400, domain.CodeInvalidArgument},
		{"bad app", `{"app":"CRM","enabled":true}`, "", 400, domain.CodeInvalidArgument},
		{"no app", `{"enabled":true}`, "", 400, domain.CodeInvalidArgument},
		{"not an admin of the app", `{"app":"crm","enabled":true}`, "eve-token", 404, domain.CodeNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var kv []string
			if tt.token != "" {
				kv = []string{"Authorization", "Bearer " + tt.token}
			}
			p := a.request(natsapi.SubjectScheduleSet, tt.body, kv...).problem(t, tt.status, tt.code)
			if p.Instance != natsapi.SubjectScheduleSet {
				t.Errorf("instance %q", p.Instance)
			}
		})
	}
	if n := a.st.Store.Appends(); n != before {
		t.Errorf("refused schedules appended %d events", n-before)
	}
	a.request(natsapi.SubjectScheduleGet, `{"app":"crm"}`).ok(t, &got)
	if got.Enabled || got.Time != "03:30" || got.TimeZone != "Europe/Berlin" {
		t.Errorf("after refusals: %+v", got)
	}
	a.request(natsapi.SubjectScheduleGet, `{"app":"crm"}`, "Authorization", "Bearer eve-token").problem(t, 404, domain.CodeNotFound)
}

// newScheduleAPI starts a Service whose schedules read its own stack.
func newScheduleAPI(t *testing.T) *api {
	t.Helper()
	var sch *lateSchedules
	a := newAPI(t, func(d *deps) {
		sch = &lateSchedules{}
		d.Schedules = sch
	})
	sch.set(stackSchedules{a.st})
	return a
}

// lateSchedules is a Schedules wired once newAPI has made the stack it
// reads, after the Service's deps were set.
type lateSchedules struct {
	mu sync.Mutex
	s  usecase.Schedules
}

func (l *lateSchedules) set(s usecase.Schedules) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.s = s
}

func (l *lateSchedules) Schedule(app string) projections.ScheduleView {
	l.mu.Lock()
	s := l.s
	l.mu.Unlock()
	return s.Schedule(app)
}

func TestLifecycleUnavailable(t *testing.T) {
	a := newAPI(t, nil)
	a.request(natsapi.SubjectScheduleGet, `{"app":"crm"}`).problem(t, 503, domain.CodeUnavailable)
	a.request(natsapi.SubjectScheduleSet, `{"app":"crm","enabled":true}`).problem(t, 503, domain.CodeUnavailable)
	a.request(natsapi.SubjectWebhooksDeliveries, `{"app":"crm","id":"x"}`).problem(t, 503, domain.CodeUnavailable)
	// The access check comes first: an app the caller cannot see is
	// not_found, whatever the server lacks.
	a.request(natsapi.SubjectScheduleGet, `{"app":"crm"}`, "Authorization", "Bearer eve-token").problem(t, 404, domain.CodeNotFound)

	b := newAPI(t, func(d *deps) { d.Identity = nil })
	b.request(natsapi.SubjectWebhooksCreate, `{"app":"crm","url":"https://example.com/h"}`).problem(t, 503, domain.CodeUnavailable)
	b.request(natsapi.SubjectWebhooksList, `{"org":"acme"}`).problem(t, 503, domain.CodeUnavailable)
}

func TestWebhooks(t *testing.T) {
	fd := &fakeDeliveries{}
	a := newBareAPI(t, func(d *deps) { d.Deliveries = fd })
	seedIdentity(a)
	carol := a.login("carol", carolPW).Token
	dave := a.login("dave", "dave's long password").Token
	erin := a.login("erin", "erin's long password").Token
	a.as(carol, natsapi.SubjectAppsRegister, `{"app":"crm","org":"acme"}`).ok(t, nil)

	// alice (server administrator) and carol (admin of crm) register
	// webhooks of crm; each answer shows the secret, once.
	var alices projections.NewWebhookView
	a.request(natsapi.SubjectWebhooksCreate, `{"app":"crm","url":"https://hooks.example.com/crm","events":["backup.failed"]}`).ok(t, &alices)
	if alices.ID == "" || alices.App != "crm" || alices.Org != "" || alices.URL != "https://hooks.example.com/crm" ||
		!slices.Equal(alices.Events, []string{domain.TypeBackupFailed}) || alices.CreatedBy != "alice" ||
		!strings.HasPrefix(alices.Secret, "whsec_") || !alices.CreatedAt.Equal(apitest.Start) {
		t.Fatalf("alice's webhook = %+v", alices)
	}
	const carolSecret = "carol's shared secret, long enough"
	var carols projections.NewWebhookView
	a.as(carol, natsapi.SubjectWebhooksCreate, natsapi.CreateWebhookRequest{App: "crm", URL: "http://hooks.example.net:8080/in",
		Secret: carolSecret, CommandFields: natsapi.CommandFields{IdempotencyKey: "hook-1"}}).ok(t, &carols)
	if carols.Secret != carolSecret || carols.CreatedBy != "carol" || !slices.Equal(carols.Events, domain.NotifiableTypes()) {
		t.Fatalf("carol's webhook = %+v", carols)
	}
	// Webhooks may not target the server's own network: loopback,
	// private, link-local (cloud metadata) addresses are refused, for the
	// server administrator too, and nothing is recorded.
	before := a.st.Store.Appends()
	for _, url := range []string{"http://127.0.0.1:9/x", "http://169.254.169.254/latest/meta-data", "http://10.0.0.1:8080/in", "http://localhost:6060/"} {
		a.as(carol, natsapi.SubjectWebhooksCreate, natsapi.CreateWebhookRequest{App: "crm", URL: url}).problem(t, 400, domain.CodeInvalidArgument)
		a.request(natsapi.SubjectWebhooksCreate, natsapi.CreateWebhookRequest{App: "crm", URL: url}).problem(t, 400, domain.CodeInvalidArgument)
	}
	if n := a.st.Store.Appends(); n != before {
		t.Errorf("refused webhooks appended %d events", n-before)
	}
	// The same command again does not show the secret again.
	a.as(carol, natsapi.SubjectWebhooksCreate, natsapi.CreateWebhookRequest{App: "crm", URL: "http://hooks.example.net:8080/in",
		Secret: carolSecret, CommandFields: natsapi.CommandFields{IdempotencyKey: "hook-1"}}).problem(t, 409, domain.CodeAlreadyExists)

	// The list shows both, without a secret.
	var list projections.WebhookList
	r := a.as(carol, natsapi.SubjectWebhooksList, `{"app":"crm"}`).ok(t, &list)
	ids := []string{alices.ID, carols.ID}
	slices.Sort(ids)
	if len(list.Webhooks) != 2 || list.Webhooks[0].ID != ids[0] || list.Webhooks[1].ID != ids[1] {
		t.Fatalf("list = %+v", list)
	}
	if bytes.Contains(r.msg.Data, []byte(alices.Secret)) || bytes.Contains(r.msg.Data, []byte(carolSecret)) || bytes.Contains(r.msg.Data, []byte("secret")) {
		t.Errorf("the list shows a secret: %s", r.msg.Data)
	}

	// Deliveries: the log of one webhook, 100 by default.
	var dl projections.DeliveryList
	a.as(carol, natsapi.SubjectWebhooksDeliveries, natsapi.DeliveriesRequest{App: "crm", ID: carols.ID}).ok(t, &dl)
	if len(dl.Deliveries) != 2 || dl.Deliveries[0].Attempt != 1 || dl.Deliveries[0].StatusCode != 502 ||
		dl.Deliveries[1].Result != "delivered" || dl.Deliveries[0].WebhookID != carols.ID {
		t.Errorf("deliveries = %+v", dl)
	}
	limit := 2
	a.request(natsapi.SubjectWebhooksDeliveries, natsapi.DeliveriesRequest{App: "crm", ID: alices.ID, Limit: &limit}).ok(t, &dl)
	if got, want := fd.calls(), []string{carols.ID + " 100", alices.ID + " 2"}; !slices.Equal(got, want) {
		t.Errorf("deliveries asked %v, want %v", got, want)
	}

	// Others see nothing of crm's webhooks.
	for _, tok := range []string{dave, erin, "eve-token"} {
		a.as(tok, natsapi.SubjectWebhooksList, `{"app":"crm"}`).problem(t, 404, domain.CodeNotFound)
		a.as(tok, natsapi.SubjectWebhooksCreate, `{"app":"crm","url":"https://evil.example.com/"}`).problem(t, 404, domain.CodeNotFound)
		a.as(tok, natsapi.SubjectWebhooksDeliveries, `{"app":"crm","id":"`+carols.ID+`"}`).problem(t, 404, domain.CodeNotFound)
		a.as(tok, natsapi.SubjectWebhooksDelete, `{"app":"crm","id":"`+carols.ID+`"}`).problem(t, 404, domain.CodeNotFound)
	}

	// Organisation webhooks are the server administrator's: a member is
	// permission_denied, anyone else not_found.
	var orgHook projections.NewWebhookView
	a.request(natsapi.SubjectWebhooksCreate, `{"org":"acme","url":"https://hooks.example.com/acme","events":["restore.failed","backup.failed"]}`).ok(t, &orgHook)
	if orgHook.Org != "acme" || orgHook.App != "" || !slices.Equal(orgHook.Events, []string{domain.TypeBackupFailed, domain.TypeRestoreFailed}) {
		t.Errorf("org webhook = %+v", orgHook)
	}
	a.as(carol, natsapi.SubjectWebhooksCreate, `{"org":"acme","url":"https://hooks.example.com/x"}`).problem(t, 403, domain.CodePermissionDenied)
	a.as(carol, natsapi.SubjectWebhooksList, `{"org":"acme"}`).problem(t, 403, domain.CodePermissionDenied)
	a.as(carol, natsapi.SubjectWebhooksDeliveries, `{"org":"acme","id":"`+orgHook.ID+`"}`).problem(t, 403, domain.CodePermissionDenied)
	a.as(carol, natsapi.SubjectWebhooksDelete, `{"org":"acme","id":"`+orgHook.ID+`"}`).problem(t, 403, domain.CodePermissionDenied)
	a.as(erin, natsapi.SubjectWebhooksList, `{"org":"acme"}`).problem(t, 404, domain.CodeNotFound)
	a.request(natsapi.SubjectWebhooksList, `{"org":"acme"}`).ok(t, &list)
	if len(list.Webhooks) != 1 || list.Webhooks[0].ID != orgHook.ID || list.Webhooks[0].Org != "acme" {
		t.Errorf("acme's webhooks = %+v", list)
	}
	// A webhook is found only in its own scope.
	a.request(natsapi.SubjectWebhooksDeliveries, `{"app":"crm","id":"`+orgHook.ID+`"}`).problem(t, 404, domain.CodeNotFound)
	a.request(natsapi.SubjectWebhooksDeliveries, `{"org":"acme","id":"`+carols.ID+`"}`).problem(t, 404, domain.CodeNotFound)
	a.request(natsapi.SubjectWebhooksDelete, `{"org":"acme","id":"`+carols.ID+`"}`).problem(t, 404, domain.CodeNotFound)

	// carol removes her webhook; it is gone.
	var del natsapi.WebhookDeleted
	a.as(carol, natsapi.SubjectWebhooksDelete, natsapi.WebhookRequest{App: "crm", ID: carols.ID}).ok(t, &del)
	if del != (natsapi.WebhookDeleted{ID: carols.ID, App: "crm", Deleted: true}) {
		t.Errorf("delete answered %+v", del)
	}
	a.as(carol, natsapi.SubjectWebhooksList, `{"app":"crm"}`).ok(t, &list)
	if len(list.Webhooks) != 1 || list.Webhooks[0].ID != alices.ID {
		t.Errorf("after delete: %+v", list)
	}
	a.as(carol, natsapi.SubjectWebhooksDelete, natsapi.WebhookRequest{App: "crm", ID: carols.ID}).problem(t, 404, domain.CodeNotFound)
	a.as(carol, natsapi.SubjectWebhooksDeliveries, natsapi.DeliveriesRequest{App: "crm", ID: carols.ID}).problem(t, 404, domain.CodeNotFound)
	del = natsapi.WebhookDeleted{}
	a.request(natsapi.SubjectWebhooksDelete, natsapi.WebhookRequest{Org: "acme", ID: orgHook.ID}).ok(t, &del)
	if del != (natsapi.WebhookDeleted{ID: orgHook.ID, Org: "acme", Deleted: true}) {
		t.Errorf("org delete answered %+v", del)
	}

	// No secret in the logs.
	logs := a.logs.String()
	if !strings.Contains(logs, natsapi.SubjectWebhooksCreate) {
		t.Fatalf("the logs lack the webhooks:\n%s", logs)
	}
	for _, s := range []string{alices.Secret, carolSecret, orgHook.Secret} {
		if strings.Contains(logs, s) {
			t.Errorf("the logs hold the secret %q", s)
		}
	}
}

// Refused webhook requests change nothing.
func TestWebhooksBadInput(t *testing.T) {
	a := newAPI(t, func(d *deps) { d.Deliveries = &fakeDeliveries{} })
	seedIdentity(a)
	var hook projections.NewWebhookView
	a.request(natsapi.SubjectWebhooksCreate, `{"app":"crm","url":"https://hooks.example.com/crm"}`).ok(t, &hook)
	before := a.st.Store.Appends()
	secrets := len(a.st.Secrets.Values())
	tests := []struct {
		name    string
		subject string
		body    string
		status  int
		code    string
	}{
		{"create without url", natsapi.SubjectWebhooksCreate, `{"app":"crm"}`, 400, domain.CodeInvalidArgument},
		{"create without scope", natsapi.SubjectWebhooksCreate, `{"url":"https://hooks.example.com/"}`, 400, domain.CodeInvalidArgument},
		{"create with both scopes", natsapi.SubjectWebhooksCreate, `{"app":"crm","org":"acme","url":"https://hooks.example.com/"}`, 400, domain.CodeInvalidArgument},
		{"create with a bad url", natsapi.SubjectWebhooksCreate, `{"app":"crm","url":"ftp://hooks.example.com/"}`, 400, domain.CodeInvalidArgument},
		{"create with credentials in the url", natsapi.SubjectWebhooksCreate, `{"app":"crm","url":"https://u:p@hooks.example.com/"}`, 400, domain.CodeInvalidArgument},
		{"create with an unknown event", natsapi.SubjectWebhooksCreate, `{"app":"crm","url":"https://hooks.example.com/","events":["backup.renamed"]}`, 400, domain.CodeInvalidArgument},
		{"create with a short secret", natsapi.SubjectWebhooksCreate, `{"app":"crm","url":"https://hooks.example.com/","secret":"short"}`, 400, domain.CodeInvalidArgument},
		{"create with a bad app", natsapi.SubjectWebhooksCreate, `{"app":"CRM","url":"https://hooks.example.com/"}`, 400, domain.CodeInvalidArgument},
		{"create in an unknown org", natsapi.SubjectWebhooksCreate, `{"org":"nope","url":"https://hooks.example.com/"}`, 404, domain.CodeNotFound},
		{"create with a misspelt field", natsapi.SubjectWebhooksCreate, `{"app":"crm","uri":"https://hooks.example.com/"}`, 400, domain.CodeInvalidArgument},
		{"list without scope", natsapi.SubjectWebhooksList, `{}`, 400, domain.CodeInvalidArgument},
		{"list with both scopes", natsapi.SubjectWebhooksList, `{"app":"crm","org":"acme"}`, 400, domain.CodeInvalidArgument},
		{"delete without id", natsapi.SubjectWebhooksDelete, `{"app":"crm"}`, 400, domain.CodeInvalidArgument},
		{"delete without scope", natsapi.SubjectWebhooksDelete, `{"id":"` + hook.ID + `"}`, 400, domain.CodeInvalidArgument},
		{"delete unknown", natsapi.SubjectWebhooksDelete, `{"app":"crm","id":"nope"}`, 404, domain.CodeNotFound},
		{"deliveries without id", natsapi.SubjectWebhooksDeliveries, `{"app":"crm"}`, 400, domain.CodeInvalidArgument},
		{"deliveries without scope", natsapi.SubjectWebhooksDeliveries, `{"id":"` + hook.ID + `"}`, 400, domain.CodeInvalidArgument},
		{"deliveries limit 0", natsapi.SubjectWebhooksDeliveries, `{"app":"crm","id":"` + hook.ID + `","limit":0}`, 400, domain.CodeInvalidArgument},
		{"deliveries limit too high", natsapi.SubjectWebhooksDeliveries, `{"app":"crm","id":"` + hook.ID + `","limit":1001}`, 400, domain.CodeInvalidArgument},
		{"deliveries of an unknown webhook", natsapi.SubjectWebhooksDeliveries, `{"app":"crm","id":"nope"}`, 404, domain.CodeNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := a.request(tt.subject, tt.body).problem(t, tt.status, tt.code)
			if p.Instance != tt.subject {
				t.Errorf("instance %q", p.Instance)
			}
		})
	}
	if n := a.st.Store.Appends(); n != before {
		t.Errorf("refused webhook requests appended %d events", n-before)
	}
	if n := len(a.st.Secrets.Values()); n != secrets {
		t.Errorf("refused webhooks stored %d secrets", n-secrets)
	}
}
