package notify_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"testing"

	"github.com/backupledger/backupledger/adapters/notify"
)

func TestSignKnownVector(t *testing.T) {
	t.Parallel()
	// RFC 4231, test case 2.
	got := notify.Sign([]byte("Jefe"), []byte("what do ya want for nothing?"))
	want := "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
	if got != want {
		t.Errorf("Sign = %s, want %s", got, want)
	}

	secret, body := []byte("s3cr3t"), []byte(`{"id":"01J","type":"backup.completed"}`)
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	if got, want := notify.Sign(secret, body), "sha256="+hex.EncodeToString(m.Sum(nil)); got != want {
		t.Errorf("Sign = %s, want %s", got, want)
	}
}

func TestVerify(t *testing.T) {
	t.Parallel()
	secret, body := []byte("s3cr3t"), []byte(`{"id":"01J"}`)
	sig := notify.Sign(secret, body)
	tests := []struct {
		name   string
		secret []byte
		body   []byte
		sig    string
		want   bool
	}{
		{"round trip", secret, body, sig, true},
		{"other body", secret, []byte(`{"id":"01K"}`), sig, false},
		{"other secret", []byte("s3cr3u"), body, sig, false},
		{"no prefix", secret, body, sig[len("sha256="):], false},
		{"other prefix", secret, body, "sha1=" + sig[len("sha256="):], false},
		{"not hex", secret, body, "sha256=zz", false},
		{"truncated", secret, body, sig[:len(sig)-2], false},
		{"empty", secret, body, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := notify.Verify(tt.secret, tt.body, tt.sig); got != tt.want {
				t.Errorf("Verify = %v, want %v", got, tt.want)
			}
		})
	}
}
