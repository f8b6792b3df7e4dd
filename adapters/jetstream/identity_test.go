package jetstream_test

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	njs "github.com/nats-io/nats.go/jetstream"

	"github.com/backupledger/backupledger/adapters/jetstream"
	"github.com/backupledger/backupledger/adapters/password"
	"github.com/backupledger/backupledger/domain"
	"github.com/backupledger/backupledger/service"
)

// identityProcess is the identity side of one backupd: its projection fed
// by the follower, the secrets bucket and the Identity service.
func identityProcess(t *testing.T, st *stack) *service.Identity {
	t.Helper()
	runFollower(t, st.follower)
	secrets, err := jetstream.NewSecrets(t.Context(), st.js, 1, testMAC, nil)
	if err != nil {
		t.Fatal(err)
	}
	hasher, err := password.NewBcrypt(bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	id, err := service.NewIdentity(st.raw, st.proj, secrets, hasher, realClock{}, &counterIDs{prefix: "i"}, service.IdentityConfig{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// Identity events go to ledger.events._identity with the hash chain and
// the expected sequence of any subject; secrets go to the secrets bucket,
// never to the stream; a second process (a restart) folds the same
// directory and authenticates the same tokens.
func TestIdentityOnJetStream(t *testing.T) {
	s := newServer(t, jetstream.Config{})
	ctx := t.Context()
	a := newStack(t, s, &counterIDs{prefix: "a"})
	id := identityProcess(t, a)
	admin := domain.Principal{ID: "admin", Admin: true}
	meta := domain.Meta{}
	if _, err := id.Execute(ctx, admin, domain.CreateOrg{ID: "acme", Name: "ACME"}, meta); err != nil {
		t.Fatal(err)
	}
	const pw = "alice has a long password"
	if _, err := id.CreateUser(ctx, admin, domain.CreateUser{ID: "alice", Name: "Alice", Email: "alice@example.com", Password: pw}, meta); err != nil {
		t.Fatal(err)
	}
	if _, err := id.Execute(ctx, admin, domain.SetMember{Org: "acme", User: "alice", Member: true}, meta); err != nil {
		t.Fatal(err)
	}
	alice := domain.Principal{ID: "alice"}
	if _, err := id.Execute(ctx, alice, domain.RegisterApp{App: "crm", Org: "acme"}, meta); err != nil {
		t.Fatal(err)
	}
	tok, err := id.CreateToken(ctx, alice, "ci", time.Time{}, meta)
	if err != nil {
		t.Fatal(err)
	}
	sess, err := id.Login(ctx, "alice", pw, meta)
	if err != nil {
		t.Fatal(err)
	}
	if !id.Visible(alice, "crm") {
		t.Error("alice does not administer crm")
	}

	// A restarted process folds the same directory from the stream.
	b := newStack(t, s, &counterIDs{prefix: "b"})
	id2 := identityProcess(t, b)
	waitCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	last, err := b.raw.LastSeq(ctx, domain.IdentityStream)
	if err != nil || last == 0 {
		t.Fatalf("LastSeq(_identity) = %d, %v", last, err)
	}
	if err := b.proj.WaitApplied(waitCtx, last); err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{tok.Secret, sess.Secret} {
		if p, err := id2.Authenticate(ctx, secret); err != nil || p.ID != "alice" {
			t.Errorf("restarted: Authenticate = %+v, %v", p, err)
		}
	}
	if !id2.Visible(alice, "crm") || id2.Visible(domain.Principal{ID: "bob"}, "crm") {
		t.Error("restarted: wrong visibility of crm")
	}
	// Both processes append to the one identity subject: the second
	// catches up on a conflict.
	if _, err := id2.Execute(ctx, admin, domain.CreateOrg{ID: "beta"}, meta); err != nil {
		t.Fatal(err)
	}
	if _, err := id.Execute(ctx, admin, domain.CreateOrg{ID: "gamma"}, meta); err != nil {
		t.Fatal(err)
	}
	if _, err := id.Login(ctx, "alice", "wrong password", meta); domain.Code(err) != domain.CodeUnauthenticated {
		t.Errorf("wrong password: %v", err)
	}

	// The stream: identity events only on their subject, each chained to
	// the previous one, and no secret anywhere in it.
	hashes := [][]byte{}
	sec, err := a.js.KeyValue(ctx, jetstream.SecretsBucket)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := sec.ListKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for k := range keys.Keys() {
		e, err := sec.Get(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		hashes = append(hashes, e.Value())
	}
	if len(hashes) < 3 {
		t.Fatalf("secrets bucket holds %d secrets, want the password and two token hashes", len(hashes))
	}
	msgs := allMessages(t, a.js)
	var prev string
	types := map[string]int{}
	for _, m := range msgs {
		for _, secret := range append([][]byte{[]byte(pw), []byte(tok.Secret), []byte(sess.Secret)}, hashes...) {
			if bytes.Contains(m.Data, secret) {
				t.Errorf("message %s holds a secret", m.Subject)
			}
		}
		if m.Subject != jetstream.Subject(domain.IdentityStream) {
			t.Errorf("identity test wrote to %s", m.Subject)
			continue
		}
		env := decodeEnvelope(t, m.Data)
		if env.PrevHash != prev {
			t.Errorf("%s: prev_hash %q, want %q", env.Type, env.PrevHash, prev)
		}
		prev = domain.HashEvent(m.Data)
		types[env.Type]++
	}
	if types[domain.TypeTokenCreated] != 2 || types[domain.TypePasswordFailed] != 1 || types[domain.TypeAppRegistered] != 1 {
		t.Errorf("event types %v", types)
	}
	if apps := b.proj.Apps(); len(apps) != 0 {
		t.Errorf("identity events made apps: %v", apps)
	}
}

func decodeEnvelope(t *testing.T, raw []byte) domain.Envelope {
	t.Helper()
	var env domain.Envelope
	if err := json.Unmarshal(raw, &env); err != nil {
		t.Fatalf("not an envelope: %v", err)
	}
	return env
}

// allMessages reads the whole LEDGER stream.
func allMessages(t *testing.T, js njs.JetStream) []*njs.RawStreamMsg {
	t.Helper()
	st, err := js.Stream(t.Context(), jetstream.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var out []*njs.RawStreamMsg
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := st.GetMsg(t.Context(), seq)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
	}
	return out
}
