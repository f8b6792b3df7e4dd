package httpapi_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/backupledger/backupledger/domain"
	"github.com/backupledger/backupledger/projections"
	"github.com/backupledger/backupledger/test/apitest"
)

func TestCreateBackup(t *testing.T) {
	a := newAPI(t, nil)
	r := a.do("POST", "/v1/apps/crm/backups", `{"name":"  before upgrade ","description":"v2"}`).want(t, http.StatusAccepted)
	b := r.backup(t)

	if b.ID == "" || b.App != "crm" || b.Name != "before upgrade" || b.Description != "v2" {
		t.Errorf("got id %q app %q name %q description %q", b.ID, b.App, b.Name, b.Description)
	}
	if b.Status != "queued" || b.Origin != "manual" || b.CreatedBy != "alice" {
		t.Errorf("got status %q origin %q created_by %q, want queued manual alice", b.Status, b.Origin, b.CreatedBy)
	}
	if !b.CreatedAt.Equal(apitest.Start) || !b.ExpiresAt.Equal(apitest.Start.Add(60*24*time.Hour)) {
		t.Errorf("got created_at %s expires_at %s", b.CreatedAt, b.ExpiresAt)
	}
	if b.CompletedAt != nil || b.SHA256 != nil || b.Error != nil || b.SizeBytes != 0 || b.ItemCount != 0 {
		t.Errorf("a queued backup has no archive facts: %+v", b)
	}
	if got, want := r.header.Get("Location"), "/v1/apps/crm/backups/"+b.ID; got != want {
		t.Errorf("Location: got %q, want %q", got, want)
	}
	if r.header.Get("X-Command-Id") == "" || r.header.Get("Idempotency-Key") != r.header.Get("X-Command-Id") {
		t.Errorf("command id headers: %v", r.header)
	}
	// Times are UTC RFC 3339 ending in Z.
	for _, field := range []string{`"created_at":"2026-08-31T12:02:00Z"`, `"expires_at":"2026-10-30T12:02:00Z"`, `"completed_at":null`} {
		if !strings.Contains(string(r.body), field) {
			t.Errorf("body %s lacks %s", r.body, field)
		}
	}
	if got := a.st.Store.Appends(); got != 1 {
		t.Errorf("appends: got %d, want 1", got)
	}
}

func TestCreateDefaultName(t *testing.T) {
	a := newAPI(t, nil)
	for _, body := range []string{"", "{}", `{"name":null}`} {
		r := a.do("POST", "/v1/apps/crm/backups", body).want(t, http.StatusAccepted)
		want := a.st.Clock.Now().Format("January 2 Monday 15:04")
		if got := r.backup(t).Name; got != want {
			t.Errorf("body %q: name %q, want %q", body, got, want)
		}
		a.st.Clock.Advance(5 * time.Minute)
	}
	if got := a.create("crm", "").Name; got != "August 31 Monday 12:17" {
		t.Errorf("default name: got %q", got)
	}
}

func TestListGetRenameDeleteLogs(t *testing.T) {
	a := newAPI(t, nil)
	var ids []string
	for _, name := range []string{"one", "two", "three"} {
		ids = append(ids, a.create("crm", name).ID)
		a.st.Clock.Advance(5 * time.Minute)
	}
	other := a.create("shop", "elsewhere")

	var list projections.BackupList
	decode(t, a.do("GET", "/v1/apps/crm/backups", "").want(t, http.StatusOK).body, &list)
	if got := backupIDs(list); strings.Join(got, ",") != strings.Join(ids, ",") {
		t.Fatalf("list: got %v, want %v (by created_at)", got, ids)
	}
	decode(t, a.do("GET", "/v1/backups", "").want(t, http.StatusOK).body, &list)
	if got, want := backupIDs(list), append(ids, other.ID); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("all: got %v, want %v", got, want)
	}

	got := a.do("GET", "/v1/apps/crm/backups/"+ids[1], "").want(t, http.StatusOK).backup(t)
	if got.Name != "two" {
		t.Errorf("get: name %q", got.Name)
	}
	renamed := a.do("PATCH", "/v1/apps/crm/backups/"+ids[1], `{"name":"deux"}`).want(t, http.StatusOK).backup(t)
	if renamed.Name != "deux" || renamed.ID != ids[1] {
		t.Errorf("rename: got %+v", renamed)
	}
	if got := a.do("GET", "/v1/apps/crm/backups/"+ids[1], "").backup(t).Name; got != "deux" {
		t.Errorf("read after rename: %q", got)
	}

	r := a.do("DELETE", "/v1/apps/crm/backups/"+ids[1], "").want(t, http.StatusNoContent)
	if len(r.body) != 0 {
		t.Errorf("204 with body %q", r.body)
	}
	if p := a.do("GET", "/v1/apps/crm/backups/"+ids[1], "").want(t, http.StatusNotFound).problem(t); p.Code != "not_found" {
		t.Errorf("get deleted: code %q", p.Code)
	}
	if p := a.do("DELETE", "/v1/apps/crm/backups/"+ids[1], "").want(t, http.StatusNotFound).problem(t); p.Code != "not_found" {
		t.Errorf("delete again: code %q", p.Code)
	}

	var log projections.LogList
	decode(t, a.do("GET", "/v1/apps/crm/backups/"+ids[1]+"/logs", "").want(t, http.StatusOK).body, &log)
	if got := events(log); got != "backup.requested,backup.renamed,backup.deleted" {
		t.Errorf("backup log: %s", got)
	}
	for _, e := range log.Entries {
		if e.Actor != "alice" || e.BackupID != ids[1] || e.Time.Location() != time.UTC {
			t.Errorf("log entry %+v", e)
		}
	}
	decode(t, a.do("GET", "/v1/apps/crm/logs", "").want(t, http.StatusOK).body, &log)
	if got := events(log); got != "backup.requested,backup.requested,backup.requested,backup.renamed,backup.deleted" {
		t.Errorf("app log: %s", got)
	}

	var app projections.AppView
	decode(t, a.do("GET", "/v1/apps/crm", "").want(t, http.StatusOK).body, &app)
	if app.App != "crm" || app.BackupCount != 2 || app.QuotaUsed != 2 || app.QuotaLimit != 10 || app.Events != 5 {
		t.Errorf("app: %+v", app)
	}
}

func backupIDs(l projections.BackupList) []string {
	var out []string
	for _, b := range l.Backups {
		out = append(out, b.ID)
	}
	return out
}

func events(l projections.LogList) string {
	var out []string
	for _, e := range l.Entries {
		out = append(out, e.Event)
	}
	return strings.Join(out, ",")
}

func TestEmptyAppAnswersEmpty(t *testing.T) {
	a := newAPI(t, nil)
	if got := string(a.do("GET", "/v1/apps/empty/backups", "").want(t, http.StatusOK).body); got != "{\"backups\":[]}\n" {
		t.Errorf("list: %q", got)
	}
	if got := string(a.do("GET", "/v1/apps/empty/logs", "").want(t, http.StatusOK).body); got != "{\"entries\":[]}\n" {
		t.Errorf("logs: %q", got)
	}
	if got := string(a.do("GET", "/v1/backups", "").want(t, http.StatusOK).body); got != "{\"backups\":[]}\n" {
		t.Errorf("all: %q", got)
	}
}

func TestQuota(t *testing.T) {
	a := newAPI(t, nil)
	for range 10 {
		a.create("crm", "")
		a.st.Clock.Advance(5 * time.Minute)
	}
	r := a.do("POST", "/v1/apps/crm/backups", "{}").want(t, http.StatusConflict)
	if p := r.problem(t); p.Code != "backup_quota_exceeded" || p.Status != 409 || p.Detail == "" {
		t.Errorf("problem: %+v", p)
	}
	if got := a.st.Store.Appends(); got != 10 {
		t.Errorf("appends: got %d, want 10", got)
	}
}

func TestInterval(t *testing.T) {
	a := newAPI(t, nil)
	a.create("crm", "first")
	r := a.do("POST", "/v1/apps/crm/backups", "{}").want(t, http.StatusConflict)
	p := r.problem(t)
	if p.Code != "backup_too_soon" || p.RetryAfterSeconds != 300 || r.header.Get("Retry-After") != "300" {
		t.Errorf("problem %+v, Retry-After %q", p, r.header.Get("Retry-After"))
	}
	a.st.Clock.Advance(4*time.Minute + 59*time.Second + 500*time.Millisecond)
	r = a.do("POST", "/v1/apps/crm/backups", "{}").want(t, http.StatusConflict)
	if p := r.problem(t); p.RetryAfterSeconds != 1 || r.header.Get("Retry-After") != "1" {
		t.Errorf("half a second left: retry_after_seconds %d, header %q", p.RetryAfterSeconds, r.header.Get("Retry-After"))
	}
	if got := a.st.Store.Appends(); got != 1 {
		t.Errorf("appends: got %d, want 1", got)
	}
	a.st.Clock.Advance(500 * time.Millisecond)
	a.create("crm", "second")
}

func TestIdempotencyKey(t *testing.T) {
	a := newAPI(t, nil)
	first := a.do("POST", "/v1/apps/crm/backups", `{"name":"once"}`, "Idempotency-Key", "k-1").want(t, http.StatusAccepted)
	again := a.do("POST", "/v1/apps/crm/backups", `{"name":"once"}`, "Idempotency-Key", "k-1").want(t, http.StatusAccepted)
	if got, want := again.backup(t).ID, first.backup(t).ID; got != want {
		t.Errorf("retry: got backup %s, want %s", got, want)
	}
	if again.header.Get("Idempotent-Replayed") != "true" || first.header.Get("Idempotent-Replayed") != "" {
		t.Errorf("Idempotent-Replayed: first %q, retry %q", first.header.Get("Idempotent-Replayed"), again.header.Get("Idempotent-Replayed"))
	}
	if again.header.Get("X-Command-Id") != "k-1" || again.header.Get("Location") != first.header.Get("Location") {
		t.Errorf("retry headers: %v", again.header)
	}
	if got := a.st.Store.Appends(); got != 1 {
		t.Errorf("appends after retry: got %d, want 1", got)
	}

	// The same key reused for another request is refused, not a replay:
	// another command, or the same one with other values.
	for _, r := range []struct{ method, path, body string }{
		{"DELETE", "/v1/apps/crm/backups/" + first.backup(t).ID, ""},
		{"POST", "/v1/apps/crm/backups", `{"name":"twice"}`},
		{"POST", "/v1/apps/crm/backups", `{"name":"once","description":"more"}`},
		{"PATCH", "/v1/apps/crm/backups/" + first.backup(t).ID, `{"name":"renamed"}`},
	} {
		p := a.do(r.method, r.path, r.body, "Idempotency-Key", "k-1").want(t, http.StatusUnprocessableEntity).problem(t)
		if p.Code != domain.CodeIdempotencyKeyReused {
			t.Errorf("%s %s with a reused key: %+v", r.method, r.path, p)
		}
	}
	if got := a.st.Store.Appends(); got != 1 {
		t.Errorf("appends after reused keys: got %d, want 1", got)
	}

	// Keys are scoped by caller: bob's k-1 is a new command.
	a.st.Clock.Advance(5 * time.Minute)
	bob := a.do("POST", "/v1/apps/crm/backups", `{"name":"bob's"}`, "Idempotency-Key", "k-1", "Authorization", "Bearer bob-token").want(t, http.StatusAccepted).backup(t)
	if bob.ID == first.backup(t).ID || bob.CreatedBy != "bob" {
		t.Errorf("bob's backup: %+v", bob)
	}

	// A retried delete answers 204 again.
	a.do("DELETE", "/v1/apps/crm/backups/"+bob.ID, "", "Idempotency-Key", "del-1").want(t, http.StatusNoContent)
	a.do("DELETE", "/v1/apps/crm/backups/"+bob.ID, "", "Idempotency-Key", "del-1").want(t, http.StatusNoContent)
	if got := a.st.Store.Appends(); got != 3 {
		t.Errorf("appends: got %d, want 3", got)
	}
}

func TestCorrelationID(t *testing.T) {
	a := newAPI(t, nil)
	a.do("POST", "/v1/apps/crm/backups", "{}", "X-Correlation-Id", "corr.1").want(t, http.StatusAccepted)
	p := a.do("POST", "/v1/apps/crm/backups", "{}", "X-Correlation-Id", "bad id").want(t, http.StatusBadRequest).problem(t)
	if p.Code != "invalid_argument" || !strings.Contains(p.Detail, "X-Correlation-Id") {
		t.Errorf("problem: %+v", p)
	}
}
