package projections

import (
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/backupledger/backupledger/domain"
)

// WebhookPayload is the JSON document POSTed to a webhook. Its fields are
// a contract with receivers (docs/notifications.md): only added to.
type WebhookPayload struct {
	// DeliveryID is the same in every attempt of one delivery: receivers
	// deduplicate on it.
	DeliveryID string    `json:"delivery_id"`
	WebhookID  string    `json:"webhook_id"`
	Type       string    `json:"type"`
	App        string    `json:"app"`
	Time       time.Time `json:"time"`
	// Event is the ledger event as it is stored in the stream.
	Event json.RawMessage `json:"event"`
	// Backup is the backup as the event left it (null when it left the
	// list, as an expired backup does); Restore likewise.
	Backup  *BackupView  `json:"backup"`
	Restore *RestoreView `json:"restore"`
}

// WebhookNotice is one webhook delivery an event causes.
type WebhookNotice struct {
	DeliveryID string
	WebhookID  string
	Body       []byte
}

// EmailNotice is one e-mail an event causes.
type EmailNotice struct {
	ID      string
	To      []string
	Subject string
	Body    string
}

// Notices are the notifications of one event.
type Notices struct {
	Webhooks []WebhookNotice
	Emails   []EmailNotice
}

// Notices returns the notifications that the event env (stored as raw at
// stream sequence seq) causes, as the projection stands: call it once the projection has
// applied the event. publicURL, if set, is where people reach the HTTP API
// (links in e-mails).
//
// Webhooks: those of the app and of its organisation that asked for the
// event's type. E-mail (to people with an address, who still administer
// the app): the person who started a backup when it is ready or failed;
// every admin when a nightly backup's last try failed, when a backup is
// found corrupt and when a restore into the app ends.
func (s *Store) Notices(seq uint64, env *domain.Envelope, raw []byte, publicURL string) (Notices, error) {
	if env.App == domain.IdentityStream || !domain.Notifiable(env.Type) {
		return Notices{}, nil
	}
	ev, err := domain.DecodeEvent(env)
	if err != nil {
		return Notices{}, fmt.Errorf("decode %s %s: %w", env.Type, env.ID, err)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	var (
		backup  *BackupView
		restore *RestoreView
		b       domain.Backup
		hasB    bool
	)
	if m := s.apps[env.App]; m != nil {
		if id := domain.BackupID(ev); id != "" {
			if b, hasB = m.state.Backup(id); hasB {
				v := NewBackupView(b)
				backup = &v
			}
		}
		if id := domain.RestoreID(ev); id != "" {
			if r, ok := m.state.Restore(id); ok {
				v := NewRestoreView(r)
				restore = &v
			}
		}
	}
	var out Notices
	for _, w := range s.dir.WebhooksFor(env.App, env.Type, seq) {
		p := WebhookPayload{DeliveryID: env.ID + "." + w.ID, WebhookID: w.ID, Type: env.Type, App: env.App,
			Time: env.Time.UTC(), Event: json.RawMessage(raw), Backup: backup, Restore: restore}
		body, err := json.Marshal(p)
		if err != nil {
			return Notices{}, fmt.Errorf("encode webhook payload: %w", err)
		}
		out.Webhooks = append(out.Webhooks, WebhookNotice{DeliveryID: p.DeliveryID, WebhookID: w.ID, Body: body})
	}
	if mail, ok := s.email(env, ev, backup, restore, b, hasB, publicURL); ok {
		out.Emails = append(out.Emails, mail)
	}
	return out, nil
}

// email is the e-mail of an event, if anyone is to get one.
func (s *Store) email(env *domain.Envelope, ev domain.Event, backup *BackupView, restore *RestoreView, b domain.Backup, hasB bool, publicURL string) (EmailNotice, bool) {
	app := env.App
	var (
		to            []string
		subject, text string
	)
	link := func(path string) string {
		if publicURL == "" {
			return ""
		}
		return "\n\n" + strings.TrimSuffix(publicURL, "/") + path
	}
	backupPath := func(id string) string {
		return "/v1/apps/" + url.PathEscape(app) + "/backups/" + url.PathEscape(id)
	}
	switch e := ev.(type) {
	case *domain.BackupCompleted:
		if !hasB {
			return EmailNotice{}, false
		}
		to = s.addressOf(app, b.CreatedBy)
		subject = fmt.Sprintf("Backup %q of %s is ready", b.Name, app)
		text = fmt.Sprintf("The backup %q of app %s is ready: %s, %s.\nIt expires on %s.",
			b.Name, app, count(b.ItemCount, "item"), count(int(b.SizeBytes), "byte"), b.ExpiresAt.UTC().Format("2006-01-02 15:04 MST")) +
			link(backupPath(b.ID)+"/archive")
	case *domain.BackupFailed:
		if !hasB {
			return EmailNotice{}, false
		}
		to = s.addressOf(app, b.CreatedBy)
		if b.Origin == domain.OriginNightly {
			if st := s.apps[app].state.Nightly(); st.BackupID == b.ID && st.Try >= domain.NightlyTries {
				to = s.adminAddresses(app)
			}
		}
		subject = fmt.Sprintf("Backup %q of %s failed", b.Name, app)
		text = fmt.Sprintf("The backup %q of app %s failed: %s", b.Name, app, e.Reason) + link(backupPath(b.ID))
	case *domain.BackupCorrupted:
		to = s.adminAddresses(app)
		name := e.BackupID
		if hasB {
			name = fmt.Sprintf("%q (%s)", b.Name, b.ID)
		}
		subject = fmt.Sprintf("Backup %s of %s is corrupt", name, app)
		text = fmt.Sprintf("The stored archive of backup %s of app %s failed its check: %s\nIt can no longer be restored or downloaded.",
			name, app, e.Reason) + link(backupPath(e.BackupID))
	case *domain.RestoreCompleted:
		to = s.adminAddresses(app)
		subject = fmt.Sprintf("Restore into %s completed", app)
		text = fmt.Sprintf("Restore %s into app %s completed and was verified.", e.RestoreID, app)
		if restore != nil {
			text = fmt.Sprintf("Backup %s of app %s was restored into app %s and verified (restore %s, started by %s).",
				restore.BackupID, restore.SourceApp, app, e.RestoreID, restore.RequestedBy)
		}
		if e.PreRestoreBackup != "" {
			text += "\nThe state before the restore is in backup " + e.PreRestoreBackup + "."
		}
		if restore != nil && !restore.AutoEndMaintenance {
			text += "\nThe app is still in maintenance: end it when you have checked the result."
		}
		text += link("/v1/apps/" + url.PathEscape(app) + "/restores/" + url.PathEscape(e.RestoreID))
	case *domain.RestoreFailed:
		to = s.adminAddresses(app)
		subject = fmt.Sprintf("Restore into %s failed", app)
		text = fmt.Sprintf("Restore %s into app %s failed in step %s: %s\nThe app stays in maintenance.", e.RestoreID, app, e.Step, e.Reason)
		if e.PreRestoreBackup != "" {
			text += "\nRoll back with backup " + e.PreRestoreBackup + "."
		}
		text += link("/v1/apps/" + url.PathEscape(app) + "/restores/" + url.PathEscape(e.RestoreID))
	default:
		return EmailNotice{}, false
	}
	if len(to) == 0 {
		return EmailNotice{}, false
	}
	return EmailNotice{ID: env.ID + ".email", To: to, Subject: subject, Body: text + "\n\n-- \nbackupledger\n"}, true
}

// addressOf returns the e-mail address of user if it still administers
// app and has one.
func (s *Store) addressOf(app, user string) []string {
	u, ok := s.dir.User(user)
	if !ok || u.Email == "" || !s.dir.Administers(user, app) {
		return nil
	}
	return []string{u.Email}
}

// adminAddresses returns the addresses of app's admins, sorted.
func (s *Store) adminAddresses(app string) []string {
	a, ok := s.dir.App(app)
	if !ok {
		return nil
	}
	var out []string
	for user := range a.Admins {
		out = append(out, s.addressOf(app, user)...)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// count says n things: "1 item", "2 items".
func count(n int, thing string) string {
	if n == 1 {
		return "1 " + thing
	}
	return fmt.Sprintf("%d %ss", n, thing)
}
