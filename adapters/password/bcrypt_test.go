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
	if h.NeedsRehash(hash) {
		t.Error("a hash of the hasher's cost needs a rehash")
	}
	if other, _ := password.NewBcrypt(bcrypt.MinCost + 1); !other.NeedsRehash(hash) {
		t.Error("a hash of another cost needs no rehash")
	}

	// bcrypt ignores bytes past 72: the 73rd must not let a password in.
	longest := strings.Repeat("7", 72)
	hash, err = h.HashPassword(longest)
	if err != nil {
		t.Fatal(err)
	}
	if !h.PasswordMatches(hash, longest) || h.PasswordMatches(hash, longest+"anything") {
		t.Error("72 bytes do not match, or 72 bytes + anything match")
	}
	if _, err := h.HashPassword(longest + "7"); err == nil {
		t.Error("a 73-byte password hashed")
	}
	if _, err := password.NewBcrypt(99); err == nil {
		t.Error("cost 99 accepted")
	}
}
