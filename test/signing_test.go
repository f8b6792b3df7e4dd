package test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	njs "github.com/nats-io/nats.go/jetstream"
	"golang.org/x/crypto/bcrypt"

	"github.com/backupledger/backupledger/adapters/jetstream"
	"github.com/backupledger/backupledger/adapters/natsapi"
	"github.com/backupledger/backupledger/adapters/password"
	"github.com/backupledger/backupledger/cmd/backupd/daemon"
	"github.com/backupledger/backupledger/domain"
	"github.com/backupledger/backupledger/projections"
	"github.com/backupledger/backupledger/service"
	"github.com/backupledger/backupledger/test/natstest"
)

// storedMessages reads every message of LEDGER with its headers and store
// time, with the node's own rights.
func (n *node) storedMessages() []domain.StoredMessage {
	n.t.Helper()
	ctx := context.Background()
	st, err := n.js.Stream(ctx, jetstream.StreamName)
	if err != nil {
		n.t.Fatal(err)
	}
	var out []domain.StoredMessage
	for seq := uint64(1); seq <= st.CachedInfo().State.LastSeq; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if err != nil {
			n.t.Fatalf("get %d: %v", seq, err)
		}
		out = append(out, domain.StoredMessage{Seq: m.Sequence, Token: strings.TrimPrefix(m.Subject, jetstream.SubjectPrefix),
			Body: m.Data, KeyID: m.Header.Get(domain.HeaderKeyID), Signature: m.Header.Get(domain.HeaderSignature),
			MAC: m.Header.Get(domain.HeaderMAC), Stored: m.Time})
	}
	return out
}

// verdicts checks the whole stream as the projections and audit verify
// do, and returns the verdict of each message by sequence.
func (n *node) verdicts() (map[uint64]domain.Verdict, *domain.LedgerCheck) {
	n.t.Helper()
	check := domain.NewLedgerCheck()
	out := map[uint64]domain.Verdict{}
	for _, m := range n.storedMessages() {
		out[m.Seq] = check.Check(m)
	}
	return out, check
}

// keys reads GET /v1/ledger/keys, without a token.
func (n *node) keys() projections.KeyList {
	n.t.Helper()
	var l projections.KeyList
	n.must(http.StatusOK, "GET", "/v1/ledger/keys", nil, n.as("")...).json(n.t, &l)
	return l
}

// Every message backupd writes is signed: the ledger starts with its
// genesis, every later event verifies, and the keys are public.
func TestLedgerIsSigned(t *testing.T) {
	dir := t.TempDir()
	n := startNode(t, dir, func(c *daemon.Config) { c.Identity.PasswordParams = password.TestParams(); c.Rules.MinInterval = 0 }, nil)
	n.must(http.StatusCreated, "POST", "/v1/users", map[string]string{"id": "ada", "name": "Ada", "password": "ada has a long password"})
	n.readyBackup("crm")

	verdicts, check := n.verdicts()
	if check.Genesis() != 1 {
		t.Fatalf("genesis at seq %d, want 1: the first message of a new ledger", check.Genesis())
	}
	for seq, v := range verdicts {
		if !v.Accepted() || v.Legacy || v.KeyID == "" {
			t.Errorf("message %d: %+v", seq, v)
		}
	}
	// Each also carries the event MAC of its signing key, which
	// backupd's projections check instead of the signature.
	vault, err := n.js.KeyValue(context.Background(), jetstream.KeysBucket)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range n.storedMessages() {
		seed, err := vault.Get(context.Background(), "signing."+m.KeyID)
		if err != nil {
			t.Fatalf("message %d: the key %q: %v", m.Seq, m.KeyID, err)
		}
		if m.MAC != domain.EventMAC(domain.EventMACKey(ed25519.NewKeyFromSeed(seed.Value())), m.Body) {
			t.Errorf("message %d: MAC %q is not the event MAC of its body", m.Seq, m.MAC)
		}
	}
	keys := n.keys()
	cur, _ := check.CurrentKey()
	if keys.GenesisSeq != 1 || len(keys.Keys) != 1 || keys.Keys[0].ID != cur.ID || !keys.Keys[0].Current ||
		keys.Keys[0].PublicKey != projections.NewKeyView(cur).PublicKey {
		t.Fatalf("GET /v1/ledger/keys = %+v, want the ledger's key %s", keys, cur.ID)
	}
	// The same over NATS, without a token.
	resp := n.request(natsapi.SubjectKeysList, struct{}{}, "")
	var overNATS projections.KeyList
	if err := json.Unmarshal(resp.Data, &overNATS); err != nil || len(overNATS.Keys) != 1 || overNATS.Keys[0].ID != cur.ID {
		t.Fatalf("keys.list = %s (%v)", resp.Data, err)
	}

	// Rotation: the server administrator's alone.
	var sess projections.NewTokenView
	n.must(http.StatusCreated, "POST", "/v1/sessions", map[string]string{"user": "ada", "password": "ada has a long password"}, n.as("")...).json(t, &sess)
	n.must(http.StatusUnauthorized, "POST", "/v1/ledger/keys/rotate", nil, n.as("")...)
	n.must(http.StatusForbidden, "POST", "/v1/ledger/keys/rotate", nil, n.as(sess.Token)...)
	if code := n.request(natsapi.SubjectKeysRotate, struct{}{}, sess.Token).Header.Get("Nats-Service-Error-Code"); code != "403" {
		t.Errorf("keys.rotate by a user: error code %q, want 403", code)
	}
	var rotated projections.KeyList
	n.must(http.StatusCreated, "POST", "/v1/ledger/keys/rotate", nil, "Idempotency-Key", "rotate-1").json(t, &rotated)
	var again projections.KeyList
	n.must(http.StatusCreated, "POST", "/v1/ledger/keys/rotate", nil, "Idempotency-Key", "rotate-1").json(t, &again)
	if len(rotated.Keys) != 2 || rotated.Keys[0].Current || !rotated.Keys[1].Current || len(again.Keys) != 2 ||
		again.Keys[1].ID != rotated.Keys[1].ID {
		t.Fatalf("rotations with one key: %+v, then %+v", rotated, again)
	}
	next := rotated.Keys[1].ID

	// What is written after it is signed by the new key, also after a
	// restart, and the whole ledger still verifies.
	b := n.createBackup("crm", map[string]any{})
	n.waitStatus("crm", b.ID, 20*time.Second, domain.StatusReady)
	n.stop()
	m := startNode(t, dir, nil, nil)
	m.createBackup("hr", map[string]any{})
	verdicts, check = m.verdicts()
	for seq, v := range verdicts {
		if !v.Accepted() {
			t.Errorf("message %d refused: %s", seq, v.Detail)
		}
		if seq > rotated.Keys[1].CreatedSeq && v.KeyID != next {
			t.Errorf("message %d after the rotation signed by %s, want %s", seq, v.KeyID, next)
		}
	}
	if len(check.Keys()) != 2 {
		t.Errorf("keys after a restart: %+v", check.Keys())
	}
}

// forger writes into LEDGER with backupd's rights, bypassing the
// accounts: what the projections and audit verify must refuse.
type forger struct {
	t  *testing.T
	n  *node
	js njs.JetStream
}

// envelope returns a body for app's subject chained onto its last
// message (or "" prev for the first).
func (f *forger) envelope(app, typ, actor string, data any) []byte {
	f.t.Helper()
	raw, err := json.Marshal(data)
	if err != nil {
		f.t.Fatal(err)
	}
	prev := ""
	if last := f.n.lastSeqOf(app); last > 0 {
		m, err := f.n.ledgerMsg(last)
		if err != nil {
			f.t.Fatal(err)
		}
		prev = domain.HashEvent(m.Data)
	}
	b, err := json.Marshal(domain.Envelope{ID: "01JFORGED" + fmt.Sprint(time.Now().UnixNano()), Type: typ, Version: 1, App: app,
		Time: time.Now().UTC(), Actor: actor, CommandID: "forged", PrevHash: prev, Data: raw})
	if err != nil {
		f.t.Fatal(err)
	}
	return b
}

// publish appends body to app's subject with the headers given (name,
// value pairs) and returns its sequence.
func (f *forger) publish(app string, body []byte, headers ...string) uint64 {
	f.t.Helper()
	m := nats.NewMsg(jetstream.Subject(app))
	m.Data = body
	for i := 0; i+1 < len(headers); i += 2 {
		m.Header.Set(headers[i], headers[i+1])
	}
	ack, err := f.js.PublishMsg(context.Background(), m)
	if err != nil {
		f.t.Fatal(err)
	}
	return ack.Sequence
}

// Messages that reach LEDGER without backupd's signature (as if the
// accounts had failed) change nothing: every forgery of the issue is
// refused by the projection, counted, logged with its sequence and shown
// in the app's log, and the ledger goes on around it, also after a
// restart.
func TestForgedEventsAreRefused(t *testing.T) {
	dir := t.TempDir()
	logs := &lockedBuffer{}
	tune := func(c *daemon.Config) {
		c.Identity.PasswordParams = password.TestParams()
		c.Logger = slog.New(slog.NewJSONHandler(logs, nil))
	}
	n := startNode(t, dir, tune, nil)
	n.must(http.StatusCreated, "POST", "/v1/orgs", map[string]string{"id": "acme"})
	n.must(http.StatusCreated, "POST", "/v1/orgs", map[string]string{"id": "other"})
	n.must(http.StatusCreated, "POST", "/v1/users", map[string]string{"id": "erin", "name": "Erin", "password": "erin has a long password"})
	n.must(http.StatusNoContent, "PUT", "/v1/orgs/other/members/erin", nil)
	n.must(http.StatusOK, "PUT", "/v1/apps/crm", map[string]string{"org": "acme"})
	b := n.readyBackup("crm")
	var erin projections.NewTokenView
	n.must(http.StatusCreated, "POST", "/v1/sessions", map[string]string{"user": "erin", "password": "erin has a long password"}, n.as("")...).json(t, &erin)
	ledgerKey := n.keys().Keys[0].ID

	f := &forger{t: t, n: n, js: n.js}
	mallory := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{66}, ed25519.SeedSize))
	type forgery struct {
		name, app, reason string
		seq               uint64
	}
	var forged []forgery
	add := func(name, app, reason string, seq uint64) { forged = append(forged, forgery{name, app, reason, seq}) }

	// A genuine event of crm, replayed with its signature, below.
	replay := n.lastSeqOf("crm")
	// A backup.deleted with a correct prev_hash, in erin's name, unsigned.
	add("unsigned backup.deleted", "crm", domain.ReasonUnsigned,
		f.publish("crm", f.envelope("crm", domain.TypeBackupDeleted, "erin", domain.BackupDeleted{BackupID: b.ID})))
	// Grants for erin, signed by a key of the attacker's ...
	body := f.envelope(domain.IdentityStream, domain.TypeMemberAdded, "admin", domain.MemberAdded{Org: "acme", User: "erin"})
	id, sig := domain.SignBody(mallory, body)
	add("org.member_added signed by a foreign key", domain.IdentityStream, domain.ReasonUnknownKey,
		f.publish(domain.IdentityStream, body, domain.HeaderKeyID, id, domain.HeaderSignature, sig))
	// ... or claiming the ledger's key.
	body = f.envelope(domain.IdentityStream, domain.TypeAdminGranted, "admin", domain.AdminGranted{App: "crm", User: "erin"})
	_, sig = domain.SignBody(mallory, body)
	add("app.admin_granted under the ledger's key id", domain.IdentityStream, domain.ReasonBadSignature,
		f.publish(domain.IdentityStream, body, domain.HeaderKeyID, ledgerKey, domain.HeaderSignature, sig))
	// A genuine event of crm, replayed with its signature.
	genuine, err := n.ledgerMsg(replay)
	if err != nil {
		t.Fatal(err)
	}
	add("a genuine event replayed", "crm", domain.ReasonPrevHash,
		f.publish("crm", genuine.Data, domain.HeaderKeyID, genuine.Header.Get(domain.HeaderKeyID), domain.HeaderSignature, genuine.Header.Get(domain.HeaderSignature)))
	// Junk, and a second genesis.
	add("junk", "crm", domain.ReasonUnsigned, f.publish("crm", []byte("not an event")))
	body = f.envelope(domain.KeysStream, domain.TypeKeyCreated, service.KeysActor, domain.NewKeyCreated(mallory.Public().(ed25519.PublicKey), make([]byte, 32)))
	id, sig = domain.SignBody(mallory, body)
	add("a second key.created", domain.KeysStream, domain.ReasonUnknownKey,
		f.publish(domain.KeysStream, body, domain.HeaderKeyID, id, domain.HeaderSignature, sig))

	check := func(n *node) {
		t.Helper()
		if err := n.d.WaitReady(context.Background()); err != nil {
			t.Fatal(err)
		}
		last := forged[len(forged)-1].seq
		natstest.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
			if got := n.appliedSeq(); got < last {
				return fmt.Errorf("projection at %d, want %d", got, last)
			}
			return nil
		})
		// Nothing changed: the backup is there, erin sees nothing of crm.
		if got := n.backup("crm", b.ID); got.Status != "ready" {
			t.Errorf("backup %s: %+v", b.ID, got)
		}
		n.must(http.StatusNotFound, "GET", "/v1/apps/crm", nil, n.as(erin.Token)...)
		n.must(http.StatusNotFound, "GET", "/v1/apps/crm/backups/"+b.ID+"/archive", nil, n.as(erin.Token)...)
		// Each is counted by its reason, and shown in crm's log.
		_, fams := n.scrape()
		want := map[string]float64{}
		for _, fg := range forged {
			want[fg.reason]++
		}
		for reason, c := range want {
			if v, _ := value(fams, "backupledger_ledger_rejected_total", "reason", reason); v != c {
				t.Errorf("rejected_total{reason=%q} = %v, want %v", reason, v, c)
			}
		}
		var log projections.LogList
		n.must(http.StatusOK, "GET", "/v1/apps/crm/logs", nil).json(t, &log)
		for _, fg := range forged {
			if fg.app != "crm" {
				continue
			}
			found := false
			for _, e := range log.Entries {
				if e.Seq == fg.seq && e.Event == projections.TypeRejected && e.Result == "rejected" && strings.Contains(e.Message, fg.reason) {
					found = true
				}
			}
			if !found {
				t.Errorf("%s (seq %d): not in crm's log as rejected: %+v", fg.name, fg.seq, log.Entries)
			}
		}
		// audit verify's check refuses the same messages, for the same
		// reasons, and accepts every other one.
		verdicts, _ := n.verdicts()
		refused := map[uint64]string{}
		for _, fg := range forged {
			refused[fg.seq] = fg.reason
		}
		for seq, v := range verdicts {
			if v.Rejected != refused[seq] {
				t.Errorf("message %d: rejected %q, want %q (%s)", seq, v.Rejected, refused[seq], v.Detail)
			}
		}
	}
	check(n)
	for _, fg := range forged {
		if !strings.Contains(logs.String(), fmt.Sprintf(`"msg":"ledger message refused","seq":%d,`, fg.seq)) {
			t.Errorf("%s (seq %d) is not in the log", fg.name, fg.seq)
		}
	}

	// The ledger goes on around them: a command on crm (whose subject's
	// last message is refused junk) and one on the identity stream.
	n.must(http.StatusOK, "PATCH", "/v1/apps/crm/backups/"+b.ID, map[string]string{"name": "renamed after the forgeries"})
	n.must(http.StatusNoContent, "PUT", "/v1/orgs/acme/members/erin", nil)
	if got := n.backup("crm", b.ID); got.Name != "renamed after the forgeries" {
		t.Errorf("rename after the forgeries: %+v", got)
	}
	n.stop()

	// A restart folds the stream again: the same refusals, the same state.
	m := startNode(t, dir, tune, nil)
	check(m)
	if got := m.backup("crm", b.ID); got.Name != "renamed after the forgeries" {
		t.Errorf("after a restart: %+v", got)
	}
}

// appliedSeq reads the projection's applied sequence from /metrics.
func (n *node) appliedSeq() uint64 {
	n.t.Helper()
	_, fams := n.scrape()
	v, _ := value(fams, "backupledger_projection_applied_sequence")
	return uint64(v)
}

// A value of the secrets bucket that backupd did not write is never
// trusted: a replaced password hash logs no one in, a hash moved from
// another user neither.
func TestSecretsAreAuthenticated(t *testing.T) {
	logs := &lockedBuffer{}
	n := startNode(t, t.TempDir(), func(c *daemon.Config) {
		c.Identity.PasswordParams = password.TestParams()
		c.Logger = slog.New(slog.NewJSONHandler(logs, nil))
	}, nil)
	const adaPW, malloryPW = "ada has a long password", "mallory has a long password"
	n.must(http.StatusCreated, "POST", "/v1/users", map[string]string{"id": "ada", "name": "Ada", "password": adaPW})
	n.must(http.StatusCreated, "POST", "/v1/users", map[string]string{"id": "mallory", "name": "Mallory", "password": malloryPW})
	login := func(user, pw string) int {
		return n.do("POST", "/v1/sessions", map[string]string{"user": user, "password": pw}, n.as("")...).status
	}
	if got := login("ada", adaPW); got != http.StatusCreated {
		t.Fatalf("ada's login: %d", got)
	}
	ctx := context.Background()
	kv, err := n.js.KeyValue(ctx, jetstream.SecretsBucket)
	if err != nil {
		t.Fatal(err)
	}
	stored, err := kv.Get(ctx, "password.ada")
	if err != nil {
		t.Fatal(err)
	}
	if bcrypt.CompareHashAndPassword(stored.Value(), []byte(adaPW)) == nil {
		t.Error("the stored value is a bare bcrypt hash: no MAC")
	}

	// A hash of the attacker's choice, written straight into the bucket.
	hash, err := bcrypt.GenerateFromPassword([]byte(malloryPW), 4)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, "password.ada", hash); err != nil {
		t.Fatal(err)
	}
	for _, pw := range []string{malloryPW, adaPW} {
		if got := login("ada", pw); got != http.StatusUnauthorized {
			t.Errorf("login as ada with a replaced hash: %d, want 401", got)
		}
	}
	// Mallory's own sealed value, moved to ada's key.
	moved, err := kv.Get(ctx, "password.mallory")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, "password.ada", moved.Value()); err != nil {
		t.Fatal(err)
	}
	if got := login("ada", malloryPW); got != http.StatusUnauthorized {
		t.Errorf("login as ada with mallory's moved hash: %d, want 401", got)
	}
	if !strings.Contains(logs.String(), `"key":"password.ada"`) || !strings.Contains(logs.String(), "secret refused") {
		t.Errorf("the refused secret is not logged:\n%s", logs.String())
	}
	if strings.Contains(logs.String(), string(hash)) {
		t.Error("the log shows the refused value")
	}
	// The administrator sets a new password: it works again.
	n.must(http.StatusOK, "PUT", "/v1/users/ada/password", map[string]string{"password": "ada has a new long password"})
	if got := login("ada", "ada has a new long password"); got != http.StatusCreated {
		t.Errorf("login after a new password: %d", got)
	}
}

// Two replicas that start together on a new cluster agree on one genesis
// and sign with the same key; each folds what the other writes.
func TestReplicasAgreeOnTheGenesis(t *testing.T) {
	cluster := onCluster(docsCluster(t, false))
	nodes := make([]*node, 2)
	var wg sync.WaitGroup
	for i := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			nodes[i] = startNode(t, t.TempDir(), cluster, nil)
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	a, b := nodes[0], nodes[1]
	a.createBackup("crm", map[string]any{})
	b.createBackup("hr", map[string]any{})
	verdicts, check := a.verdicts()
	created := 0
	for seq, v := range verdicts {
		if !v.Accepted() {
			t.Errorf("message %d refused: %s", seq, v.Detail)
		}
		if v.Env != nil && v.Env.Type == domain.TypeKeyCreated {
			created++
		}
	}
	if created != 1 || len(check.Keys()) != 1 {
		t.Errorf("%d key.created, keys %+v; want one genesis", created, check.Keys())
	}
	for _, n := range nodes {
		if ka, kb := a.keys(), n.keys(); len(kb.Keys) != 1 || kb.Keys[0].ID != ka.Keys[0].ID {
			t.Errorf("keys differ: %+v and %+v", ka, kb)
		}
	}
}

// legacyLedger writes, into dir, the data of a backupd from before the
// accounts and the signatures: its embedded server's global account holds
// LEDGER with unsigned events (an organisation, a user with a password, a
// registered app with a failed backup), the secrets bucket with the bare
// password hash, and a staging bucket. It returns the bodies it wrote.
func legacyLedger(t *testing.T, dir, password string) [][]byte {
	t.Helper()
	var bodies [][]byte
	onPlainStore(t, dir, func(js njs.JetStream) { bodies = writeLegacyLedger(t, js, password) })
	return bodies
}

// onPlainStore runs f with the JetStream store of the data dir dir served
// by a NATS server without accounts, as a backupd before accounts ran it.
func onPlainStore(t *testing.T, dir string, f func(js njs.JetStream)) {
	t.Helper()
	s := natstest.ServerWithOptions(t, &server.Options{StoreDir: dir + "/nats", DontListen: true})
	nc, err := nats.Connect(s.ClientURL(), nats.InProcessServer(s))
	if err != nil {
		t.Fatal(err)
	}
	js, err := njs.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	f(js)
	nc.Close()
	s.Shutdown()
	s.WaitForShutdown()
}

func writeLegacyLedger(t *testing.T, js njs.JetStream, password string) [][]byte {
	t.Helper()
	ctx := context.Background()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig(jetstream.Config{})); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC)
	heads := map[string]string{}
	var bodies [][]byte
	write := func(app, actor string, ev domain.Event) {
		raw, err := json.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		at = at.Add(time.Minute)
		b, err := json.Marshal(domain.Envelope{ID: fmt.Sprintf("01JLEGACY%017d", len(bodies)), Type: ev.EventType(), Version: 1, App: app,
			Time: at, Actor: actor, CommandID: fmt.Sprintf("cmd%d", len(bodies)), PrevHash: heads[app], Data: raw})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := js.Publish(ctx, jetstream.Subject(app), b); err != nil {
			t.Fatal(err)
		}
		heads[app] = domain.HashEvent(b)
		bodies = append(bodies, b)
	}
	write(domain.IdentityStream, "admin", &domain.OrgCreated{Org: "acme", Name: "Acme"})
	write(domain.IdentityStream, "admin", &domain.UserCreated{User: "ada", Name: "Ada"})
	write(domain.IdentityStream, "admin", &domain.MemberAdded{Org: "acme", User: "ada"})
	write(domain.IdentityStream, "ada", &domain.AppRegistered{App: "crm", Org: "acme", Admin: "ada"})
	write("crm", "ada", &domain.BackupRequested{BackupID: "01JLEGACYBACKUP00000000000", Name: "from the old days", Origin: domain.OriginManual, ExpiresAt: at.Add(24 * time.Hour * 365)})
	write("crm", "system:worker", &domain.BackupStarted{BackupID: "01JLEGACYBACKUP00000000000", Attempt: 1})
	write("crm", "system:worker", &domain.BackupFailed{BackupID: "01JLEGACYBACKUP00000000000", Reason: "source unavailable"})
	kv, err := js.CreateKeyValue(ctx, njs.KeyValueConfig{Bucket: jetstream.SecretsBucket, History: 1})
	if err != nil {
		t.Fatal(err)
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(password), 4)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, "password.ada", hash); err != nil {
		t.Fatal(err)
	}
	obs, err := js.CreateObjectStore(ctx, njs.ObjectStoreConfig{Bucket: "ledger_staging"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := obs.PutBytes(ctx, "left-over.zip", []byte("staged before the upgrade")); err != nil {
		t.Fatal(err)
	}
	return bodies
}

// A data dir of a backupd without accounts and signatures keeps working:
// the ledger moves into its account as it is, the unsigned events stay
// the ledger's unsigned prefix, the genesis follows them, the password
// hashes get their MAC once, and everything after is signed.
func TestUpgradeFromAnUnsignedLedger(t *testing.T) {
	dir := t.TempDir()
	const pw = "ada has a long password"
	bodies := legacyLedger(t, dir, pw)
	logs := &lockedBuffer{}
	tune := func(c *daemon.Config) {
		c.Identity.PasswordParams = password.TestParams()
		c.Logger = slog.New(slog.NewJSONHandler(logs, nil))
	}
	n := startNode(t, dir, tune, nil)
	if !strings.Contains(logs.String(), "moved the ledger's JetStream store") || !strings.Contains(logs.String(), "removed the staging bucket") {
		t.Errorf("the upgrade is not logged:\n%s", logs.String())
	}

	// The events are where they were, byte for byte, and followed by the
	// genesis; ada logs in with her password and sees her app.
	msgs := n.storedMessages()
	if len(msgs) <= len(bodies) {
		t.Fatalf("LEDGER holds %d messages after the upgrade, want more than %d", len(msgs), len(bodies))
	}
	for i, b := range bodies {
		if !bytes.Equal(msgs[i].Body, b) || msgs[i].KeyID != "" {
			t.Errorf("message %d changed: %s (key %q)", i+1, msgs[i].Body, msgs[i].KeyID)
		}
	}
	verdicts, check := n.verdicts()
	if check.Genesis() != uint64(len(bodies)+1) {
		t.Errorf("genesis at %d, want %d: right after the unsigned prefix", check.Genesis(), len(bodies)+1)
	}
	var sess projections.NewTokenView
	n.must(http.StatusCreated, "POST", "/v1/sessions", map[string]string{"user": "ada", "password": pw}, n.as("")...).json(t, &sess)
	var list projections.BackupList
	n.must(http.StatusOK, "GET", "/v1/apps/crm/backups", nil, n.as(sess.Token)...).json(t, &list)
	if len(list.Backups) != 1 || list.Backups[0].Name != "from the old days" || list.Backups[0].Status != "failed" {
		t.Fatalf("crm's backups after the upgrade: %+v", list.Backups)
	}
	ctx := context.Background()
	kv, err := n.js.KeyValue(ctx, jetstream.SecretsBucket)
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := kv.Get(ctx, "password.ada")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.js.Stream(ctx, "OBJ_ledger_staging"); err == nil {
		t.Error("the old staging bucket is still in the ledger's account")
	}

	// New events are signed; the whole ledger verifies, the prefix as such.
	n.putConfig("crm", "app.json", `{"name":"crm"}`)
	b := n.createBackup("crm", map[string]any{})
	n.waitStatus("crm", b.ID, 20*time.Second, domain.StatusReady)
	verdicts, _ = n.verdicts()
	for seq, v := range verdicts {
		switch {
		case !v.Accepted():
			t.Errorf("message %d refused: %s", seq, v.Detail)
		case v.Legacy != (seq <= uint64(len(bodies))):
			t.Errorf("message %d: legacy %v", seq, v.Legacy)
		}
	}

	// A second start changes nothing of it: no second genesis, the secret
	// is not sealed again.
	n.stop()
	m := startNode(t, dir, tune, nil)
	if _, check := m.verdicts(); check.Genesis() != uint64(len(bodies)+1) || len(check.Keys()) != 1 {
		t.Errorf("after a second start: genesis %d, keys %+v", check.Genesis(), check.Keys())
	}
	kv, err = m.js.KeyValue(ctx, jetstream.SecretsBucket)
	if err != nil {
		t.Fatal(err)
	}
	if again, err := kv.Get(ctx, "password.ada"); err != nil || again.Revision() != sealed.Revision() {
		t.Errorf("password.ada after a second start: revision %d (%v), want %d", again.Revision(), err, sealed.Revision())
	}
	m.must(http.StatusCreated, "POST", "/v1/sessions", map[string]string{"user": "ada", "password": pw}, m.as("")...)
}

// Someone who could write the ledger before backupd signed it planted a
// self-signed key.created of their own key. Taken for the genesis, it
// would make the planter's key the ledger's. backupd, whose key vault
// recorded no genesis, does not take it: it refuses to start and says
// why, changing nothing; with --new-ledger-genesis it starts the signed
// ledger with a key of its vault, refuses the planted key.created and
// keeps the unsigned prefix.
func TestAPlantedGenesisIsPassedOver(t *testing.T) {
	dir := t.TempDir()
	const pw = "ada has a long password"
	bodies := legacyLedger(t, dir, pw)
	mallory := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{77}, ed25519.SeedSize))
	malloryID := domain.KeyIDOf(mallory.Public().(ed25519.PublicKey))
	onPlainStore(t, dir, func(js njs.JetStream) {
		data, err := json.Marshal(domain.NewKeyCreated(mallory.Public().(ed25519.PublicKey), make([]byte, 32)))
		if err != nil {
			t.Fatal(err)
		}
		body, err := json.Marshal(domain.Envelope{ID: "01JPLANTED0000000000000000", Type: domain.TypeKeyCreated, Version: 1,
			App: domain.KeysStream, Time: time.Now().UTC(), Actor: service.KeysActor, CommandID: "key.created." + malloryID, Data: data})
		if err != nil {
			t.Fatal(err)
		}
		id, sig := domain.SignBody(mallory, body)
		msg := nats.NewMsg(jetstream.Subject(domain.KeysStream))
		msg.Data = body
		msg.Header.Set(domain.HeaderKeyID, id)
		msg.Header.Set(domain.HeaderSignature, sig)
		if _, err := js.PublishMsg(context.Background(), msg); err != nil {
			t.Fatal(err)
		}
	})
	planted := uint64(len(bodies) + 1)
	tune := func(c *daemon.Config) { c.Identity.PasswordParams = password.TestParams() }

	err := startErr(t, nodeConfig(dir, tune))
	if err == nil {
		t.Fatal("backupd started on a ledger whose genesis it did not write")
	}
	if !errors.Is(err, service.ErrNoKey) || !strings.Contains(err.Error(), "--new-ledger-genesis") || !strings.Contains(err.Error(), malloryID) {
		t.Errorf("start: %v; want ErrNoKey naming key %s and --new-ledger-genesis", err, malloryID)
	}

	n := startNode(t, dir, func(c *daemon.Config) { tune(c); c.Ledger.NewGenesis = true }, nil)
	keys := n.keys()
	if keys.GenesisSeq != planted+1 || len(keys.Keys) != 1 || keys.Keys[0].ID == malloryID {
		t.Fatalf("keys %+v; want one key of backupd's, its genesis at seq %d: nothing written by the refused start", keys, planted+1)
	}
	check := domain.NewLedgerCheck()
	check.PinGenesis(keys.Keys[0].ID)
	for _, m := range n.storedMessages() {
		v := check.Check(m)
		switch {
		case m.Seq == planted:
			if v.Rejected != domain.ReasonNotGenesis {
				t.Errorf("the planted key.created: %q, want %s", v.Rejected, domain.ReasonNotGenesis)
			}
		case !v.Accepted():
			t.Errorf("message %d refused: %s", m.Seq, v.Detail)
		case v.Legacy != (m.Seq < planted):
			t.Errorf("message %d: legacy %v", m.Seq, v.Legacy)
		}
	}
	_, fams := n.scrape()
	if v, _ := value(fams, "backupledger_ledger_rejected_total", "reason", domain.ReasonNotGenesis); v != 1 {
		t.Errorf("rejected_total{reason=not_genesis} = %v, want 1", v)
	}
	var sess projections.NewTokenView
	n.must(http.StatusCreated, "POST", "/v1/sessions", map[string]string{"user": "ada", "password": pw}, n.as("")...).json(t, &sess)
	var list projections.BackupList
	n.must(http.StatusOK, "GET", "/v1/apps/crm/backups", nil, n.as(sess.Token)...).json(t, &list)
	if len(list.Backups) != 1 || list.Backups[0].Name != "from the old days" {
		t.Fatalf("crm's backups: %+v", list.Backups)
	}

	// The vault recorded its genesis: later starts need no flag, and one
	// with it changes nothing.
	n.stop()
	for _, again := range []bool{false, true} {
		m := startNode(t, dir, func(c *daemon.Config) { tune(c); c.Ledger.NewGenesis = again }, nil)
		if k := m.keys(); k.GenesisSeq != keys.GenesisSeq || len(k.Keys) != 1 || k.Keys[0].ID != keys.Keys[0].ID {
			t.Errorf("start with --new-ledger-genesis=%v: keys %+v, want %+v", again, k, keys)
		}
		m.stop()
	}
}
