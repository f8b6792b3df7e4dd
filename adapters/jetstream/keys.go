package jetstream

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"

	njs "github.com/nats-io/nats.go/jetstream"

	"github.com/backupledger/backupledger/adapters/internal/ensure"
	"github.com/backupledger/backupledger/domain"
	"github.com/backupledger/backupledger/service"
)

// KeysBucket is the key-value bucket of the ledger's private keys: the
// Ed25519 seeds of the signing keys ("signing.<key id>"), the key that
// authenticates the secrets bucket's values ("mac"), and the id of the
// ledger's first key ("genesis"). Only backupd may use it
// (docs/security.md); values are written once and never replaced.
const KeysBucket = "ledger_keys"

// macKeySize is the size of the secrets' MAC key (HMAC-SHA256).
const macKeySize = 32

// Keys is the service.KeyVault on the KeysBucket.
type Keys struct {
	kv njs.KeyValue
}

var _ service.KeyVault = (*Keys)(nil)

// NewKeys creates the bucket (file storage, one revision per key) or binds
// to it, with replicas replicas (0 means 1). Its reads go to the stream's
// leader, not to direct gets that a lagging replica could answer: a key
// another backupd has just stored must be found.
func NewKeys(ctx context.Context, js njs.JetStream, replicas int) (*Keys, error) {
	// A cluster just started may not answer yet: try again until ctx ends.
	return ensure.Retry(ctx, func(ctx context.Context) (*Keys, error) { return newKeys(ctx, js, replicas) })
}

// newKeys is one try of NewKeys.
func newKeys(ctx context.Context, js njs.JetStream, replicas int) (*Keys, error) {
	// Made once, never updated as a bucket: an update would turn direct
	// gets back on for a moment. Replicas starting together race to make
	// it; the losers find it made.
	for attempt := 0; ; attempt++ {
		_, err := js.Stream(ctx, "KV_"+KeysBucket)
		if err == nil {
			break
		}
		if !errors.Is(err, njs.ErrStreamNotFound) {
			return nil, fmt.Errorf("keys bucket %s: %w", KeysBucket, err)
		}
		_, err = js.CreateKeyValue(ctx, njs.KeyValueConfig{
			Bucket:      KeysBucket,
			Description: "backupledger: the ledger's signing keys and the secrets' MAC key",
			History:     1,
			Storage:     njs.FileStorage,
			Replicas:    max(replicas, 1),
		})
		if err == nil {
			break
		}
		if attempt >= 5 || !errors.Is(err, njs.ErrBucketExists) && !errors.Is(err, njs.ErrStreamNameAlreadyInUse) {
			return nil, fmt.Errorf("keys bucket %s: %w", KeysBucket, err)
		}
	}
	st, err := js.Stream(ctx, "KV_"+KeysBucket)
	if err != nil {
		return nil, fmt.Errorf("keys bucket %s: %w", KeysBucket, err)
	}
	if cfg := st.CachedInfo().Config; cfg.AllowDirect || cfg.Replicas != max(replicas, 1) {
		cfg.AllowDirect, cfg.Replicas = false, max(replicas, 1)
		if _, err := js.UpdateStream(ctx, cfg); err != nil {
			return nil, fmt.Errorf("keys bucket %s: reads from the leader: %w", KeysBucket, err)
		}
	}
	kv, err := js.KeyValue(ctx, KeysBucket)
	if err != nil {
		return nil, fmt.Errorf("keys bucket %s: %w", KeysBucket, err)
	}
	return &Keys{kv: kv}, nil
}

func signingKey(id string) string { return "signing." + id }

// NewSigningKey implements service.KeyVault.
func (k *Keys) NewSigningKey(ctx context.Context) (ed25519.PrivateKey, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate signing key: %w", err)
	}
	id := domain.KeyIDOf(priv.Public().(ed25519.PublicKey))
	if _, err := k.kv.Create(ctx, signingKey(id), priv.Seed()); err != nil {
		return nil, fmt.Errorf("store signing key %s: %w", id, err)
	}
	return priv, nil
}

// SigningKey implements service.KeyVault.
func (k *Keys) SigningKey(ctx context.Context, id string) (ed25519.PrivateKey, error) {
	e, err := k.kv.Get(ctx, signingKey(id))
	if errors.Is(err, njs.ErrKeyNotFound) {
		return nil, fmt.Errorf("signing key %s is not in %s: %w", id, KeysBucket, service.ErrNoKey)
	}
	if err != nil {
		return nil, fmt.Errorf("signing key %s: %w", id, err)
	}
	if len(e.Value()) != ed25519.SeedSize {
		return nil, fmt.Errorf("signing key %s in %s is %d bytes, not a seed", id, KeysBucket, len(e.Value()))
	}
	priv := ed25519.NewKeyFromSeed(e.Value())
	if got := domain.KeyIDOf(priv.Public().(ed25519.PublicKey)); got != id {
		return nil, fmt.Errorf("signing key %s in %s is the key %s", id, KeysBucket, got)
	}
	return priv, nil
}

// MACKey implements service.KeyVault.
func (k *Keys) MACKey(ctx context.Context) ([]byte, error) {
	e, err := k.kv.Get(ctx, "mac")
	if errors.Is(err, njs.ErrKeyNotFound) {
		return nil, fmt.Errorf("the mac key is not in %s: %w", KeysBucket, service.ErrNoKey)
	}
	if err != nil {
		return nil, fmt.Errorf("mac key: %w", err)
	}
	return checkMAC(e.Value())
}

// NewMACKey implements service.KeyVault.
func (k *Keys) NewMACKey(ctx context.Context) ([]byte, error) {
	mac := make([]byte, macKeySize)
	if _, err := rand.Read(mac); err != nil {
		return nil, fmt.Errorf("generate mac key: %w", err)
	}
	v, err := k.once(ctx, "mac", mac)
	if err != nil {
		return nil, err
	}
	return checkMAC(v)
}

func checkMAC(v []byte) ([]byte, error) {
	if len(v) != macKeySize {
		return nil, fmt.Errorf("the mac key in %s is %d bytes, not %d", KeysBucket, len(v), macKeySize)
	}
	return v, nil
}

// ClaimGenesis implements service.KeyVault.
func (k *Keys) ClaimGenesis(ctx context.Context, id string) (string, error) {
	v, err := k.once(ctx, "genesis", []byte(id))
	return string(v), err
}

// Genesis implements service.KeyVault.
func (k *Keys) Genesis(ctx context.Context) (string, error) {
	e, err := k.kv.Get(ctx, "genesis")
	if errors.Is(err, njs.ErrKeyNotFound) {
		return "", fmt.Errorf("no genesis key recorded in %s: %w", KeysBucket, service.ErrNoKey)
	}
	if err != nil {
		return "", fmt.Errorf("genesis key: %w", err)
	}
	return string(e.Value()), nil
}

// once stores value under key unless a value is there already, and
// returns the value stored: the first writer's, whoever it was.
func (k *Keys) once(ctx context.Context, key string, value []byte) ([]byte, error) {
	_, err := k.kv.Create(ctx, key, value)
	if err == nil {
		return value, nil
	}
	if !errors.Is(err, njs.ErrKeyExists) {
		return nil, fmt.Errorf("store %s in %s: %w", key, KeysBucket, err)
	}
	e, err := k.kv.Get(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("read %s of %s: %w", key, KeysBucket, err)
	}
	return e.Value(), nil
}
