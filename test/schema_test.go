package test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	njs "github.com/nats-io/nats.go/jetstream"
	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/backupledger/backupledger/adapters/password"
	"github.com/backupledger/backupledger/cmd/backupd/daemon"
	"github.com/backupledger/backupledger/domain"
	"github.com/backupledger/backupledger/projections"
	"github.com/backupledger/backupledger/service"
)

// schemaDir holds the JSON Schemas of the events (docs/events.md).
const schemaDir = "../docs/schemas"

// Every event a running backupd writes, of (almost) every type, matches
// the JSON Schema of its type in docs/schemas, carries the headers
// docs/events.md promises, and continues its subject's hash chain.
func TestWrittenEventsMatchSchemas(t *testing.T) {
	clock := &movableClock{}
	n := startNodeWith(t, t.TempDir(), func(c *daemon.Config) {
		c.Identity.PasswordParams = password.TestParams()
		c.Rules.MinInterval = 0
		c.Rules.MaxBackups = 6
		c.Sweeps.NightlyInterval = time.Hour // the test sweeps
		c.Sweeps.OrphanInterval = time.Hour
	}, func(h *daemon.TestHooks) {
		h.Clock = clock
		h.SourceWrapper = func(s service.Source) service.Source { return failingExports{s, map[string]bool{"broken": true}} }
	})

	// Identity: an organisation, two users, a session and a wrong
	// password, an app registered by a member, an admin granted and
	// revoked, a token made and revoked, a user disabled, enabled and
	// given a new password, a member removed, webhooks added and removed.
	n.must(http.StatusCreated, "POST", "/v1/orgs", map[string]string{"id": "acme", "name": "ACME Corp."})
	const pw = "carol has a long password"
	n.must(http.StatusCreated, "POST", "/v1/users", map[string]string{"id": "carol", "name": "Carol", "email": "carol@example.com", "password": pw})
	n.must(http.StatusCreated, "POST", "/v1/users", map[string]string{"id": "dave", "name": "Dave", "password": "dave has a long password"})
	n.must(http.StatusNoContent, "PUT", "/v1/orgs/acme/members/carol", nil)
	n.must(http.StatusNoContent, "PUT", "/v1/orgs/acme/members/dave", nil)
	var session projections.NewTokenView
	n.must(http.StatusCreated, "POST", "/v1/sessions", map[string]string{"user": "carol", "password": pw}, n.as("")...).json(t, &session)
	if r := n.do("POST", "/v1/sessions", map[string]string{"user": "carol", "password": "not carol's password"}, n.as("")...); r.status != http.StatusUnauthorized {
		t.Fatalf("wrong password: status %d: %s", r.status, r.body)
	}
	carol := n.as(session.Token)
	n.must(http.StatusOK, "PUT", "/v1/apps/crm", map[string]string{"org": "acme"}, carol...)
	n.must(http.StatusNoContent, "PUT", "/v1/apps/crm/admins/dave", nil)
	n.must(http.StatusNoContent, "DELETE", "/v1/apps/crm/admins/dave", nil)
	var tok projections.NewTokenView
	n.must(http.StatusCreated, "POST", "/v1/tokens", map[string]string{"name": "ci",
		"expires_at": time.Now().Add(24 * time.Hour).UTC().Format(time.RFC3339)}, carol...).json(t, &tok)
	n.must(http.StatusNoContent, "DELETE", "/v1/tokens/"+tok.ID, nil, carol...)
	n.must(http.StatusOK, "PATCH", "/v1/users/dave", map[string]bool{"disabled": true})
	n.must(http.StatusOK, "PATCH", "/v1/users/dave", map[string]bool{"disabled": false})
	n.must(http.StatusOK, "PUT", "/v1/users/dave/password", map[string]string{"password": "dave has a new long password"})
	// carol changes her own, which ends her other session.
	n.must(http.StatusCreated, "POST", "/v1/sessions", map[string]string{"user": "carol", "password": pw}, n.as("")...)
	n.must(http.StatusOK, "PUT", "/v1/users/carol/password", map[string]string{"password": "carol has a new long password", "current_password": pw}, carol...)
	n.must(http.StatusNoContent, "DELETE", "/v1/orgs/acme/members/dave", nil)
	hook := n.registerWebhook("crm", "https://hooks.example.com/crm", []string{domain.TypeBackupExpired})
	n.must(http.StatusNoContent, "DELETE", "/v1/apps/crm/webhooks/"+hook.ID, nil)
	hook = n.registerWebhook("org:acme", "https://hooks.example.com/acme", nil)
	n.must(http.StatusNoContent, "DELETE", "/v1/orgs/acme/webhooks/"+hook.ID, nil)

	// The signing key: made at the first start (key.created), rotated.
	n.must(http.StatusCreated, "POST", "/v1/ledger/keys/rotate", nil)

	// Backups: made, renamed, deleted, uploaded, verified, found corrupt,
	// failed; a maintenance by hand; a restore with a pre-restore backup,
	// and one whose pre-restore backup fails.
	n.setDocs("crm", map[string]string{"app.json": `{"name":"CRM"}`, "pages/home": "<h1>v1</h1>"})
	n.putConfig("broken", "app.json", `{"v":1}`)
	at := time.Now().UTC().Add(2 * time.Hour).Truncate(time.Minute)
	for _, app := range []string{"crm", "full"} {
		n.ensureApp(app)
		n.must(http.StatusOK, "PUT", "/v1/apps/"+app+"/schedule", map[string]any{"enabled": true, "time": at.Format("15:04"), "time_zone": "UTC"})
	}
	// full holds as many backups as the quota allows: its nightly backup
	// is skipped.
	for i := 0; ; i++ {
		r := n.do("POST", "/v1/apps/full/backups", map[string]any{"name": "full " + strconv.Itoa(i)})
		if r.status == http.StatusConflict {
			break
		}
		if r.status != http.StatusAccepted || i > 10 {
			t.Fatalf("backup %d of full: status %d: %s", i, r.status, r.body)
		}
	}
	failed := n.createBackup("broken", map[string]any{"name": "fails"})
	b1 := n.createBackup("crm", map[string]any{"name": "first", "description": "before the upgrade"})
	b2 := n.createBackup("crm", map[string]any{"name": "deleted"})
	b3 := n.createBackup("crm", map[string]any{"name": "corrupt"})
	b1 = n.waitStatus("crm", b1.ID, 20*time.Second, domain.StatusReady)
	n.waitStatus("crm", b2.ID, 20*time.Second, domain.StatusReady)
	n.waitStatus("crm", b3.ID, 20*time.Second, domain.StatusReady)
	n.waitStatus("broken", failed.ID, 20*time.Second, domain.StatusFailed)
	n.must(http.StatusOK, "PATCH", "/v1/apps/crm/backups/"+b1.ID, map[string]string{"name": "first, renamed"})
	n.must(http.StatusNoContent, "DELETE", "/v1/apps/crm/backups/"+b2.ID, nil)
	_, raw := n.download("crm", b1, "")
	n.must(http.StatusCreated, "POST", "/v1/apps/crm/backups/upload?name=copy", raw, "Content-Type", "application/zip")
	n.putArchive("01JUPLOADNEVERRECORDED0000", "crm", raw)
	n.must(http.StatusOK, "POST", "/v1/apps/crm/backups/"+b1.ID+"/verify", nil)
	n.corruptArchive(b3.ID)
	var v projections.BackupView
	n.must(http.StatusOK, "POST", "/v1/apps/crm/backups/"+b3.ID+"/verify", nil).json(t, &v)
	if v.CorruptAt == nil {
		t.Fatalf("corrupted archive passed its check: %+v", v)
	}
	n.must(http.StatusOK, "POST", "/v1/apps/crm/maintenance", map[string]string{"reason": "upgrade"})
	n.must(http.StatusOK, "DELETE", "/v1/apps/crm/maintenance", map[string]string{"reason": "done"})
	r := n.waitRestore("crm", n.restore("crm", map[string]any{"backup_id": b1.ID, "pre_restore_backup": true, "auto_end_maintenance": true}).ID)
	if r.Status != "completed" {
		t.Fatalf("restore = %+v", r)
	}
	r = n.waitRestore("broken", n.restore("crm", map[string]any{"backup_id": b1.ID, "target_app": "broken", "pre_restore_backup": true}).ID)
	if r.Status != "failed" {
		t.Fatalf("restore whose pre-restore backup fails = %+v", r)
	}

	// Two hours later: the nightly backups (one skipped) and the orphan
	// sweep; 61 days later, the expiry.
	clock.set(time.Until(at) + time.Minute)
	if got, err := n.d.NightlyNow(t.Context()); err != nil || got != 2 {
		t.Fatalf("nightly sweep: %d tries, %v; want 2", got, err)
	}
	for _, b := range n.nightlies("crm") {
		n.waitStatus("crm", b.ID, 20*time.Second, domain.StatusReady)
	}
	if rep, err := n.d.OrphansNow(t.Context()); err != nil || rep.Removed != 1 {
		t.Fatalf("orphan sweep: %+v, %v", rep, err)
	}
	clock.set(61 * 24 * time.Hour)
	if got, err := n.d.SweepNow(t.Context()); err != nil || got == 0 {
		t.Fatalf("expiry sweep: %d, %v", got, err)
	}

	seen := checkStream(t, n)
	var missing []string
	for _, typ := range domain.EventTypes() {
		if seen[typ] == 0 {
			missing = append(missing, typ)
		}
	}
	if len(missing) > 0 {
		t.Errorf("no event of %v was written", missing)
	}
	t.Logf("%d types checked: %v", len(seen), seen)
}

// checkStream reads every message of the stream LEDGER and checks it
// against docs/events.md and docs/schemas; it returns how many events of
// each type it read.
func checkStream(t *testing.T, n *node) map[string]int {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	schemas := map[string]*jsonschema.Schema{}
	schemaOf := func(typ string) *jsonschema.Schema {
		if s, ok := schemas[typ]; ok {
			return s
		}
		path, err := filepath.Abs(filepath.Join(schemaDir, typ+".json"))
		if err != nil {
			t.Fatal(err)
		}
		s, err := c.Compile(path)
		if err != nil {
			t.Fatalf("schema of %s: %v", typ, err)
		}
		schemas[typ] = s
		return s
	}

	last := n.lastSeq()
	st, err := n.js.Stream(ctx, "LEDGER")
	if err != nil {
		t.Fatal(err)
	}
	cons, err := st.OrderedConsumer(ctx, njs.OrderedConsumerConfig{FilterSubjects: []string{"ledger.events.>"}})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	chain := map[string]string{}  // subject → hash of its last event
	lastOf := map[string]uint64{} // subject → sequence of its last event
	for {
		msg, err := cons.Next(njs.FetchMaxWait(5 * time.Second))
		if err != nil {
			t.Fatalf("read the stream up to %d: %v", last, err)
		}
		meta, err := msg.Metadata()
		if err != nil {
			t.Fatal(err)
		}
		seq, raw, subj := meta.Sequence.Stream, msg.Data(), msg.Subject()
		var env domain.Envelope
		if err := json.Unmarshal(raw, &env); err != nil {
			t.Fatalf("seq %d: %v: %s", seq, err, raw)
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
		if err != nil {
			t.Fatalf("seq %d: %v", seq, err)
		}
		if err := schemaOf(env.Type).Validate(doc); err != nil {
			t.Errorf("seq %d (%s) does not match schemas/%s.json: %v\n%s", seq, subj, env.Type, err, raw)
		}
		seen[env.Type]++
		// The subject, the headers and the hash chain of docs/events.md.
		if subj != "ledger.events."+env.App {
			t.Errorf("seq %d: app %q on subject %s", seq, env.App, subj)
		}
		h := msg.Headers()
		if got := h.Get("Ledger-Event-Type"); got != env.Type {
			t.Errorf("seq %d: Ledger-Event-Type %q, type %q", seq, got, env.Type)
		}
		if got, want := h.Get("Nats-Msg-Id"), env.App+"|"+env.CommandID+"|"+env.Actor; got != want {
			t.Errorf("seq %d: Nats-Msg-Id %q, want %q", seq, got, want)
		}
		if got, want := h.Get("Nats-Expected-Last-Subject-Sequence"), strconv.FormatUint(lastOf[subj], 10); got != want {
			t.Errorf("seq %d: Nats-Expected-Last-Subject-Sequence %q, want %q", seq, got, want)
		}
		if env.PrevHash != chain[subj] {
			t.Errorf("seq %d: prev_hash %q, want %q (the hash of the subject's previous event)", seq, env.PrevHash, chain[subj])
		}
		if env.CorrelationID == "" {
			t.Errorf("seq %d: no correlation_id", seq)
		}
		chain[subj], lastOf[subj] = domain.HashEvent(raw), seq
		if seq >= last {
			break
		}
	}
	if _, ok := chain["ledger.events."+domain.IdentityStream]; !ok {
		t.Error("no identity events read")
	}
	return seen
}
