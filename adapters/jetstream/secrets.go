package jetstream

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"

	njs "github.com/nats-io/nats.go/jetstream"

	"github.com/backupledger/backupledger/adapters/internal/ensure"
	"github.com/backupledger/backupledger/service"
)

// SecretsBucket is the key-value bucket of password and token hashes and
// webhook secrets. It is kept out of the LEDGER stream, which audit
// consumers read; only backupd may use it (docs/security.md).
const SecretsBucket = "ledger_secrets"

// sealMagic starts every value of the SecretsBucket that carries a MAC:
// the value is sealMagic, the 32-byte HMAC-SHA256, then the secret.
const sealMagic = "\x00blmac1\x00"

// Secrets is the service.SecretStore on the SecretsBucket. Every value
// carries an HMAC-SHA256 of its key and secret with a key only backupd
// holds (service.KeyVault.MACKey), checked on every read: a value that
// fails is treated as absent and logged, never trusted.
type Secrets struct {
	kv  njs.KeyValue
	mac []byte
	log *slog.Logger
}

var _ service.SecretStore = (*Secrets)(nil)

// NewSecrets creates the bucket (file storage, one revision per key) or
// binds to it, with replicas replicas (0 means 1); mac is the MAC key (32
// bytes). log may be nil.
func NewSecrets(ctx context.Context, js njs.JetStream, replicas int, mac []byte, log *slog.Logger) (*Secrets, error) {
	if len(mac) != macKeySize {
		return nil, fmt.Errorf("secrets: mac key of %d bytes, want %d", len(mac), macKeySize)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	kv, err := ensure.KeyValue(ctx, js, njs.KeyValueConfig{
		Bucket:      SecretsBucket,
		Description: "backupledger password and token hashes, webhook secrets (each with a MAC)",
		History:     1,
		Storage:     njs.FileStorage,
		Replicas:    max(replicas, 1),
	})
	if err != nil {
		return nil, fmt.Errorf("secrets bucket %s: %w", SecretsBucket, err)
	}
	// A password or token check must read the current hash.
	if kv, err = ensure.LeaderReads(ctx, js, SecretsBucket); err != nil {
		return nil, fmt.Errorf("secrets bucket %s: reads from the leader: %w", SecretsBucket, err)
	}
	return &Secrets{kv: kv, mac: mac, log: log}, nil
}

// sum returns the MAC of the secret value under key.
func (s *Secrets) sum(key string, value []byte) []byte {
	h := hmac.New(sha256.New, s.mac)
	h.Write([]byte(SecretsBucket + "\x00" + key + "\x00"))
	h.Write(value)
	return h.Sum(nil)
}

// seal returns value as stored under key: with its MAC.
func (s *Secrets) seal(key string, value []byte) []byte {
	out := make([]byte, 0, len(sealMagic)+sha256.Size+len(value))
	out = append(out, sealMagic...)
	out = append(out, s.sum(key, value)...)
	return append(out, value...)
}

// open returns the secret of a stored value, and whether its MAC is that
// of key and the secret.
func (s *Secrets) open(key string, stored []byte) ([]byte, bool) {
	rest, ok := bytes.CutPrefix(stored, []byte(sealMagic))
	if !ok || len(rest) < sha256.Size {
		return nil, false
	}
	value := rest[sha256.Size:]
	return value, hmac.Equal(rest[:sha256.Size], s.sum(key, value))
}

// PutSecret implements service.SecretStore.
func (s *Secrets) PutSecret(ctx context.Context, key string, value []byte) error {
	if _, err := s.kv.Put(ctx, key, s.seal(key, value)); err != nil {
		return fmt.Errorf("put secret %s: %w", key, err)
	}
	return nil
}

// Secret implements service.SecretStore. A value whose MAC does not verify
// (not written by backupd, or moved from another key) is logged as an
// error, with its key, and answered as absent: an error wrapping
// service.ErrNoSecret.
func (s *Secrets) Secret(ctx context.Context, key string) ([]byte, error) {
	e, err := s.kv.Get(ctx, key)
	if errors.Is(err, njs.ErrKeyNotFound) {
		return nil, fmt.Errorf("secret %s: %w", key, service.ErrNoSecret)
	}
	if err != nil {
		return nil, fmt.Errorf("get secret %s: %w", key, err)
	}
	value, ok := s.open(key, e.Value())
	if !ok {
		s.log.Error("secret refused: its MAC does not verify; treated as absent", "bucket", SecretsBucket, "key", key, "revision", e.Revision())
		return nil, fmt.Errorf("secret %s: MAC does not verify: %w", key, service.ErrNoSecret)
	}
	return value, nil
}

// AuthenticateLegacy gives every value of the bucket that has no MAC yet
// its MAC, once: the values backupd wrote before its secrets carried one.
// It runs before the ledger's genesis records that they do, so it trusts
// the bucket as it is then. A value changed meanwhile by another replica
// (which seals it) is left alone. It returns how many values it sealed.
func (s *Secrets) AuthenticateLegacy(ctx context.Context) (int, error) {
	keys, err := s.kv.ListKeys(ctx)
	if err != nil {
		return 0, fmt.Errorf("list secrets: %w", err)
	}
	n := 0
	for key := range keys.Keys() {
		e, err := s.kv.Get(ctx, key)
		if errors.Is(err, njs.ErrKeyNotFound) {
			continue
		}
		if err != nil {
			return n, fmt.Errorf("get secret %s: %w", key, err)
		}
		if bytes.HasPrefix(e.Value(), []byte(sealMagic)) {
			continue
		}
		if _, err := s.kv.Update(ctx, key, s.seal(key, e.Value()), e.Revision()); err != nil {
			if errors.Is(err, njs.ErrKeyRevisionMismatch) {
				continue // written meanwhile, and so sealed
			}
			return n, fmt.Errorf("seal secret %s: %w", key, err)
		}
		n++
	}
	if n > 0 {
		s.log.Info("secrets written before they carried a MAC got one", "bucket", SecretsBucket, "count", n)
	}
	return n, nil
}
