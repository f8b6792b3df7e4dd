package main

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
	_ "time/tzdata" // Europe/Berlin without a system zone database

	"github.com/backupledger/backupledger/projections"
)

// requestBody decodes a request's JSON body into a map, failing the test if it is
// not one.
func requestBody(t *testing.T, r *http.Request) map[string]any {
	t.Helper()
	b, err := io.ReadAll(r.Body)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("body %q: %v", b, err)
	}
	return m
}

func writeAnswer(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func TestScheduleText(t *testing.T) {
	next := time.Date(2026, 11, 23, 1, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name string
		v    projections.ScheduleView
		want string
	}{
		{"never set", projections.ScheduleView{App: "crm", Time: "02:00", TimeZone: "UTC", Default: true},
			"Nightly backups of crm: off, every day at 02:00 UTC (the server's default)."},
		{"on, with a backup last night", projections.ScheduleView{App: "crm", Enabled: true, Time: "02:00", TimeZone: "Europe/Berlin",
			NextRunAt: &next, LastNight: "2026-11-22", LastTry: 1, LastBackupID: "01JB"},
			"Nightly backups of crm: on, every day at 02:00 Europe/Berlin; next run 2026-11-23 01:00:00 UTC; last night 2026-11-22 (backup 01JB)."},
		{"a retry", projections.ScheduleView{App: "crm", Enabled: true, Time: "02:00", TimeZone: "UTC",
			NextRunAt: &next, LastNight: "2026-11-22", LastTry: 2, LastBackupID: "01JC"},
			"Nightly backups of crm: on, every day at 02:00 UTC; next run 2026-11-23 01:00:00 UTC; last night 2026-11-22 (backup 01JC, try 2)."},
		{"skipped, off since", projections.ScheduleView{App: "crm", Time: "23:30", TimeZone: "UTC",
			LastNight: "2026-11-22", LastTry: 1, LastSkipped: "quota\nfull"},
			"Nightly backups of crm: off, every day at 23:30 UTC; last night 2026-11-22 (skipped: quota full)."},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := scheduleText(tc.v); got != tc.want {
				t.Errorf("got\n%s\nwant\n%s", got, tc.want)
			}
		})
	}
}

func TestSchedule(t *testing.T) {
	cur := projections.ScheduleView{App: "crm", Time: "02:00", TimeZone: "UTC", Default: true}
	var puts []map[string]any
	srv := fakeServer(t, map[string]http.HandlerFunc{
		"GET /v1/apps/crm/schedule": func(w http.ResponseWriter, _ *http.Request) { writeAnswer(w, http.StatusOK, cur) },
		"PUT /v1/apps/crm/schedule": func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Idempotency-Key") == "" {
				t.Error("PUT without an Idempotency-Key")
			}
			b := requestBody(t, r)
			puts = append(puts, b)
			cur.Enabled, cur.Default = b["enabled"].(bool), false
			if v, ok := b["time"].(string); ok {
				cur.Time = v
			}
			if v, ok := b["time_zone"].(string); ok {
				cur.TimeZone = v
			}
			writeAnswer(w, http.StatusOK, cur)
		},
	})

	r := runCLI(t, srv, "", "", false, "schedule", "crm")
	if r.code != 0 || r.stdout != "Nightly backups of crm: off, every day at 02:00 UTC (the server's default).\n" {
		t.Fatalf("show: %+v", r)
	}

	r = runCLI(t, srv, "", "", false, "schedule", "crm", "--on", "--time", "03:00", "--time-zone", "Europe/Berlin")
	if r.code != 0 || r.stdout != "Nightly backups of crm: on, every day at 03:00 Europe/Berlin.\n" || r.stderr != "" {
		t.Fatalf("set: %+v", r)
	}
	r = runCLI(t, srv, "", "", false, "schedule", "--off", "crm", "--json")
	if r.code != 0 || !strings.Contains(r.stdout, `"enabled": false`) || !strings.Contains(r.stdout, `"time": "03:00"`) {
		t.Fatalf("off: %+v", r)
	}
	want := []map[string]any{
		{"enabled": true, "time": "03:00", "time_zone": "Europe/Berlin"},
		{"enabled": false}, // the time and zone are the server's to keep
	}
	if !slices.EqualFunc(puts, want, maps.Equal) {
		t.Errorf("PUT bodies %v, want %v", puts, want)
	}

	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"schedule", "crm", "--on", "--off"}, "--on and --off exclude each other"},
		{[]string{"schedule", "crm", "--time", "03:00"}, "add --on or --off"},
		{[]string{"schedule", "crm", "--time-zone", "UTC"}, "add --on or --off"},
		{[]string{"schedule"}, "missing arguments"},
	} {
		r := runCLI(t, srv, "", "", false, tc.args...)
		if r.code != 2 || !strings.Contains(r.stderr, tc.msg) || !strings.Contains(r.stderr, "usage: backupctl schedule APP [--on | --off]") {
			t.Errorf("%v: %+v", tc.args, r)
		}
	}
	if len(puts) != 2 {
		t.Errorf("usage errors sent %d PUTs", len(puts)-2)
	}
}

var hookT0 = time.Date(2026, 11, 22, 9, 30, 0, 0, time.UTC)

func TestWebhookAdd(t *testing.T) {
	var got []map[string]any
	answer := func(org, app string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Idempotency-Key") == "" {
				t.Error("POST without an Idempotency-Key")
			}
			b := requestBody(t, r)
			got = append(got, b)
			events, _ := b["events"].([]any)
			v := projections.NewWebhookView{WebhookView: projections.WebhookView{ID: "W1", Org: org, App: app, URL: b["url"].(string),
				Events: []string{"backup.completed", "backup.failed"}, CreatedBy: "ada", CreatedAt: hookT0}, Secret: "whsec_generated"}
			if len(events) == 1 {
				v.Events = []string{events[0].(string)}
			}
			if s, ok := b["secret"].(string); ok {
				v.Secret = s
			}
			writeAnswer(w, http.StatusCreated, v)
		}
	}
	srv := fakeServer(t, map[string]http.HandlerFunc{
		"POST /v1/apps/crm/webhooks":  answer("", "crm"),
		"POST /v1/orgs/acme/webhooks": answer("acme", ""),
	})

	r := runCLI(t, srv, "", "", false, "webhook", "add", "--app", "crm", "https://hooks.example.com/in", "--event", "backup.failed")
	if r.code != 0 {
		t.Fatalf("add: %+v", r)
	}
	for _, want := range []string{"ID:     W1\n", "App:    crm\n", "URL:    https://hooks.example.com/in\n", "Events: backup.failed\n", "Secret: whsec_generated\n"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, r.stdout)
		}
	}
	if !strings.Contains(r.stderr, "Registered webhook W1 of app crm.") || !strings.Contains(r.stderr, "not shown again") {
		t.Errorf("stderr: %q", r.stderr)
	}

	// An organisation's webhook, every event, the secret from stdin.
	r = runCLI(t, srv, "", "a secret of sixteen bytes or more\n", false, "webhook", "add", "--org", "acme", "--secret", "-", "http://10.0.0.1/hook")
	if r.code != 0 || !strings.Contains(r.stdout, "Organisation: acme\n") || !strings.Contains(r.stdout, "Secret:       a secret of sixteen bytes or more\n") ||
		!strings.Contains(r.stdout, "Events:       backup.completed, backup.failed\n") || !strings.Contains(r.stderr, "of organisation acme.") {
		t.Fatalf("org add: %+v", r)
	}
	r = runCLI(t, srv, "", "", false, "webhook", "add", "--json", "--app", "crm", "--secret", "given secret, long enough", "--event", "a", "--event", "b", "https://x.example/")
	if r.code != 0 || !strings.Contains(r.stdout, `"secret": "given secret, long enough"`) || !strings.Contains(r.stderr, "not shown again") {
		t.Fatalf("add --json: %+v", r)
	}
	want := []map[string]any{
		{"url": "https://hooks.example.com/in", "events": []any{"backup.failed"}},
		{"url": "http://10.0.0.1/hook", "secret": "a secret of sixteen bytes or more"},
		{"url": "https://x.example/", "events": []any{"a", "b"}, "secret": "given secret, long enough"},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("bodies\n%v\nwant\n%v", got, want)
	}

	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"webhook", "add", "https://x.example/"}, "--app APP or --org ORG"},
		{[]string{"webhook", "add", "--app", "crm", "--org", "acme", "https://x.example/"}, "--app and --org exclude each other"},
		{[]string{"webhook", "add", "--app", "crm"}, "missing arguments"},
		{[]string{"webhook", "list"}, "--app APP or --org ORG"},
		{[]string{"webhook", "rm", "--org", "acme"}, "missing arguments"},
		{[]string{"webhook", "deliveries", "--app", "crm", "W1", "--limit", "0"}, "--limit must be 1 to 1000"},
		{[]string{"webhook", "deliveries", "--app", "crm", "W1", "--limit", "1001"}, "--limit must be 1 to 1000"},
		{[]string{"webhook"}, "webhook needs a subcommand"},
		{[]string{"webhook", "add", "--app", "crm", "--secret", "-", "https://x.example/"}, "no secret on stdin"},
	} {
		r := runCLI(t, srv, "", "", false, tc.args...)
		if r.code != 2 || !strings.Contains(r.stderr, tc.msg) {
			t.Errorf("%v: %+v", tc.args, r)
		}
	}
	if len(got) != 3 {
		t.Errorf("usage errors sent %d requests", len(got)-3)
	}
}

func TestWebhookListRmDeliveries(t *testing.T) {
	hooks := []projections.WebhookView{
		{ID: "W1", App: "crm", URL: "https://hooks.example.com/in", Events: []string{"backup.failed", "restore.failed"}, CreatedBy: "ada", CreatedAt: hookT0},
	}
	var queries []string
	next := hookT0.Add(time.Minute)
	srv := fakeServer(t, map[string]http.HandlerFunc{
		"GET /v1/apps/crm/webhooks": func(w http.ResponseWriter, _ *http.Request) {
			writeAnswer(w, http.StatusOK, projections.WebhookList{Webhooks: hooks})
		},
		"GET /v1/orgs/acme/webhooks": func(w http.ResponseWriter, _ *http.Request) {
			writeAnswer(w, http.StatusOK, projections.WebhookList{Webhooks: []projections.WebhookView{}})
		},
		"DELETE /v1/orgs/acme/webhooks/W2": func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Idempotency-Key") == "" {
				t.Error("DELETE without an Idempotency-Key")
			}
			w.WriteHeader(http.StatusNoContent)
		},
		"DELETE /v1/apps/crm/webhooks/W9": func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprint(w, `{"status":404,"code":"not_found","detail":"webhook W9 not found"}`)
		},
		"GET /v1/apps/crm/webhooks/W1/deliveries": func(w http.ResponseWriter, r *http.Request) {
			queries = append(queries, r.URL.RawQuery)
			writeAnswer(w, http.StatusOK, projections.DeliveryList{Deliveries: []projections.DeliveryView{
				{DeliveryID: "D1", WebhookID: "W1", EventType: "backup.failed", App: "crm", Attempt: 1, Time: hookT0,
					Result: "failed", StatusCode: 502, Error: "bad\tgateway", NextAttemptAt: &next},
				{DeliveryID: "D1", WebhookID: "W1", EventType: "backup.failed", App: "crm", Attempt: 2, Time: next,
					Result: "delivered", StatusCode: 204},
			}})
		},
		"GET /v1/orgs/acme/webhooks/W2/deliveries": func(w http.ResponseWriter, _ *http.Request) {
			writeAnswer(w, http.StatusOK, projections.DeliveryList{Deliveries: []projections.DeliveryView{}})
		},
	})

	r := runCLI(t, srv, "", "", false, "webhook", "list", "--app", "crm")
	wantList := "ID  URL                           EVENTS                         CREATED (UTC)     BY\n" +
		"W1  https://hooks.example.com/in  backup.failed, restore.failed  2026-11-22 09:30  ada\n"
	if r.code != 0 || r.stdout != wantList {
		t.Errorf("list: %+v\nwant\n%s", r, wantList)
	}
	r = runCLI(t, srv, "", "", false, "webhook", "list", "--org", "acme")
	if r.code != 0 || r.stdout != "No webhooks of organisation acme.\n" {
		t.Errorf("empty list: %+v", r)
	}
	r = runCLI(t, srv, "", "", false, "webhook", "list", "--org", "acme", "--json")
	if r.code != 0 || r.stdout != "{\n  \"webhooks\": []\n}\n" {
		t.Errorf("list --json: %+v", r)
	}

	r = runCLI(t, srv, "", "", false, "webhook", "rm", "--org", "acme", "W2")
	if r.code != 0 || r.stdout != "Removed webhook W2 of organisation acme.\n" {
		t.Errorf("rm: %+v", r)
	}
	r = runCLI(t, srv, "", "", false, "webhook", "rm", "--org", "acme", "W2", "--json")
	if r.code != 0 || r.stdout != "{\n  \"deleted\": true,\n  \"id\": \"W2\",\n  \"org\": \"acme\"\n}\n" {
		t.Errorf("rm --json: %+v", r)
	}
	r = runCLI(t, srv, "", "", false, "webhook", "rm", "--app", "crm", "W9")
	if r.code != 1 || r.stderr != "backupctl: not_found: webhook W9 not found\n" {
		t.Errorf("rm unknown: %+v", r)
	}

	r = runCLI(t, srv, "", "", false, "webhook", "deliveries", "--app", "crm", "W1")
	wantTable := "TIME (UTC)           EVENT          ATTEMPT  RESULT     STATUS  ERROR\n" +
		"2026-11-22 09:30:00  backup.failed  1        failed     502     bad gateway\n" +
		"2026-11-22 09:31:00  backup.failed  2        delivered  204     -\n"
	if r.code != 0 || r.stdout != wantTable {
		t.Errorf("deliveries: %+v\nwant\n%s", r, wantTable)
	}
	r = runCLI(t, srv, "", "", false, "webhook", "deliveries", "W1", "--app", "crm", "--limit", "5")
	if r.code != 0 {
		t.Errorf("deliveries --limit: %+v", r)
	}
	if want := []string{"", "limit=5"}; !slices.Equal(queries, want) {
		t.Errorf("queries %q, want %q", queries, want)
	}
	r = runCLI(t, srv, "", "", false, "webhook", "deliveries", "--org", "acme", "W2")
	if r.code != 0 || r.stdout != "No deliveries of webhook W2 yet.\n" {
		t.Errorf("no deliveries: %+v", r)
	}
}
