package password_test

import (
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/backupledger/backupledger/adapters/password"
)

func TestBcrypt(t *testing.T) {
	h, err := password.NewBcrypt(bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	hash, err := h.HashPassword("correct horse battery")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(hash), "correct horse") || !strings.HasPrefix(string(hash), "$2a$") {
		t.Fatalf("hash %q", hash)
	}
	if !h.PasswordMatches(hash, "correct horse battery") {
		t.Error("the right password does not match")
	}
	for _, wrong := range []string{"", "correct horse batter", "correct horse battery!"} {
		if h.PasswordMatches(hash, wrong) {
			t.Errorf("%q matches", wrong)
		}
	}
	if h.PasswordMatches([]byte("not a hash"), "x") {
		t.Error("a malformed hash matches")
	}
	if _, err := password.NewBcrypt(99); err == nil {
		t.Error("cost 99 accepted")
	}
}
