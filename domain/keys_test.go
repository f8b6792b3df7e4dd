package domain_test

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"testing"

	"github.com/backupledger/backupledger/domain"
)

// keyOf returns the Ed25519 key of the seed 32×b: the tests' keys are
// fixed, so their ids and signatures are too.
func keyOf(b byte) ed25519.PrivateKey {
	return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{b}, ed25519.SeedSize))
}

// pubOf returns the public key of priv.
func pubOf(priv ed25519.PrivateKey) ed25519.PublicKey { return priv.Public().(ed25519.PublicKey) }

// idOf returns the key id of priv.
func idOf(priv ed25519.PrivateKey) string { return domain.KeyIDOf(pubOf(priv)) }

var (
	keyA    = keyOf(1) // the genesis key of the tests (and of the golden key.created)
	keyB    = keyOf(2) // the key after the first rotation
	keyC    = keyOf(3)
	mallory = keyOf(0x66) // a key that is not the ledger's
	macKey  = bytes.Repeat([]byte{7}, 32)
)

func TestKeyIDOf(t *testing.T) {
	// The keys of the golden key events.
	for key, want := range map[byte]string{1: "34750f98bd59fcfc", 2: "6a3803d5f059902a"} {
		if got := domain.KeyIDOf(pubOf(keyOf(key))); got != want {
			t.Errorf("KeyIDOf(key of seed %d) = %q, want %q", key, got, want)
		}
	}
}

func TestSignBody(t *testing.T) {
	body := []byte(`{"id":"x"}`)
	id, sig := domain.SignBody(keyA, body)
	if id != idOf(keyA) {
		t.Errorf("key id %q, want %q", id, idOf(keyA))
	}
	raw, err := base64.StdEncoding.Strict().DecodeString(sig)
	if err != nil || len(sig) != 88 {
		t.Fatalf("signature %q is not standard base64 of 64 bytes: %v", sig, err)
	}
	if !ed25519.Verify(pubOf(keyA), body, raw) {
		t.Error("the signature does not verify the body")
	}
	if ed25519.Verify(pubOf(keyA), append(body, ' '), raw) {
		t.Error("the signature verifies another body")
	}
}

func TestNewKeyEvents(t *testing.T) {
	created := domain.NewKeyCreated(pubOf(keyA), macKey)
	want := &domain.KeyCreated{KeyID: "34750f98bd59fcfc", Algorithm: "ed25519", PublicKey: "iojj3XQJ8ZX9UtstPLpdcspnCb8dlBIb83SIAbQPb1w=",
		MACKeySHA256: "4bb06f8e4e3a7715d201d573d0aa423762e55dabd61a2c02278fa56cc6d294e0"}
	if *created != *want {
		t.Errorf("NewKeyCreated = %+v, want %+v", created, want)
	}
	if got := domain.MACKeyDigest(macKey); got != want.MACKeySHA256 {
		t.Errorf("MACKeyDigest = %q", got)
	}
	rotated := domain.NewKeyRotated(pubOf(keyB), idOf(keyA))
	wantR := &domain.KeyRotated{KeyID: "6a3803d5f059902a", Algorithm: "ed25519", PublicKey: "gTl3Dqh9F19Wo1Rmw0x+zMuNipG07jeiXfYPW4/Js5Q=",
		PreviousKeyID: "34750f98bd59fcfc"}
	if *rotated != *wantR {
		t.Errorf("NewKeyRotated = %+v, want %+v", rotated, wantR)
	}
}

// No app can take the subject tokens of the identity and key events.
func TestSubjectTokensAreNoAppIDs(t *testing.T) {
	for _, tok := range []string{domain.KeysStream, domain.IdentityStream} {
		if err := domain.ValidateAppID(tok); err == nil {
			t.Errorf("ValidateAppID(%q) accepts it", tok)
		}
	}
	if domain.KeysStream != "_keys" || domain.HeaderKeyID != "Ledger-Key-Id" || domain.HeaderSignature != "Ledger-Signature" {
		t.Error("the subject token and header names are part of the contract (docs/events.md)")
	}
}
