package jetstream_test

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"slices"
	"sync"
	"testing"

	njs "github.com/nats-io/nats.go/jetstream"

	"github.com/backupledger/backupledger/adapters/jetstream"
	"github.com/backupledger/backupledger/domain"
	"github.com/backupledger/backupledger/service"
	"github.com/backupledger/backupledger/test/natstest"
)

// keysProcess is the key vault of one backupd on its own connection, and
// the bucket as anyone with access to it sees it.
type keysProcess struct {
	keys *jetstream.Keys
	kv   njs.KeyValue
}

// newKeysProcesses starts a server and returns n processes on its
// KeysBucket.
func newKeysProcesses(t *testing.T, n int) []keysProcess {
	t.Helper()
	s := natstest.Server(t, "")
	out := make([]keysProcess, n)
	for i := range out {
		_, js := natstest.Connect(t, s)
		k, err := jetstream.NewKeys(t.Context(), js, 1)
		if err != nil {
			t.Fatalf("keys: %v", err)
		}
		kv, err := js.KeyValue(t.Context(), jetstream.KeysBucket)
		if err != nil {
			t.Fatalf("keys bucket: %v", err)
		}
		out[i] = keysProcess{keys: k, kv: kv}
	}
	return out
}

func publicKeyID(priv ed25519.PrivateKey) string {
	return domain.KeyIDOf(priv.Public().(ed25519.PublicKey))
}

func TestKeysStoreAndReadBack(t *testing.T) {
	ps := newKeysProcesses(t, 2)
	ctx := t.Context()

	priv, err := ps[0].keys.NewSigningKey(ctx)
	if err != nil {
		t.Fatalf("new signing key: %v", err)
	}
	id := publicKeyID(priv)

	for i, p := range ps {
		got, err := p.keys.SigningKey(ctx, id)
		if err != nil {
			t.Fatalf("process %d: signing key %s: %v", i, id, err)
		}
		if !bytes.Equal(got, priv) {
			t.Errorf("process %d read another key under %s", i, id)
		}
	}
	e, err := ps[0].kv.Get(ctx, "signing."+id)
	if err != nil {
		t.Fatalf("the bucket has no signing.%s: %v", id, err)
	}
	if !bytes.Equal(e.Value(), priv.Seed()) {
		t.Errorf("signing.%s holds %d bytes, want the key's 32-byte seed", id, len(e.Value()))
	}
	st, err := ps[0].kv.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Bucket() != jetstream.KeysBucket || st.History() != 1 {
		t.Errorf("bucket %s keeps %d revisions, want %s with 1", st.Bucket(), st.History(), jetstream.KeysBucket)
	}
}

func TestKeysNewSigningKeyNeverReplaces(t *testing.T) {
	ps := newKeysProcesses(t, 2)
	ctx := t.Context()

	var made []ed25519.PrivateKey
	for i := range 4 {
		priv, err := ps[i%2].keys.NewSigningKey(ctx)
		if err != nil {
			t.Fatalf("new signing key %d: %v", i, err)
		}
		made = append(made, priv)
	}

	ids := map[string]bool{}
	for _, priv := range made {
		id := publicKeyID(priv)
		if ids[id] {
			t.Fatalf("key %s made twice", id)
		}
		ids[id] = true
		got, err := ps[0].keys.SigningKey(ctx, id)
		if err != nil || !bytes.Equal(got, priv) {
			t.Errorf("key %s after more keys were made: %v (same key: %v)", id, err, bytes.Equal(got, priv))
		}
		hist, err := ps[0].kv.History(ctx, "signing."+id)
		if err != nil || len(hist) != 1 || hist[0].Operation() != njs.KeyValuePut {
			t.Errorf("signing.%s has history %v (%v), want one put", id, hist, err)
		}
	}
}

func TestKeysSigningKeyOfAnUnknownID(t *testing.T) {
	p := newKeysProcesses(t, 1)[0]

	_, err := p.keys.SigningKey(t.Context(), "0123456789abcdef")

	if !errors.Is(err, service.ErrNoKey) {
		t.Errorf("signing key of an unknown id: %v, want ErrNoKey", err)
	}
}

func TestKeysRefusesWhatIsNotTheKeyOfItsID(t *testing.T) {
	keyA := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{1}, ed25519.SeedSize))
	keyB := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{2}, ed25519.SeedSize))
	for _, tc := range []struct {
		name  string
		value []byte
	}{
		{name: "another key's seed", value: keyA.Seed()},
		{name: "a short seed", value: keyB.Seed()[:31]},
		{name: "the whole private key", value: keyB},
		{name: "nothing", value: []byte{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newKeysProcesses(t, 1)[0]
			id := publicKeyID(keyB)
			if _, err := p.kv.Put(t.Context(), "signing."+id, tc.value); err != nil {
				t.Fatal(err)
			}

			got, err := p.keys.SigningKey(t.Context(), id)

			if err == nil {
				t.Fatalf("signing key %s holding %s answered key %s, want an error", id, tc.name, publicKeyID(got))
			}
			if errors.Is(err, service.ErrNoKey) {
				t.Errorf("error %v wraps ErrNoKey: a bad value is not an absent one", err)
			}
		})
	}
}

func TestKeysMACKeyIsMadeOnce(t *testing.T) {
	ps := newKeysProcesses(t, 2)
	ctx := t.Context()

	if _, err := ps[0].keys.MACKey(ctx); !errors.Is(err, service.ErrNoKey) {
		t.Fatalf("MACKey before any was made: %v, want ErrNoKey", err)
	}
	const callers = 8
	macs := make([][]byte, callers)
	errs := make([]error, callers)
	var wg sync.WaitGroup
	for i := range callers {
		wg.Go(func() { macs[i], errs[i] = ps[i%2].keys.NewMACKey(ctx) })
	}
	wg.Wait()

	for i := range callers {
		if errs[i] != nil {
			t.Fatalf("caller %d: %v", i, errs[i])
		}
		if !bytes.Equal(macs[i], macs[0]) {
			t.Errorf("caller %d got MAC key %x, caller 0 %x: want one for all", i, macs[i], macs[0])
		}
	}
	if len(macs[0]) != 32 || bytes.Equal(macs[0], make([]byte, 32)) {
		t.Errorf("MAC key %x, want 32 random bytes", macs[0])
	}
	again, err := ps[1].keys.MACKey(ctx)
	if err != nil || !bytes.Equal(again, macs[0]) {
		t.Errorf("MACKey later: %x, %v; want %x", again, err, macs[0])
	}
	hist, err := ps[0].kv.History(ctx, "mac")
	if err != nil || len(hist) != 1 || !bytes.Equal(hist[0].Value(), macs[0]) {
		t.Errorf("the bucket's mac has history %v (%v), want the one value", hist, err)
	}
}

func TestKeysMACKeyOfTheWrongSize(t *testing.T) {
	for _, size := range []int{0, 16, 31, 33, 64} {
		p := newKeysProcesses(t, 1)[0]
		stored := bytes.Repeat([]byte{3}, size)
		if _, err := p.kv.Put(t.Context(), "mac", stored); err != nil {
			t.Fatal(err)
		}

		mac, err := p.keys.MACKey(t.Context())

		if err == nil {
			t.Errorf("a stored MAC key of %d bytes answered %x, want an error", size, mac)
		}
		if e, err := p.kv.Get(t.Context(), "mac"); err != nil || !bytes.Equal(e.Value(), stored) {
			t.Errorf("the %d-byte MAC key was replaced: %v", size, err)
		}
	}
}

func TestKeysClaimGenesis(t *testing.T) {
	ps := newKeysProcesses(t, 2)
	ctx := t.Context()

	if g, err := ps[1].keys.Genesis(ctx); !errors.Is(err, service.ErrNoKey) {
		t.Fatalf("Genesis before a claim: %q, %v; want ErrNoKey", g, err)
	}
	first, err := ps[0].keys.ClaimGenesis(ctx, "aaaaaaaaaaaaaaaa")
	if err != nil || first != "aaaaaaaaaaaaaaaa" {
		t.Fatalf("first claim: %q, %v; want its own id", first, err)
	}
	if g, err := ps[1].keys.Genesis(ctx); err != nil || g != first {
		t.Errorf("Genesis after the claim: %q, %v; want %q", g, err, first)
	}
	second, err := ps[1].keys.ClaimGenesis(ctx, "bbbbbbbbbbbbbbbb")
	if err != nil || second != first {
		t.Errorf("second claim: %q, %v; want the first's %q", second, err, first)
	}
	again, err := ps[0].keys.ClaimGenesis(ctx, "cccccccccccccccc")
	if err != nil || again != first {
		t.Errorf("third claim: %q, %v; want the first's %q", again, err, first)
	}
}

func TestKeysClaimGenesisConcurrently(t *testing.T) {
	ps := newKeysProcesses(t, 2)
	ctx := t.Context()
	candidates := []string{"1111111111111111", "2222222222222222", "3333333333333333", "4444444444444444", "5555555555555555", "6666666666666666"}

	got := make([]string, len(candidates))
	errs := make([]error, len(candidates))
	var wg sync.WaitGroup
	for i, id := range candidates {
		wg.Go(func() { got[i], errs[i] = ps[i%2].keys.ClaimGenesis(ctx, id) })
	}
	wg.Wait()

	for i := range candidates {
		if errs[i] != nil {
			t.Fatalf("claim %d: %v", i, errs[i])
		}
		if got[i] != got[0] {
			t.Errorf("claims answered %v, want one id for all", got)
			break
		}
	}
	if !slices.Contains(candidates, got[0]) {
		t.Errorf("the genesis %q is none of the candidates", got[0])
	}
}
