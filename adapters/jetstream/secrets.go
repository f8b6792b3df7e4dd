package jetstream

import (
	"context"
	"errors"
	"fmt"

	njs "github.com/nats-io/nats.go/jetstream"

	"github.com/backupledger/backupledger/domain"
)

// SecretsBucket is the key-value bucket of password and token hashes. It
// is kept out of the LEDGER stream, which audit consumers read; only
// backupd may use it (docs/security.md).
const SecretsBucket = "ledger_secrets"

// Secrets is the domain.SecretStore on the SecretsBucket.
type Secrets struct {
	kv njs.KeyValue
}

var _ domain.SecretStore = (*Secrets)(nil)

// NewSecrets creates the bucket (file storage, one revision per key) or
// binds to it, with replicas replicas (0 means 1).
func NewSecrets(ctx context.Context, js njs.JetStream, replicas int) (*Secrets, error) {
	if replicas <= 0 {
		replicas = 1
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, njs.KeyValueConfig{
		Bucket:      SecretsBucket,
		Description: "backupledger password and token hashes",
		History:     1,
		Storage:     njs.FileStorage,
		Replicas:    replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("secrets bucket %s: %w", SecretsBucket, err)
	}
	return &Secrets{kv: kv}, nil
}

// PutSecret implements domain.SecretStore.
func (s *Secrets) PutSecret(ctx context.Context, key string, value []byte) error {
	if _, err := s.kv.Put(ctx, key, value); err != nil {
		return fmt.Errorf("put secret %s: %w", key, err)
	}
	return nil
}

// Secret implements domain.SecretStore.
func (s *Secrets) Secret(ctx context.Context, key string) ([]byte, error) {
	e, err := s.kv.Get(ctx, key)
	if errors.Is(err, njs.ErrKeyNotFound) {
		return nil, fmt.Errorf("secret %s: %w", key, domain.ErrNoSecret)
	}
	if err != nil {
		return nil, fmt.Errorf("get secret %s: %w", key, err)
	}
	return e.Value(), nil
}
