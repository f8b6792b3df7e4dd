package projections_test

import (
	"reflect"
	"slices"
	"testing"

	"github.com/backupledger/backupledger/domain"
	"github.com/backupledger/backupledger/projections"
)

// Prepared ahead of time, all at once before any is applied (the most a
// follower can be ahead), the messages fold to what Apply folds: the same
// states, lists, logs and refusals, with MACs trusted or not, with own
// events announced.
func TestPreparedMessagesFoldAsApplied(t *testing.T) {
	macs := map[string][]byte{keyID(ledgerKey): domain.EventMACKey(ledgerKey), keyID(ledgerKey2): domain.EventMACKey(ledgerKey2)}
	macKey := func(id string) []byte { return macs[id] }
	l := newSignedLedger(t)
	l.emit("crm", "alice", requested("old"))
	l.store("junk", []byte("not an event"), nil)
	l.genesis(ledgerKey)
	l.emit("crm", "alice", requested("b1"))
	l.emit(domain.IdentityStream, "admin", &domain.OrgCreated{Org: "acme", Name: "ACME"})
	l.emit("crm", "worker", completed("b1"))
	forged := l.forge("crm", "mallory", deleteB1, foreignKey)
	l.rotate(ledgerKey2)
	b2 := l.emit("crm", "alice", requested("b2"))
	l.replay(forged, "crm")
	l.emit("hr", "alice", requested("h1"))
	// A delete under the ledger's key id, signed by a foreign key, with a
	// MAC that does not hold either.
	l.seq++
	bad := domain.StoredMessage{Seq: l.seq, Token: "crm", Body: l.body("crm", "mallory", deleteB1), Stored: l.now, KeyID: keyID(ledgerKey2)}
	_, bad.Signature = domain.SignBody(foreignKey, bad.Body)
	l.feed(bad)
	msgs := slices.Clone(l.msgs)
	for i, m := range msgs {
		// An event MAC on every signed message, and a wrong one on one.
		if mk := macKey(m.KeyID); mk != nil {
			msgs[i].MAC = domain.EventMAC(mk, m.Body)
		}
	}
	// b2's MAC does not hold: its signature still does.
	msgs[b2.Seq-1].MAC = domain.EventMAC(macKey(keyID(ledgerKey2)), []byte("another body"))
	msgs[bad.Seq-1].MAC = domain.EventMAC(macKey(keyID(ledgerKey2)), []byte("another body"))

	for _, opts := range []projections.Options{{}, {MACKey: macKey}} {
		applied := projections.New(domain.DefaultRules(), opts)
		prepared := projections.New(domain.DefaultRules(), opts)
		for _, m := range msgs {
			applied.Apply(m)
		}
		var applies []func()
		for _, m := range msgs {
			applies = append(applies, prepared.Prepare(m))
		}
		for _, apply := range applies {
			apply()
		}
		for _, app := range []string{"crm", "hr", "junk"} {
			if got, want := prepared.App(app), applied.App(app); !reflect.DeepEqual(got, want) {
				t.Errorf("MAC trusted %v: App(%s) prepared %+v, applied %+v", opts.MACKey != nil, app, got, want)
			}
			if got, want := prepared.Backups(app), applied.Backups(app); !reflect.DeepEqual(got, want) {
				t.Errorf("MAC trusted %v: Backups(%s) prepared %+v, applied %+v", opts.MACKey != nil, app, got, want)
			}
			if got, want := appLogOf(t, prepared, app), appLogOf(t, applied, app); !reflect.DeepEqual(got, want) {
				t.Errorf("MAC trusted %v: AppLog(%s) prepared %+v, applied %+v", opts.MACKey != nil, app, got, want)
			}
		}
		if got, want := prepared.Rejected(), applied.Rejected(); !reflect.DeepEqual(got, want) {
			t.Errorf("MAC trusted %v: Rejected prepared %v, applied %v", opts.MACKey != nil, got, want)
		}
		var refused uint64
		for _, n := range prepared.Rejected() {
			refused += n
		}
		if refused != 3 || prepared.Rejected()[domain.ReasonUnknownKey] != 2 || prepared.Rejected()[domain.ReasonBadSignature] != 1 {
			t.Errorf("MAC trusted %v: refused %v, want the 3 forgeries", opts.MACKey != nil, prepared.Rejected())
		}
		if ids := ids(prepared.Backups("crm")); !slices.Equal(ids, []string{"crm/old", "crm/b1", "crm/b2"}) {
			t.Errorf("MAC trusted %v: crm's backups %v", opts.MACKey != nil, ids)
		}
	}
}
