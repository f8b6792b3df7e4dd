package projections

import (
	"encoding/base64"
	"time"

	"github.com/backupledger/backupledger/domain"
)

// KeyView is one signing key of the ledger, as GET /v1/ledger/keys shows
// it: what auditors check the events' signatures with.
type KeyView struct {
	ID        string `json:"id"`
	Algorithm string `json:"algorithm"`
	// PublicKey is the 32-byte Ed25519 public key, standard base64.
	PublicKey string `json:"public_key"`
	// CreatedSeq and CreatedAt are the stream sequence and store time of
	// the key event that announced it.
	CreatedSeq uint64    `json:"created_seq"`
	CreatedAt  time.Time `json:"created_at"`
	// RetiredSeq and RetiredAt are those of the key.rotated that replaced
	// it; absent while it is current.
	RetiredSeq uint64     `json:"retired_seq,omitempty"`
	RetiredAt  *time.Time `json:"retired_at,omitempty"`
	Current    bool       `json:"current"`
}

// KeyList is the JSON of the ledger's signing keys.
type KeyList struct {
	// GenesisSeq is the stream sequence of the first key.created, from
	// which every event is signed; 0 while the ledger is unsigned.
	GenesisSeq uint64    `json:"genesis_seq"`
	Keys       []KeyView `json:"keys"`
}

// NewKeyView converts a key of the ledger into its API form.
func NewKeyView(k domain.KeyInfo) KeyView {
	v := KeyView{ID: k.ID, Algorithm: domain.AlgorithmEd25519, PublicKey: base64.StdEncoding.EncodeToString(k.PublicKey),
		CreatedSeq: k.CreatedSeq, CreatedAt: k.CreatedAt.UTC(), RetiredSeq: k.RetiredSeq, Current: !k.Retired()}
	if k.Retired() {
		t := k.RetiredAt.UTC()
		v.RetiredAt = &t
	}
	return v
}

// Keys returns the ledger's signing keys as this process has folded them,
// the genesis key first.
func (s *Store) Keys() KeyList {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := KeyList{GenesisSeq: s.check.Genesis(), Keys: []KeyView{}}
	for _, k := range s.check.Keys() {
		out.Keys = append(out.Keys, NewKeyView(k))
	}
	return out
}
