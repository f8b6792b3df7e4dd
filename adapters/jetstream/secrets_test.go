package jetstream_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"

	njs "github.com/nats-io/nats.go/jetstream"

	"github.com/backupledger/backupledger/adapters/jetstream"
	"github.com/backupledger/backupledger/service"
	"github.com/backupledger/backupledger/test/natstest"
)

// logBuffer is a slog output the test reads.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// secretsEnv is the secrets bucket of one backupd (with testMAC), its log,
// and the bucket as someone with write access to it sees it.
type secretsEnv struct {
	js      njs.JetStream
	secrets *jetstream.Secrets
	kv      njs.KeyValue
	log     *logBuffer
}

func newSecretsEnv(t *testing.T) *secretsEnv {
	t.Helper()
	s := natstest.Server(t, "")
	_, js := natstest.Connect(t, s)
	e := &secretsEnv{js: js, log: &logBuffer{}}
	var err error
	e.secrets, err = jetstream.NewSecrets(t.Context(), js, 1, testMAC, slog.New(slog.NewTextHandler(e.log, nil)))
	if err != nil {
		t.Fatalf("secrets: %v", err)
	}
	if e.kv, err = js.KeyValue(t.Context(), jetstream.SecretsBucket); err != nil {
		t.Fatalf("secrets bucket: %v", err)
	}
	return e
}

// other returns the secrets bucket as another process with mac sees it.
func (e *secretsEnv) other(t *testing.T, mac []byte) *jetstream.Secrets {
	t.Helper()
	s, err := jetstream.NewSecrets(t.Context(), e.js, 1, mac, nil)
	if err != nil {
		t.Fatalf("secrets: %v", err)
	}
	return s
}

// raw returns the value stored under key as it is in the bucket.
func (e *secretsEnv) raw(t *testing.T, key string) njs.KeyValueEntry {
	t.Helper()
	en, err := e.kv.Get(t.Context(), key)
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	return en
}

// wantSecret fails the test unless Secret(key) is want.
func wantSecret(t *testing.T, s *jetstream.Secrets, key, want string) {
	t.Helper()
	got, err := s.Secret(t.Context(), key)
	if err != nil || string(got) != want {
		t.Errorf("Secret(%s) = %q, %v; want %q", key, got, err, want)
	}
}

func TestSecretsRoundTrip(t *testing.T) {
	e := newSecretsEnv(t)
	ctx := t.Context()

	for key, value := range map[string]string{
		"password.alice": "$2a$10$hashofalicespassword",
		"token.t1":       "sha256-of-a-token",
		"webhook.w1":     "",
		"binary":         "\x00blmac1\x00 looks sealed but is a secret",
	} {
		if err := e.secrets.PutSecret(ctx, key, []byte(value)); err != nil {
			t.Fatalf("put %s: %v", key, err)
		}
		wantSecret(t, e.secrets, key, value)
		wantSecret(t, e.other(t, testMAC), key, value) // another replica
		if raw := e.raw(t, key).Value(); bytes.Equal(raw, []byte(value)) || !bytes.HasSuffix(raw, []byte(value)) {
			t.Errorf("%s is stored as %q, want the value after its MAC", key, raw)
		}
	}

	if err := e.secrets.PutSecret(ctx, "password.alice", []byte("new hash")); err != nil {
		t.Fatal(err)
	}
	wantSecret(t, e.secrets, "password.alice", "new hash")

	if _, err := e.secrets.Secret(ctx, "password.nobody"); !errors.Is(err, service.ErrNoSecret) {
		t.Errorf("Secret of an unknown key: %v, want ErrNoSecret", err)
	}
	if strings.Contains(e.log.String(), "level=ERROR") {
		t.Errorf("genuine reads logged an error:\n%s", e.log.String())
	}
}

func TestNewSecretsRefusesAMACKeyOfTheWrongSize(t *testing.T) {
	s := natstest.Server(t, "")
	_, js := natstest.Connect(t, s)
	for _, mac := range [][]byte{nil, testMAC[:16], append(bytes.Clone(testMAC), 1)} {
		if _, err := jetstream.NewSecrets(t.Context(), js, 1, mac, nil); err == nil {
			t.Errorf("NewSecrets with a %d-byte MAC key succeeded", len(mac))
		}
	}
}

// secretValue is a secret the tests look for in the log.
const secretValue = "hunter2-the-secret-value"

func TestSecretsRefuseValuesWithoutAValidMAC(t *testing.T) {
	for _, tc := range []struct {
		name string
		// write puts the refused value under "password.bob".
		write func(t *testing.T, e *secretsEnv)
	}{
		{name: "a raw value", write: func(t *testing.T, e *secretsEnv) {
			if _, err := e.kv.Put(t.Context(), "password.bob", []byte(secretValue)); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "a value sealed for another key", write: func(t *testing.T, e *secretsEnv) {
			if err := e.secrets.PutSecret(t.Context(), "password.alice", []byte(secretValue)); err != nil {
				t.Fatal(err)
			}
			if _, err := e.kv.Put(t.Context(), "password.bob", e.raw(t, "password.alice").Value()); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "a value sealed with another MAC key", write: func(t *testing.T, e *secretsEnv) {
			other := e.other(t, bytes.Repeat([]byte{0x42}, 32))
			if err := other.PutSecret(t.Context(), "password.bob", []byte(secretValue)); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "a sealed value cut short", write: func(t *testing.T, e *secretsEnv) {
			putTruncated(t, e, func(sealed []byte) []byte { return sealed[:len(sealed)-1] })
		}},
		{name: "a sealed value cut inside its MAC", write: func(t *testing.T, e *secretsEnv) {
			putTruncated(t, e, func(sealed []byte) []byte { return sealed[:len(sealed)-len(secretValue)-1] })
		}},
		{name: "a sealed value cut to its prefix", write: func(t *testing.T, e *secretsEnv) {
			putTruncated(t, e, func(sealed []byte) []byte { return sealed[:len(sealed)-len(secretValue)-32] })
		}},
		{name: "a sealed value with one bit changed", write: func(t *testing.T, e *secretsEnv) {
			putTruncated(t, e, func(sealed []byte) []byte {
				c := bytes.Clone(sealed)
				c[len(c)-1] ^= 1
				return c
			})
		}},
		{name: "a sealed value with a longer secret", write: func(t *testing.T, e *secretsEnv) {
			putTruncated(t, e, func(sealed []byte) []byte { return append(bytes.Clone(sealed), 'x') })
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newSecretsEnv(t)
			tc.write(t, e)

			got, err := e.secrets.Secret(t.Context(), "password.bob")

			if !errors.Is(err, service.ErrNoSecret) {
				t.Errorf("Secret = %q, %v; want an error wrapping ErrNoSecret", got, err)
			}
			log := e.log.String()
			if !strings.Contains(log, "level=ERROR") || !strings.Contains(log, "key=password.bob") {
				t.Errorf("the refusal is not logged as an error with its key:\n%s", log)
			}
			if strings.Contains(log, secretValue) || strings.Contains(log, secretValue[:len(secretValue)-1]) {
				t.Errorf("the log shows the value:\n%s", log)
			}
		})
	}
}

// putTruncated stores under password.bob what cut makes of secretValue
// sealed for password.bob.
func putTruncated(t *testing.T, e *secretsEnv, cut func(sealed []byte) []byte) {
	t.Helper()
	if err := e.secrets.PutSecret(t.Context(), "password.bob", []byte(secretValue)); err != nil {
		t.Fatal(err)
	}
	if _, err := e.kv.Put(t.Context(), "password.bob", cut(e.raw(t, "password.bob").Value())); err != nil {
		t.Fatal(err)
	}
}

func TestSecretsAuthenticateLegacy(t *testing.T) {
	e := newSecretsEnv(t)
	ctx := t.Context()
	legacy := map[string]string{"password.alice": "$2a$10$alice", "token.t1": "hash of t1", "webhook.w1": ""}
	for k, v := range legacy {
		if _, err := e.kv.Put(ctx, k, []byte(v)); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.secrets.PutSecret(ctx, "password.bob", []byte("$2a$10$bob")); err != nil {
		t.Fatal(err)
	}
	// A value that starts like a sealed one but whose MAC is not: not
	// sealed again (that would make it genuine), and still refused.
	if _, err := e.kv.Put(ctx, "password.mallory", []byte("\x00blmac1\x00"+strings.Repeat("x", 40))); err != nil {
		t.Fatal(err)
	}
	// A deleted secret is not brought back.
	if _, err := e.kv.Put(ctx, "token.gone", []byte("old")); err != nil {
		t.Fatal(err)
	}
	if err := e.kv.Delete(ctx, "token.gone"); err != nil {
		t.Fatal(err)
	}
	untouched := map[string]uint64{}
	for _, k := range []string{"password.bob", "password.mallory"} {
		untouched[k] = e.raw(t, k).Revision()
	}

	n, err := e.secrets.AuthenticateLegacy(ctx)

	if err != nil || n != len(legacy) {
		t.Fatalf("AuthenticateLegacy = %d, %v; want %d", n, err, len(legacy))
	}
	for k, v := range legacy {
		wantSecret(t, e.secrets, k, v)
		wantSecret(t, e.other(t, testMAC), k, v)
	}
	wantSecret(t, e.secrets, "password.bob", "$2a$10$bob")
	for k, rev := range untouched {
		if got := e.raw(t, k).Revision(); got != rev {
			t.Errorf("%s rewritten: revision %d, was %d", k, got, rev)
		}
	}
	if _, err := e.secrets.Secret(ctx, "password.mallory"); !errors.Is(err, service.ErrNoSecret) {
		t.Errorf("the value with a bad MAC after AuthenticateLegacy: %v, want ErrNoSecret", err)
	}
	if _, err := e.kv.Get(ctx, "token.gone"); !errors.Is(err, njs.ErrKeyNotFound) {
		t.Errorf("the deleted secret: %v, want it still absent", err)
	}

	// Once sealed, a second run finds nothing to do.
	revs := map[string]uint64{}
	for k := range legacy {
		revs[k] = e.raw(t, k).Revision()
	}
	again, err := e.secrets.AuthenticateLegacy(ctx)
	if err != nil || again != 0 {
		t.Errorf("second AuthenticateLegacy = %d, %v; want 0", again, err)
	}
	for k, rev := range revs {
		if got := e.raw(t, k).Revision(); got != rev {
			t.Errorf("%s sealed twice: revision %d, was %d", k, got, rev)
		}
	}
}

func TestSecretsAuthenticateLegacyOnAnEmptyBucket(t *testing.T) {
	e := newSecretsEnv(t)

	n, err := e.secrets.AuthenticateLegacy(t.Context())

	if err != nil || n != 0 {
		t.Errorf("AuthenticateLegacy of an empty bucket = %d, %v; want 0, nil", n, err)
	}
}

// Many legacy values: more than the key lister buffers, so that sealing
// runs while keys are still being listed.
func TestSecretsAuthenticateLegacyOfManyValues(t *testing.T) {
	e := newSecretsEnv(t)
	ctx := t.Context()
	const count = 600
	for i := range count {
		if _, err := e.kv.Put(ctx, keyN(i), []byte(keyN(i)+" value")); err != nil {
			t.Fatal(err)
		}
	}

	n, err := e.secrets.AuthenticateLegacy(ctx)

	if err != nil || n != count {
		t.Fatalf("AuthenticateLegacy = %d, %v; want %d", n, err, count)
	}
	for _, i := range []int{0, 255, 256, 599} {
		wantSecret(t, e.secrets, keyN(i), keyN(i)+" value")
	}
}

func keyN(i int) string { return fmt.Sprintf("token.t%04d", i) }

// racingJS is a JetStream whose key-value buckets run a hook before each
// Get and Update: what another replica does between AuthenticateLegacy's
// reading a value and its sealing it, made deterministic.
type racingJS struct {
	njs.JetStream
	hooks *kvHooks
}

type kvHooks struct {
	mu           sync.Mutex
	beforeGet    func(key string)
	beforeUpdate func(key string)
}

func (h *kvHooks) get() (func(string), func(string)) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.beforeGet, h.beforeUpdate
}

func (r racingJS) CreateOrUpdateKeyValue(ctx context.Context, cfg njs.KeyValueConfig) (njs.KeyValue, error) {
	kv, err := r.JetStream.CreateOrUpdateKeyValue(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return racingKV{KeyValue: kv, hooks: r.hooks}, nil
}

func (r racingJS) KeyValue(ctx context.Context, bucket string) (njs.KeyValue, error) {
	kv, err := r.JetStream.KeyValue(ctx, bucket)
	if err != nil {
		return nil, err
	}
	return racingKV{KeyValue: kv, hooks: r.hooks}, nil
}

type racingKV struct {
	njs.KeyValue
	hooks *kvHooks
}

func (k racingKV) Get(ctx context.Context, key string) (njs.KeyValueEntry, error) {
	if before, _ := k.hooks.get(); before != nil {
		before(key)
	}
	return k.KeyValue.Get(ctx, key)
}

func (k racingKV) Update(ctx context.Context, key string, value []byte, revision uint64) (uint64, error) {
	if _, before := k.hooks.get(); before != nil {
		before(key)
	}
	return k.KeyValue.Update(ctx, key, value, revision)
}

func TestSecretsAuthenticateLegacyLeavesAValueChangedMeanwhile(t *testing.T) {
	e := newSecretsEnv(t)
	ctx := t.Context()
	hooks := &kvHooks{}
	racing, err := jetstream.NewSecrets(ctx, racingJS{JetStream: e.js, hooks: hooks}, 1, testMAC, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"password.alice", "password.raced", "token.deleted"} {
		if _, err := e.kv.Put(ctx, k, []byte("legacy "+k)); err != nil {
			t.Fatal(err)
		}
	}
	hooks.mu.Lock()
	hooks.beforeGet = func(key string) {
		if key == "token.deleted" { // deleted after it was listed
			if err := e.kv.Delete(ctx, key); err != nil {
				t.Errorf("delete: %v", err)
			}
		}
	}
	hooks.beforeUpdate = func(key string) {
		if key == "password.raced" { // another replica sets a new password
			if err := e.secrets.PutSecret(ctx, key, []byte("new hash")); err != nil {
				t.Errorf("put: %v", err)
			}
		}
	}
	hooks.mu.Unlock()

	n, err := racing.AuthenticateLegacy(ctx)

	hooks.mu.Lock()
	hooks.beforeGet, hooks.beforeUpdate = nil, nil
	hooks.mu.Unlock()
	if err != nil || n != 1 {
		t.Fatalf("AuthenticateLegacy = %d, %v; want 1 (only password.alice)", n, err)
	}
	wantSecret(t, e.secrets, "password.alice", "legacy password.alice")
	wantSecret(t, e.secrets, "password.raced", "new hash")
	if _, err := e.secrets.Secret(ctx, "token.deleted"); !errors.Is(err, service.ErrNoSecret) {
		t.Errorf("the secret deleted meanwhile: %v, want ErrNoSecret", err)
	}
}
