package service_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/backupledger/backupledger/domain"
	"github.com/backupledger/backupledger/service"
)

// signingRig is one ledger (stream and vault) with the clock and ids its
// replicas share.
type signingRig struct {
	t      *testing.T
	clock  *fakeClock
	ids    *fakeIDs
	stream *signedStream
	vault  *fakeVault
	n      int // events appended by appendEvent
}

func newSigningRig(t *testing.T) *signingRig {
	clock := newClock(t0)
	return &signingRig{t: t, clock: clock, ids: &fakeIDs{}, stream: newSignedStream(clock), vault: newFakeVault(macKey, 0x20)}
}

// replica returns a Signing of another backupd process on the rig's
// ledger, with vault (the rig's if nil).
func (r *signingRig) replica(vault *fakeVault) *service.Signing {
	if vault == nil {
		vault = r.vault
	}
	return service.NewSigning(service.SigningConfig{}, vault, r.stream, r.stream, r.clock, r.ids, nil)
}

// setUp returns a replica that Setup started; it fails the test on error.
func (r *signingRig) setUp() *service.Signing {
	r.t.Helper()
	s := r.replica(nil)
	if _, err := s.Setup(context.Background(), nil); err != nil {
		r.t.Fatalf("setup: %v", err)
	}
	return s
}

// appendEvent appends ev on token as backupd does: chained to the head a
// LedgerCheck of the whole stream knows, signed with s.Sign, expecting the
// token's last sequence. It returns the stored message.
func (r *signingRig) appendEvent(s *service.Signing, token string, ev domain.Event) domain.StoredMessage {
	r.t.Helper()
	check, _ := r.stream.audit()
	r.n++
	data, err := json.Marshal(ev)
	if err != nil {
		r.t.Fatal(err)
	}
	now := r.clock.Now()
	env := domain.Envelope{ID: r.ids.NewID(now), Type: ev.EventType(), Version: 1, App: token, Time: now,
		Actor: "alice", CommandID: fmt.Sprintf("event-%d", r.n), PrevHash: check.Head(token), Data: data}
	body, err := json.Marshal(env)
	if err != nil {
		r.t.Fatal(err)
	}
	seal, err := s.Sign(context.Background(), body)
	if err != nil {
		r.t.Fatalf("sign: %v", err)
	}
	last, _ := r.stream.LastSeq(context.Background(), token)
	res, err := r.stream.Append(context.Background(), domain.PendingEvent{App: token, Type: ev.EventType(),
		MsgID: token + "|" + env.CommandID + "|alice", ExpectedSeq: last, Body: body, Seal: seal})
	if err != nil || res.Duplicate {
		r.t.Fatalf("append %s: %+v, %v", ev.EventType(), res, err)
	}
	return r.stream.all()[res.Seq-1]
}

// keyEvents returns the decoded envelopes of KeysStream.
func (r *signingRig) keyEvents() []domain.Envelope {
	r.t.Helper()
	var out []domain.Envelope
	for _, m := range r.stream.ofToken(domain.KeysStream) {
		var env domain.Envelope
		if err := json.Unmarshal(m.Body, &env); err != nil {
			continue // junk someone published
		}
		out = append(out, env)
	}
	return out
}

func envTypes(envs []domain.Envelope) []string {
	out := make([]string, len(envs))
	for i, e := range envs {
		out[i] = e.Type
	}
	return out
}

// unsignedPrefix writes events of crm as backupd did before signing
// existed: unsigned, chained.
func unsignedPrefix(st *signedStream, n int) {
	prev := ""
	for i := range n {
		env := domain.Envelope{ID: fmt.Sprintf("old-%d", i), Type: domain.TypeBackupRequested, Version: 1, App: "crm",
			Time: t0, Actor: "alice", CommandID: fmt.Sprintf("old-%d", i), PrevHash: prev,
			Data: json.RawMessage(fmt.Sprintf(`{"backup_id":"old-%d","name":"n","origin":"manual","expires_at":"2027-01-20T10:15:00Z"}`, i))}
		body, _ := json.Marshal(env)
		st.publish("crm", body, "", "")
		prev = domain.HashEvent(body)
	}
}

func TestSigningSetupStartsTheSignedLedger(t *testing.T) {
	for _, prefix := range []int{0, 3} {
		t.Run(fmt.Sprintf("after %d unsigned events", prefix), func(t *testing.T) {
			r := newSigningRig(t)
			unsignedPrefix(r.stream, prefix)
			auth := &authCalls{stream: r.stream}
			s := r.replica(nil)

			mac, err := s.Setup(context.Background(), auth.authenticate)
			if err != nil {
				t.Fatalf("setup: %v", err)
			}

			if !bytes.Equal(mac, macKey) {
				t.Errorf("setup returned MAC key %x, want the vault's %x", mac, macKey)
			}
			if calls := auth.calls(); len(calls) != 1 || !bytes.Equal(calls[0], macKey) {
				t.Errorf("authenticate called with %x, want once with the vault's MAC key", calls)
			}
			if !slices.Equal(auth.keysBefore, []int{0}) {
				t.Errorf("%s had %v messages when authenticate was called, want none: the secrets get their MAC before the genesis", domain.KeysStream, auth.keysBefore)
			}
			keys := r.stream.ofToken(domain.KeysStream)
			if got := envTypes(r.keyEvents()); !slices.Equal(got, []string{domain.TypeKeyCreated}) {
				t.Fatalf("%s holds %v, want one key.created", domain.KeysStream, got)
			}
			check := r.stream.wantAllAccepted(t)
			if check.Genesis() != keys[0].Seq || keys[0].Seq != uint64(prefix+1) {
				t.Errorf("genesis %d, key.created at seq %d, want both %d", check.Genesis(), keys[0].Seq, prefix+1)
			}
			ck := check.Keys()
			if len(ck) != 1 || ck[0].MACKeySHA256 != domain.MACKeyDigest(macKey) {
				t.Fatalf("keys %+v, want one announcing the MAC key's digest %s", ck, domain.MACKeyDigest(macKey))
			}
			if keys[0].KeyID != ck[0].ID || ck[0].ID != r.vault.genesis {
				t.Errorf("key.created signed by %q, announces %q, vault's genesis %q: want one key, self-signed", keys[0].KeyID, ck[0].ID, r.vault.genesis)
			}
			env := r.keyEvents()[0]
			if env.Actor != service.KeysActor || env.PrevHash != "" || env.App != domain.KeysStream {
				t.Errorf("key.created envelope %+v, want actor %s, app %s, no prev_hash", env, service.KeysActor, domain.KeysStream)
			}
			cur, ok := s.Current()
			if !ok || cur.ID != ck[0].ID || cur.CreatedSeq != check.Genesis() {
				t.Errorf("Current() = %+v, %v; want the genesis key at seq %d", cur, ok, check.Genesis())
			}
		})
	}
}

func TestSigningSetupAuthenticateFails(t *testing.T) {
	r := newSigningRig(t)
	boom := errors.New("secrets bucket unreachable")
	auth := &authCalls{err: boom}
	s := r.replica(nil)

	_, err := s.Setup(context.Background(), auth.authenticate)

	if !errors.Is(err, boom) {
		t.Fatalf("setup error %v, want authenticate's", err)
	}
	if n := len(r.stream.all()); n != 0 {
		t.Errorf("%d messages appended, want none: no genesis before the secrets carry their MAC", n)
	}
	if _, ok := s.Current(); ok {
		t.Error("Current() reports a key after a failed setup")
	}
}

func TestSigningSignBeforeSetup(t *testing.T) {
	r := newSigningRig(t)
	s := r.replica(nil)

	if _, err := s.Sign(context.Background(), []byte(`{}`)); !errors.Is(err, service.ErrNotSigning) {
		t.Errorf("Sign before Setup: %v, want ErrNotSigning", err)
	}
	if _, err := s.Rotate(context.Background(), domain.Meta{Actor: "admin", CommandID: "rot-1"}); !errors.Is(err, service.ErrNotSigning) {
		t.Errorf("Rotate before Setup: %v, want ErrNotSigning", err)
	}
	if k, ok := s.Current(); ok {
		t.Errorf("Current() = %+v before Setup", k)
	}
	if n := len(r.stream.all()); n != 0 {
		t.Errorf("%d messages appended, want none", n)
	}
}

func TestSigningSignedEventsAreAccepted(t *testing.T) {
	r := newSigningRig(t)
	s := r.setUp()
	cur, _ := s.Current()

	var appended []domain.StoredMessage
	for _, e := range []struct {
		token string
		ev    domain.Event
	}{
		{"crm", evRequested},
		{domain.IdentityStream, evOrg},
		{"crm", evDeleted},
		{"hr", evRequested},
	} {
		r.clock.Advance(time.Second)
		appended = append(appended, r.appendEvent(s, e.token, e.ev))
	}

	_, vs := r.stream.audit()
	for _, m := range appended {
		v := vs[m.Seq]
		if !v.Accepted() || v.Legacy || v.KeyID != cur.ID {
			t.Errorf("seq %d on %s: rejected %q (%s), legacy %v, key %q; want accepted, signed by %s", m.Seq, m.Token, v.Rejected, v.Detail, v.Legacy, v.KeyID, cur.ID)
		}
		if m.KeyID != cur.ID {
			t.Errorf("seq %d signed by %q, want the current key %s", m.Seq, m.KeyID, cur.ID)
		}
	}
}

func TestSigningTwoReplicasAgreeOnOneGenesis(t *testing.T) {
	for _, tc := range []struct {
		name string
		// race makes replica b set up while a appends its key.created.
		race bool
		// seqFirst: the stream checks the expected sequence before
		// deduplicating: a's key.created is a conflict, not a duplicate.
		seqFirst bool
	}{
		{name: "one after the other"},
		{name: "b sets up while a appends", race: true},
		{name: "b sets up while a appends, sequence checked first", race: true, seqFirst: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newSigningRig(t)
			r.stream.SetDedupFirst(!tc.seqFirst)
			a, b := r.replica(nil), r.replica(nil)
			authA, authB := &authCalls{}, &authCalls{}
			var errB error
			if tc.race {
				fired := false // the hook runs in a's goroutine, and again in b's appends from it
				r.stream.beforeAppend = func(ev domain.PendingEvent) {
					if ev.App == domain.KeysStream && !fired {
						fired = true
						_, errB = b.Setup(context.Background(), authB.authenticate)
					}
				}
			}

			if _, err := a.Setup(context.Background(), authA.authenticate); err != nil {
				t.Fatalf("setup a: %v", err)
			}
			if !tc.race {
				_, errB = b.Setup(context.Background(), authB.authenticate)
			}
			if errB != nil {
				t.Fatalf("setup b: %v", errB)
			}

			if got := envTypes(r.keyEvents()); !slices.Equal(got, []string{domain.TypeKeyCreated}) {
				t.Fatalf("%s holds %v, want exactly one key.created", domain.KeysStream, got)
			}
			r.stream.wantAllAccepted(t)
			ka, _ := a.Current()
			kb, _ := b.Current()
			if ka.ID == "" || ka.ID != kb.ID || ka.ID != r.vault.genesis {
				t.Errorf("a signs with %q, b with %q, the vault's genesis is %q: want one key", ka.ID, kb.ID, r.vault.genesis)
			}
			sealA, errA := a.Sign(context.Background(), []byte("x"))
			sealB, errB := b.Sign(context.Background(), []byte("x"))
			idA, idB := sealA.KeyID, sealB.KeyID
			if errA != nil || errB != nil || idA != idB || idA != ka.ID {
				t.Errorf("Sign: a %q (%v), b %q (%v); want both %s", idA, errA, idB, errB, ka.ID)
			}
			if n := len(authA.calls()); n != 1 {
				t.Errorf("a called authenticate %d times, want 1", n)
			}
			if want := map[bool]int{false: 0, true: 1}[tc.race]; len(authB.calls()) != want {
				t.Errorf("b called authenticate %d times, want %d", len(authB.calls()), want)
			}
		})
	}
}

func TestSigningSetupAgainAppendsNothing(t *testing.T) {
	r := newSigningRig(t)
	first := r.setUp()
	k, _ := first.Current()
	before := len(r.stream.all())

	for name, s := range map[string]*service.Signing{"the same process": first, "a restarted process": r.replica(nil)} {
		t.Run(name, func(t *testing.T) {
			auth := &authCalls{}
			mac, err := s.Setup(context.Background(), auth.authenticate)
			if err != nil {
				t.Fatalf("setup: %v", err)
			}
			if !bytes.Equal(mac, macKey) {
				t.Errorf("MAC key %x, want %x", mac, macKey)
			}
			if n := len(auth.calls()); n != 0 {
				t.Errorf("authenticate called %d times on a signed ledger, want never", n)
			}
			if n := len(r.stream.all()); n != before {
				t.Errorf("%d messages after setup, want still %d", n, before)
			}
			if got, _ := s.Current(); got.ID != k.ID {
				t.Errorf("Current() = %s, want %s", got.ID, k.ID)
			}
		})
	}
}

func TestSigningSetupRefusesAnotherVault(t *testing.T) {
	for _, tc := range []struct {
		name  string
		vault func(r *signingRig, cur domain.KeyInfo) *fakeVault
		is    error // the error Setup's must wrap, if any
	}{
		{name: "another MAC key", vault: func(r *signingRig, _ domain.KeyInfo) *fakeVault {
			v := r.vault.copyOf()
			v.mac = bytes.Repeat([]byte{8}, 32)
			return v
		}},
		{name: "without the current key", vault: func(r *signingRig, cur domain.KeyInfo) *fakeVault {
			v := r.vault.copyOf()
			delete(v.seeds, cur.ID)
			return v
		}, is: service.ErrNoKey},
		{name: "an empty vault with the MAC key", vault: func(*signingRig, domain.KeyInfo) *fakeVault {
			return newFakeVault(macKey, 0x40)
		}, is: service.ErrNoKey},
		{name: "another key under the current key's id", vault: func(r *signingRig, cur domain.KeyInfo) *fakeVault {
			v := r.vault.copyOf()
			v.wrong[cur.ID] = mallory
			return v
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newSigningRig(t)
			first := r.setUp()
			if _, err := first.Rotate(context.Background(), domain.Meta{Actor: "admin", CommandID: "rot-1"}); err != nil {
				t.Fatalf("rotate: %v", err)
			}
			cur, _ := first.Current()
			before := len(r.stream.all())
			auth := &authCalls{}
			s := r.replica(tc.vault(r, cur))

			mac, err := s.Setup(context.Background(), auth.authenticate)

			if err == nil {
				t.Fatalf("setup with %s succeeded (MAC key %x), want an error", tc.name, mac)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("setup error %v, want one wrapping %v", err, tc.is)
			}
			if k, ok := s.Current(); ok {
				t.Errorf("Current() = %+v after a refused setup", k)
			}
			if _, err := s.Sign(context.Background(), []byte("x")); !errors.Is(err, service.ErrNotSigning) {
				t.Errorf("Sign after a refused setup: %v, want ErrNotSigning", err)
			}
			if n := len(r.stream.all()); n != before || len(auth.calls()) != 0 {
				t.Errorf("%d messages (want %d), %d authenticate calls (want 0)", n, before, len(auth.calls()))
			}
		})
	}
}

func TestSigningRotate(t *testing.T) {
	r := newSigningRig(t)
	s := r.setUp()
	old, _ := s.Current()
	r.clock.Advance(time.Minute)
	m := domain.Meta{Actor: "admin", CommandID: "rot-1"}

	k, err := s.Rotate(context.Background(), m)
	if err != nil {
		t.Fatalf("rotate: %v", err)
	}

	if k.ID == old.ID || k.ID != domain.KeyIDOf(k.PublicKey) {
		t.Fatalf("rotated to %+v, from %s: want a new key whose id is its public key's", k, old.ID)
	}
	keys := r.stream.ofToken(domain.KeysStream)
	envs := r.keyEvents()
	if got := envTypes(envs); !slices.Equal(got, []string{domain.TypeKeyCreated, domain.TypeKeyRotated}) {
		t.Fatalf("%s holds %v, want key.created then key.rotated", domain.KeysStream, got)
	}
	rot := keys[1]
	if rot.KeyID != old.ID || k.CreatedSeq != rot.Seq {
		t.Errorf("key.rotated at seq %d signed by %q; rotated key created at %d: want signed by the previous key %s", rot.Seq, rot.KeyID, k.CreatedSeq, old.ID)
	}
	if envs[1].Actor != "admin" || envs[1].CommandID != "rot-1" || envs[1].PrevHash != domain.HashEvent(keys[0].Body) {
		t.Errorf("key.rotated envelope %+v: want admin's rot-1 chained to the key.created", envs[1])
	}
	var data domain.KeyRotated
	if err := json.Unmarshal(envs[1].Data, &data); err != nil || data.KeyID != k.ID || data.PreviousKeyID != old.ID {
		t.Errorf("key.rotated data %+v (%v), want key %s after %s", data, err, k.ID, old.ID)
	}
	check := r.stream.wantAllAccepted(t)
	if ck, _ := check.CurrentKey(); ck.ID != k.ID {
		t.Errorf("the ledger's current key is %s, want %s", ck.ID, k.ID)
	}
	if cur, ok := s.Current(); !ok || cur.ID != k.ID || cur.CreatedSeq != k.CreatedSeq {
		t.Errorf("Current() = %+v, want the new key %+v", cur, k)
	}

	r.clock.Advance(time.Second)
	msg := r.appendEvent(s, "crm", evRequested)
	if msg.KeyID != k.ID {
		t.Errorf("an event after the rotation is signed by %q, want %s", msg.KeyID, k.ID)
	}
	r.stream.wantAllAccepted(t)

	t.Run("retried with the same command", func(t *testing.T) {
		before, made := len(r.stream.all()), r.vault.madeKeys()
		for name, p := range map[string]*service.Signing{"same process": s, "another replica": r.setUp()} {
			again, err := p.Rotate(context.Background(), m)
			if err != nil {
				t.Fatalf("%s: retry: %v", name, err)
			}
			if again.ID != k.ID || again.CreatedSeq != k.CreatedSeq {
				t.Errorf("%s: retry answered %s (seq %d), want the first key %s (seq %d)", name, again.ID, again.CreatedSeq, k.ID, k.CreatedSeq)
			}
		}
		if n := len(r.stream.all()); n != before {
			t.Errorf("%d messages after the retries, want still %d", n, before)
		}
		if n := r.vault.madeKeys(); n != made {
			t.Errorf("the retries made %d keys, want none", n-made)
		}
	})

	t.Run("another command rotates again", func(t *testing.T) {
		next, err := s.Rotate(context.Background(), domain.Meta{Actor: "admin", CommandID: "rot-2"})
		if err != nil {
			t.Fatalf("rotate: %v", err)
		}
		if next.ID == k.ID || next.ID == old.ID {
			t.Errorf("rotated to %s, want a key the ledger has not had", next.ID)
		}
		r.stream.wantAllAccepted(t)
	})

	t.Run("an invalid command id", func(t *testing.T) {
		before := len(r.stream.all())
		_, err := s.Rotate(context.Background(), domain.Meta{Actor: "admin", CommandID: "not valid!"})
		wantCode(t, err, domain.CodeInvalidArgument)
		if n := len(r.stream.all()); n != before {
			t.Errorf("%d messages, want still %d", n, before)
		}
	})
}

// A process started after a rotation signs with the rotated key.
func TestSigningSetupAfterARotation(t *testing.T) {
	r := newSigningRig(t)
	a := r.setUp()
	k, err := a.Rotate(context.Background(), domain.Meta{Actor: "admin", CommandID: "rot-1"})
	if err != nil {
		t.Fatalf("rotate: %v", err)
	}

	b := r.setUp()

	if cur, ok := b.Current(); !ok || cur.ID != k.ID || cur.CreatedSeq != k.CreatedSeq {
		t.Errorf("Current() = %+v, want the rotated key %+v", cur, k)
	}
	r.clock.Advance(time.Second)
	if m := r.appendEvent(b, "crm", evRequested); m.KeyID != k.ID {
		t.Errorf("b signs with %q, want %s", m.KeyID, k.ID)
	}
	r.stream.wantAllAccepted(t)
}

// Rotate's contract: "a retry with the same id is answered with the first
// key". It must hold when another rotation came between the first call
// and its retry, inside the deduplication window and after it.
func TestSigningRotateRetryAfterALaterRotation(t *testing.T) {
	for _, forget := range []bool{false, true} {
		t.Run(fmt.Sprintf("deduplication window passed: %v", forget), func(t *testing.T) {
			r := newSigningRig(t)
			s := r.setUp()
			m := domain.Meta{Actor: "admin", CommandID: "rot-1"}
			first, err := s.Rotate(context.Background(), m)
			if err != nil {
				t.Fatalf("rotate: %v", err)
			}
			if _, err := s.Rotate(context.Background(), domain.Meta{Actor: "bob", CommandID: "rot-2"}); err != nil {
				t.Fatalf("second rotate: %v", err)
			}
			if forget {
				r.stream.forgetMsgIDs()
			}
			before := len(r.stream.all())

			again, err := s.Rotate(context.Background(), m)

			if err != nil || again.ID != first.ID || again.CreatedSeq != first.CreatedSeq {
				t.Errorf("retry of rot-1 answered %s (seq %d), %v; want the first key %s (seq %d)", again.ID, again.CreatedSeq, err, first.ID, first.CreatedSeq)
			}
			if n := len(r.stream.all()); n != before {
				t.Errorf("the retry appended %d messages (%v), want none", n-before, envTypes(r.keyEvents()))
			}
		})
	}
}

// A replica that did not rotate keeps signing with the previous key until
// it learns the rotation: within RotationGrace of the key.rotated (store
// time) its events are part of the ledger, after it they are not.
func TestSigningReplicaLearnsTheRotation(t *testing.T) {
	for _, tc := range []struct {
		name   string
		after  time.Duration // store time of b's event after the key.rotated
		reason string        // "" accepted
	}{
		{name: "at once", after: 0},
		{name: "half the grace", after: domain.RotationGrace / 2},
		{name: "at the end of the grace", after: domain.RotationGrace},
		{name: "just after the grace", after: domain.RotationGrace + time.Millisecond, reason: domain.ReasonRetiredKey},
		{name: "an hour later", after: time.Hour, reason: domain.ReasonRetiredKey},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newSigningRig(t)
			a := r.setUp()
			b := r.setUp()
			old, _ := b.Current()
			r.clock.Advance(time.Minute)
			k, err := a.Rotate(context.Background(), domain.Meta{Actor: "admin", CommandID: "rot-1"})
			if err != nil {
				t.Fatalf("rotate: %v", err)
			}

			r.clock.Advance(tc.after)
			stale := r.appendEvent(b, "crm", evRequested)

			if stale.KeyID != old.ID {
				t.Fatalf("b signed with %q before it learnt the rotation, want the previous key %s", stale.KeyID, old.ID)
			}
			_, vs := r.stream.audit()
			if v := vs[stale.Seq]; v.Rejected != tc.reason {
				t.Errorf("b's event stored %s after the rotation: rejected %q (%s), want %q", tc.after, v.Rejected, v.Detail, tc.reason)
			}

			b.Learn(k)
			b.Learn(old) // an older key never takes its place back
			r.clock.Advance(time.Second)
			fresh := r.appendEvent(b, "crm", evDeleted)

			if fresh.KeyID != k.ID {
				t.Errorf("b signed with %q after Learn, want the new key %s", fresh.KeyID, k.ID)
			}
			if cur, _ := b.Current(); cur.ID != k.ID {
				t.Errorf("b's Current() = %s after signing with the learnt key, want %s", cur.ID, k.ID)
			}
			_, vs = r.stream.audit()
			if v := vs[fresh.Seq]; !v.Accepted() || v.KeyID != k.ID {
				t.Errorf("b's event after Learn: rejected %q (%s), key %q; want accepted with %s", v.Rejected, v.Detail, v.KeyID, k.ID)
			}
		})
	}
}

func TestSigningLearnOfAKeyNotInTheVault(t *testing.T) {
	r := newSigningRig(t)
	s := r.setUp()
	cur, _ := s.Current()

	s.Learn(domain.KeyInfo{ID: idOf(mallory), PublicKey: pubOf(mallory), CreatedSeq: cur.CreatedSeq + 5})
	_, err := s.Sign(context.Background(), []byte("x"))

	if !errors.Is(err, service.ErrNoKey) {
		t.Errorf("Sign with a learnt key the vault lacks: %v, want ErrNoKey", err)
	}
}

func TestSigningRotateRetriesAConflict(t *testing.T) {
	for _, tc := range []struct {
		name string
		// meanwhile appends to KeysStream while a's first key.rotated is
		// being appended.
		meanwhile func(t *testing.T, r *signingRig, b *service.Signing)
		// rotations is how many key.rotated the ledger then has.
		rotations int
	}{
		{name: "another replica rotated first", rotations: 2, meanwhile: func(t *testing.T, _ *signingRig, b *service.Signing) {
			if _, err := b.Rotate(context.Background(), domain.Meta{Actor: "bob", CommandID: "rot-b"}); err != nil {
				t.Errorf("b's rotate: %v", err)
			}
		}},
		{name: "someone published junk on the keys' subject", rotations: 1, meanwhile: func(_ *testing.T, r *signingRig, _ *service.Signing) {
			r.stream.publish(domain.KeysStream, []byte(`{"type":"key.rotated","app":"_keys"}`), idOf(mallory), "")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newSigningRig(t)
			a, b := r.setUp(), r.setUp()
			fired := false // the hook runs in a's goroutine, and again in b's appends from it
			r.stream.beforeAppend = func(ev domain.PendingEvent) {
				if ev.App == domain.KeysStream && !fired {
					fired = true
					tc.meanwhile(t, r, b)
				}
			}

			k, err := a.Rotate(context.Background(), domain.Meta{Actor: "alice", CommandID: "rot-a"})
			if err != nil {
				t.Fatalf("rotate: %v", err)
			}

			if n := r.stream.conflictCount(); n != 1 {
				t.Errorf("%d conflicts, want the one of the first attempt", n)
			}
			var rotated []string // the command ids of the replicas' key.rotated
			for _, e := range r.keyEvents() {
				if e.Type == domain.TypeKeyRotated && e.CommandID != "" {
					rotated = append(rotated, e.CommandID)
				}
			}
			if len(rotated) != tc.rotations || rotated[len(rotated)-1] != "rot-a" {
				t.Fatalf("key.rotated of commands %v, want %d, a's last", rotated, tc.rotations)
			}
			check, vs := r.stream.audit()
			for _, m := range r.stream.all() {
				v := vs[m.Seq]
				if v.Env != nil && v.Env.CommandID != "" && !v.Accepted() {
					t.Errorf("%s at seq %d refused: %s: %s", v.Env.Type, m.Seq, v.Rejected, v.Detail)
				}
			}
			if ck, _ := check.CurrentKey(); ck.ID != k.ID {
				t.Errorf("the ledger's current key is %s, want a's %s", ck.ID, k.ID)
			}
			if cur, _ := a.Current(); cur.ID != k.ID {
				t.Errorf("a's Current() = %s, want %s", cur.ID, k.ID)
			}
			r.clock.Advance(time.Second)
			if m := r.appendEvent(a, "crm", evRequested); m.KeyID != k.ID {
				t.Errorf("a signs with %q, want %s", m.KeyID, k.ID)
			}
		})
	}
}

func TestSigningRotateGivesUpWhenTheKeysKeepChanging(t *testing.T) {
	r := newSigningRig(t)
	s := r.setUp()
	before, _ := s.Current()
	r.stream.beforeAppend = func(ev domain.PendingEvent) {
		if ev.App == domain.KeysStream {
			r.stream.publish(domain.KeysStream, []byte(`junk`), "", "")
		}
	}

	_, err := s.Rotate(context.Background(), domain.Meta{Actor: "admin", CommandID: "rot-1"})

	if !errors.Is(err, domain.ErrConflict) {
		t.Fatalf("rotate against a subject that keeps changing: %v, want ErrConflict", err)
	}
	if got := envTypes(r.keyEvents()); !slices.Equal(got, []string{domain.TypeKeyCreated}) {
		t.Errorf("%s holds %v, want only the key.created", domain.KeysStream, got)
	}
	if cur, _ := s.Current(); cur.ID != before.ID {
		t.Errorf("Current() = %s after a failed rotation, want still %s", cur.ID, before.ID)
	}
}

// An append to the keys' subject while the genesis is appended makes it
// conflict; Setup tries again after it.
func TestSigningSetupRetriesAConflictingGenesis(t *testing.T) {
	r := newSigningRig(t)
	fired := false
	r.stream.beforeAppend = func(ev domain.PendingEvent) {
		if ev.App == domain.KeysStream && !fired {
			fired = true
			r.stream.publish(domain.KeysStream, []byte("junk"), "", "")
		}
	}
	auth := &authCalls{}
	s := r.replica(nil)

	if _, err := s.Setup(context.Background(), auth.authenticate); err != nil {
		t.Fatalf("setup: %v", err)
	}

	if n := r.stream.conflictCount(); n != 1 {
		t.Errorf("%d conflicts, want 1", n)
	}
	check, vs := r.stream.audit()
	if check.Genesis() != 2 || !vs[2].Accepted() {
		t.Fatalf("genesis %d, want the key.created after the junk at seq 2", check.Genesis())
	}
	if cur, _ := s.Current(); cur.ID != r.vault.genesis || cur.CreatedSeq != 2 {
		t.Errorf("Current() = %s at seq %d, want the vault's genesis %s at seq 2", cur.ID, cur.CreatedSeq, r.vault.genesis)
	}
	if len(auth.calls()) == 0 {
		t.Error("authenticate never called")
	}
}

// Junk on the keys' subject before the genesis (a message that is not a
// valid key.created) is refused and does not keep the ledger unsigned.
func TestSigningSetupAfterJunkOnTheKeysSubject(t *testing.T) {
	r := newSigningRig(t)
	forged := domain.NewKeyCreated(pubOf(mallory), macKey)
	data, _ := json.Marshal(forged)
	body, _ := json.Marshal(domain.Envelope{ID: "x", Type: domain.TypeKeyCreated, Version: 1, App: domain.KeysStream, Time: t0, Data: data})
	r.stream.publish(domain.KeysStream, body, "", "") // unsigned: refused
	r.stream.publish(domain.KeysStream, []byte("junk"), "", "")
	s := r.replica(nil)

	if _, err := s.Setup(context.Background(), nil); err != nil {
		t.Fatalf("setup: %v", err)
	}

	check, vs := r.stream.audit()
	if check.Genesis() != 3 || !vs[3].Accepted() {
		t.Fatalf("genesis %d (verdict of seq 3: %q %s), want the key.created backupd appended at seq 3", check.Genesis(), vs[3].Rejected, vs[3].Detail)
	}
	if cur, _ := s.Current(); cur.ID != r.vault.genesis {
		t.Errorf("Current() = %s, want the vault's genesis %s", cur.ID, r.vault.genesis)
	}
}

// A self-signed key.created that someone else wrote on the unsigned ledger
// (before backupd's genesis) stops a vault that never started a genesis:
// it cannot tell that from a vault that lost its keys. With NewGenesis it
// starts its own genesis after it, records its key, and from then on
// (also without NewGenesis) pins it: the planted one is refused.
func TestSigningSetupAfterAPlantedGenesis(t *testing.T) {
	r := newSigningRig(t)
	forged := domain.NewKeyCreated(pubOf(mallory), macKey)
	data, _ := json.Marshal(forged)
	body, _ := json.Marshal(domain.Envelope{ID: "x", Type: domain.TypeKeyCreated, Version: 1, App: domain.KeysStream, Time: t0, Data: data})
	id, sig := domain.SignBody(mallory, body)
	planted := r.stream.publish(domain.KeysStream, body, id, sig) // self-signed: a genesis for whoever does not pin

	refusing := r.replica(nil)
	if _, err := refusing.Setup(context.Background(), nil); !errors.Is(err, service.ErrNoKey) || !strings.Contains(err.Error(), "--new-ledger-genesis") {
		t.Fatalf("setup on a planted genesis: %v, want an error wrapping ErrNoKey that names --new-ledger-genesis", err)
	}
	if n := len(r.stream.all()); n != 1 {
		t.Fatalf("%d messages after a refused setup, want the planted one alone", n)
	}

	s := service.NewSigning(service.SigningConfig{NewGenesis: true}, r.vault, r.stream, r.stream, r.clock, r.ids, nil)
	if _, err := s.Setup(context.Background(), nil); err != nil {
		t.Fatalf("setup with NewGenesis: %v", err)
	}
	genesis := s.GenesisKey()
	if genesis == "" || genesis == idOf(mallory) || genesis != r.vault.genesis {
		t.Fatalf("GenesisKey() = %q (vault %q), want a key of the vault", genesis, r.vault.genesis)
	}
	ev := r.appendEvent(s, "crm", evRequested)
	check := domain.NewLedgerCheck()
	check.PinGenesis(genesis)
	for _, m := range r.stream.all() {
		v := check.Check(m)
		if accepted := m.Seq != planted; v.Accepted() != accepted {
			t.Errorf("seq %d: rejected %q (%s), want accepted %v", m.Seq, v.Rejected, v.Detail, accepted)
		}
	}
	if check.Genesis() == 0 || check.Genesis() == planted || ev.KeyID != genesis {
		t.Errorf("genesis at %d, event signed by %s; want backupd's genesis after seq %d", check.Genesis(), ev.KeyID, planted)
	}

	// Later starts need no flag: the vault's record pins the genesis.
	before := len(r.stream.all())
	again := r.replica(nil)
	if _, err := again.Setup(context.Background(), nil); err != nil {
		t.Fatalf("a later setup: %v", err)
	}
	if again.GenesisKey() != genesis || len(r.stream.all()) != before {
		t.Errorf("a later setup: genesis %s, %d messages (want %s, %d)", again.GenesisKey(), len(r.stream.all()), genesis, before)
	}
}
