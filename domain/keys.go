package domain

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"time"
)

// KeysStream is the token of the ledger subject that carries the ledger's
// signing keys (ledger.events._keys): the key.created that starts the
// signed ledger, then each key.rotated. Like IdentityStream, no app id can
// take it (app ids start with a letter or a digit).
const KeysStream = "_keys"

// Message headers of a signed ledger message (docs/events.md#signatures).
const (
	// HeaderKeyID names the key that signed the message: KeyIDOf its
	// public key.
	HeaderKeyID = "Ledger-Key-Id"
	// HeaderSignature is the Ed25519 signature of the message body, bytes
	// exactly as stored, in standard base64 with padding. It covers the
	// body only; that the body's app is the subject's token is checked
	// apart.
	HeaderSignature = "Ledger-Signature"
	// HeaderMAC is the HMAC-SHA256 of the message body under the event
	// MAC key of the signing key (EventMACKey), standard base64 with
	// padding: backupd's own, quicker check of what backupd wrote
	// (LedgerCheck.TrustMAC). Auditors, who do not hold the key, verify
	// the signature.
	HeaderMAC = "Ledger-Mac"
)

// Seal is what backupd adds to an event it appends, besides the body: the
// values of HeaderKeyID, HeaderSignature and HeaderMAC.
type Seal struct {
	KeyID     string
	Signature string
	MAC       string
}

// EventMACKey derives the event MAC key of a signing key: each signing
// key has its own, so that a rotation also replaces the key the
// projections trust (LedgerCheck.TrustMAC).
func EventMACKey(priv ed25519.PrivateKey) []byte {
	h := hmac.New(sha256.New, priv.Seed())
	h.Write([]byte("backupledger ledger events v1"))
	return h.Sum(nil)
}

// EventMAC returns the value of HeaderMAC of body under key (EventMACKey).
func EventMAC(key, body []byte) string {
	h := hmac.New(sha256.New, key)
	h.Write(body)
	return base64.StdEncoding.EncodeToString(h.Sum(nil))
}

// validMAC reports whether mac (HeaderMAC's value) is body's under key.
func validMAC(key, body []byte, mac string) bool {
	got, ok := decodeBase64(mac, sha256.Size)
	if !ok {
		return false
	}
	h := hmac.New(sha256.New, key)
	h.Write(body)
	return hmac.Equal(got, h.Sum(nil))
}

// Signing key event types, on KeysStream. Registered explicitly; never
// renamed.
const (
	TypeKeyCreated = "key.created"
	TypeKeyRotated = "key.rotated"
)

// AlgorithmEd25519 is the only signing algorithm of the ledger.
const AlgorithmEd25519 = "ed25519"

// RotationGrace is how long, in server store time, after a key.rotated
// message the previous key's signatures are still accepted, so that a
// replica that had not seen the rotation yet does not lose its writes.
const RotationGrace = time.Minute

// KeyCreated announces the ledger's first signing key. It is self-signed,
// and its stream sequence (the genesis) is where the signed ledger begins:
// every message after it must be signed.
type KeyCreated struct {
	KeyID string `json:"key_id"`
	// Algorithm is always AlgorithmEd25519.
	Algorithm string `json:"algorithm"`
	// PublicKey is the 32-byte Ed25519 public key, standard base64.
	PublicKey string `json:"public_key"`
	// MACKeySHA256 is MACKeyDigest of the key that authenticates the
	// secrets bucket's values, so that backupd can check that the MAC key
	// it loads is this ledger's.
	MACKeySHA256 string `json:"mac_key_sha256"`
}

// KeyRotated announces the ledger's next signing key. It is signed by the
// previous key, which was current until then.
type KeyRotated struct {
	KeyID     string `json:"key_id"`
	Algorithm string `json:"algorithm"`
	PublicKey string `json:"public_key"`
	// PreviousKeyID is the key this one replaces (and that signed this
	// event).
	PreviousKeyID string `json:"previous_key_id"`
}

// EventType implements Event.
func (*KeyCreated) EventType() string { return TypeKeyCreated }

// EventType implements Event.
func (*KeyRotated) EventType() string { return TypeKeyRotated }

// NewKeyCreated returns the key.created event of pub, with the digest of
// macKey (the secrets bucket's 32-byte MAC key).
func NewKeyCreated(pub ed25519.PublicKey, macKey []byte) *KeyCreated {
	return &KeyCreated{KeyID: KeyIDOf(pub), Algorithm: AlgorithmEd25519,
		PublicKey: base64.StdEncoding.EncodeToString(pub), MACKeySHA256: MACKeyDigest(macKey)}
}

// NewKeyRotated returns the key.rotated event that makes pub the key after
// previousKeyID.
func NewKeyRotated(pub ed25519.PublicKey, previousKeyID string) *KeyRotated {
	return &KeyRotated{KeyID: KeyIDOf(pub), Algorithm: AlgorithmEd25519,
		PublicKey: base64.StdEncoding.EncodeToString(pub), PreviousKeyID: previousKeyID}
}

// KeyIDOf returns the id of a public key: the lower-case hex of the first
// 8 bytes of its SHA-256 (16 characters).
func KeyIDOf(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:8])
}

// MACKeyDigest returns the lower-case hex SHA-256 of a MAC key, as
// KeyCreated.MACKeySHA256 carries it.
func MACKeyDigest(macKey []byte) string {
	sum := sha256.Sum256(macKey)
	return hex.EncodeToString(sum[:])
}

// SignBody signs a message body, bytes exactly as they will be stored. It
// returns the values of HeaderKeyID and HeaderSignature.
func SignBody(priv ed25519.PrivateKey, body []byte) (keyID, signature string) {
	pub := priv.Public().(ed25519.PublicKey)
	return KeyIDOf(pub), base64.StdEncoding.EncodeToString(ed25519.Sign(priv, body))
}

// verifyBody reports whether signature (HeaderSignature's value) is pub's
// signature of body. A signature that is not canonical standard base64 of
// 64 bytes does not verify.
func verifyBody(pub ed25519.PublicKey, body []byte, signature string) bool {
	sig, ok := decodeBase64(signature, ed25519.SignatureSize)
	return ok && ed25519.Verify(pub, body, sig)
}

// decodeBase64 decodes s, standard base64 with padding, in its one
// canonical form (no line breaks, zero padding bits), of n bytes.
func decodeBase64(s string, n int) ([]byte, bool) {
	if len(s) != base64.StdEncoding.EncodedLen(n) {
		return nil, false
	}
	b, err := base64.StdEncoding.Strict().DecodeString(s)
	if err != nil || len(b) != n || base64.StdEncoding.EncodeToString(b) != s {
		return nil, false
	}
	return b, true
}

// announcedKey checks the key an event announces: the algorithm is
// ed25519, the public key canonical base64 of 32 bytes and the id its
// KeyIDOf. It returns the key, or an error saying what is wrong.
func announcedKey(algorithm, publicKey, keyID string) (ed25519.PublicKey, error) {
	if algorithm != AlgorithmEd25519 {
		return nil, fmt.Errorf("algorithm %q is not %s", algorithm, AlgorithmEd25519)
	}
	b, ok := decodeBase64(publicKey, ed25519.PublicKeySize)
	if !ok {
		return nil, fmt.Errorf("public_key is not standard base64 of %d bytes", ed25519.PublicKeySize)
	}
	pub := ed25519.PublicKey(b)
	if id := KeyIDOf(pub); keyID != id {
		return nil, fmt.Errorf("key_id %q is not the id %s of its public key", keyID, id)
	}
	return pub, nil
}

// KeyInfo is one signing key of the ledger, as its key events announced it.
type KeyInfo struct {
	// ID is KeyIDOf(PublicKey).
	ID        string
	PublicKey ed25519.PublicKey
	// CreatedSeq and CreatedAt are the stream sequence and the store time
	// of the key.created or key.rotated that announced the key.
	CreatedSeq uint64
	CreatedAt  time.Time
	// RetiredSeq and RetiredAt are those of the key.rotated that replaced
	// it; 0 and zero while it is current.
	RetiredSeq uint64
	RetiredAt  time.Time
	// MACKeySHA256 is the genesis key's KeyCreated.MACKeySHA256; "" for
	// the later keys.
	MACKeySHA256 string
}

// Retired reports whether a later key replaced k.
func (k KeyInfo) Retired() bool { return k.RetiredSeq != 0 }
