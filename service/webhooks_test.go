package service_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/backupledger/backupledger/domain"
)

func TestWebhooks(t *testing.T) {
	r := newIdentityRig(t)
	ctx := t.Context()
	r.must(t, r.admin, domain.CreateOrg{ID: "acme", Name: "ACME"})
	r.user(t, "alice")
	r.user(t, "bob")
	r.must(t, r.admin, domain.SetMember{Org: "acme", User: "alice", Member: true})
	r.must(t, r.admin, domain.SetMember{Org: "acme", User: "bob", Member: true})
	alice, bob := domain.Principal{ID: "alice"}, domain.Principal{ID: "bob"}
	r.must(t, alice, domain.RegisterApp{App: "crm", Org: "acme"})

	// An app admin registers one for the app, with a generated secret.
	w, err := r.id.RegisterWebhook(ctx, alice, domain.RegisterWebhook{App: "crm", URL: "https://hooks.example.com/crm",
		Events: []string{domain.TypeBackupFailed, domain.TypeBackupCompleted, domain.TypeBackupFailed}}, "", domain.Meta{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(w.Secret, "whsec_") || len(w.Secret) < 40 || w.CreatedBy != "alice" ||
		!slices.Equal(w.Events, []string{domain.TypeBackupCompleted, domain.TypeBackupFailed}) {
		t.Fatalf("registered %+v", w)
	}
	if got, err := r.id.WebhookSecret(ctx, w.ID); err != nil || string(got) != w.Secret {
		t.Fatalf("stored secret %q, %v", got, err)
	}
	// The server administrator registers one for the organisation, with
	// its own secret and every event type.
	ow, err := r.id.RegisterWebhook(ctx, r.admin, domain.RegisterWebhook{Org: "acme", URL: "http://hooks.example.net:9/acme"}, "a-secret-of-16-bytes", domain.Meta{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ow.Events, domain.NotifiableTypes()) {
		t.Fatalf("org webhook events %v", ow.Events)
	}
	// Nothing of the secrets is in the events.
	for _, m := range r.stream.snapshot() {
		if strings.Contains(string(m.body), w.Secret) || strings.Contains(string(m.body), "a-secret-of-16-bytes") {
			t.Fatalf("a webhook secret is in the stream: %s", m.body)
		}
	}
	var forFailed, forCorrupt []string
	r.id.Read(func(d *domain.Directory) {
		for _, x := range d.WebhooksFor("crm", domain.TypeBackupFailed, 0) {
			forFailed = append(forFailed, x.ID)
		}
		for _, x := range d.WebhooksFor("crm", domain.TypeBackupCorrupted, 0) {
			forCorrupt = append(forCorrupt, x.ID)
		}
	})
	if !slices.Equal(forFailed, []string{w.ID, ow.ID}) || !slices.Equal(forCorrupt, []string{ow.ID}) {
		t.Fatalf("webhooks for backup.failed %v, backup.corrupted %v", forFailed, forCorrupt)
	}

	// Refusals change nothing.
	before := r.stream.len()
	for _, c := range []struct {
		p      domain.Principal
		cmd    domain.RegisterWebhook
		secret string
		code   string
	}{
		{bob, domain.RegisterWebhook{App: "crm", URL: "https://x.example"}, "", domain.CodeNotFound},
		{alice, domain.RegisterWebhook{Org: "acme", URL: "https://x.example"}, "", domain.CodePermissionDenied},
		{alice, domain.RegisterWebhook{Org: "other", URL: "https://x.example"}, "", domain.CodeNotFound},
		{alice, domain.RegisterWebhook{App: "crm", Org: "acme", URL: "https://x.example"}, "", domain.CodeInvalidArgument},
		{alice, domain.RegisterWebhook{App: "crm", URL: "ftp://x.example"}, "", domain.CodeInvalidArgument},
		{alice, domain.RegisterWebhook{App: "crm", URL: "https://user:pw@x.example"}, "", domain.CodeInvalidArgument},
		{alice, domain.RegisterWebhook{App: "crm", URL: "/relative"}, "", domain.CodeInvalidArgument},
		{alice, domain.RegisterWebhook{App: "crm", URL: "https://x.example/" + strings.Repeat("a", 2048)}, "", domain.CodeInvalidArgument},
		{alice, domain.RegisterWebhook{App: "crm", URL: "https://x.example", Events: []string{domain.TypeBackupRenamed}}, "", domain.CodeInvalidArgument},
		{alice, domain.RegisterWebhook{App: "crm", URL: "https://x.example"}, "short", domain.CodeInvalidArgument},
	} {
		_, err := r.id.RegisterWebhook(ctx, c.p, c.cmd, c.secret, domain.Meta{})
		if domain.Code(err) != c.code {
			t.Errorf("%s %+v: err = %v, want %s", c.p.ID, c.cmd, err, c.code)
		}
	}
	if r.stream.len() != before || len(r.secrets.m) != 4 { // alice's and bob's passwords, two webhooks
		t.Fatalf("refused registrations changed the stream (%d → %d) or stored secrets (%d)", before, r.stream.len(), len(r.secrets.m))
	}

	// A retry of a registration answers already_exists and stores no
	// second secret.
	m := domain.Meta{CommandID: "register-once"}
	if _, err := r.id.RegisterWebhook(ctx, alice, domain.RegisterWebhook{App: "crm", URL: "https://x.example"}, "", m); err != nil {
		t.Fatal(err)
	}
	secrets := len(r.secrets.m)
	if _, err := r.id.RegisterWebhook(ctx, alice, domain.RegisterWebhook{App: "crm", URL: "https://x.example"}, "", m); domain.Code(err) != domain.CodeAlreadyExists || len(r.secrets.m) != secrets {
		t.Fatalf("retried registration: %v, secrets %d → %d", err, secrets, len(r.secrets.m))
	}

	// Removal goes through the scope the webhook belongs to.
	if _, err := r.id.Execute(ctx, alice, domain.RemoveWebhook{ID: ow.ID, App: "crm"}, domain.Meta{}); domain.Code(err) != domain.CodeNotFound {
		t.Fatalf("removing the org's webhook through the app: %v", err)
	}
	if _, err := r.id.Execute(ctx, bob, domain.RemoveWebhook{ID: w.ID, App: "crm"}, domain.Meta{}); domain.Code(err) != domain.CodeNotFound {
		t.Fatalf("bob removing crm's webhook: %v", err)
	}
	r.must(t, alice, domain.RemoveWebhook{ID: w.ID, App: "crm"})
	r.id.Read(func(d *domain.Directory) {
		if !d.WebhookRemoved(w.ID) || d.WebhookRemoved(ow.ID) || d.WebhookRemoved("01NEVERREGISTERED") {
			t.Errorf("removed: %s %v, %s %v, unknown %v", w.ID, d.WebhookRemoved(w.ID), ow.ID, d.WebhookRemoved(ow.ID), d.WebhookRemoved("01NEVERREGISTERED"))
		}
		if _, ok := d.Webhook(w.ID); ok || len(d.Webhooks("", "crm")) != 1 || len(d.Webhooks("acme", "")) != 1 {
			t.Errorf("after removal: app webhooks %v, org webhooks %v", d.Webhooks("", "crm"), d.Webhooks("acme", ""))
		}
	})
}
