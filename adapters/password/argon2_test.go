package password_test

import (
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"

	"github.com/backupledger/backupledger/adapters/password"
)

const secret = "correct horse battery staple"

func newHasher(t testing.TB, p password.Params) password.Argon2id {
	t.Helper()
	h, err := password.NewArgon2id(p)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func hashOf(t testing.TB, h password.Argon2id, pw string) []byte {
	t.Helper()
	hash, err := h.HashPassword(pw)
	if err != nil {
		t.Fatal(err)
	}
	return hash
}

// phcOf makes an Argon2id PHC string with argon2 itself, so that a test
// does not depend on HashPassword.
func phcOf(pw string, salt []byte, p password.Params, keyLen uint32) []byte {
	key := argon2.IDKey([]byte(pw), salt, p.Iterations, p.Memory, p.Parallelism, keyLen)
	b64 := base64.RawStdEncoding.EncodeToString
	return fmt.Appendf(nil, "$argon2id$v=19$m=%d,t=%d,p=%d$%s$%s", p.Memory, p.Iterations, p.Parallelism, b64(salt), b64(key))
}

func TestArgon2idRoundTrip(t *testing.T) {
	h := newHasher(t, password.TestParams())
	hash := hashOf(t, h, secret)
	format := regexp.MustCompile(`^\$argon2id\$v=19\$m=8,t=1,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$`)
	if !format.Match(hash) {
		t.Fatalf("hash %q does not match %s", hash, format)
	}
	if !h.PasswordMatches(hash, secret) {
		t.Error("the right password does not match")
	}
	for _, wrong := range []string{"", "correct horse battery stapl", secret + "!", strings.ToUpper(secret)} {
		if h.PasswordMatches(hash, wrong) {
			t.Errorf("%q matches", wrong)
		}
	}
	if h.NeedsRehash(hash) {
		t.Error("a hash of the hasher's own parameters needs a rehash")
	}
	if again := hashOf(t, h, secret); string(again) == string(hash) {
		t.Error("two hashes of one password are equal: the salt is not random")
	}
}

func TestArgon2idDefaultParams(t *testing.T) {
	got := password.DefaultParams()
	if want := (password.Params{Memory: 19456, Iterations: 2, Parallelism: 1}); got != want {
		t.Fatalf("DefaultParams() = %+v, want %+v (docs/passwords.md)", got, want)
	}
	h := newHasher(t, password.Params{}) // zero: the defaults
	hash := hashOf(t, h, secret)
	if !strings.HasPrefix(string(hash), "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Errorf("hash %q, want the default parameters", hash)
	}
	if !h.PasswordMatches(hash, secret) || h.NeedsRehash(hash) {
		t.Error("a hash of the default parameters does not match or needs a rehash")
	}
}

func TestNewArgon2idRefusesParams(t *testing.T) {
	for _, p := range []password.Params{
		{Memory: 64, Iterations: 0, Parallelism: 1},
		{Memory: 64, Iterations: 101, Parallelism: 1},
		{Memory: 64, Iterations: 1, Parallelism: 0},
		{Memory: 7, Iterations: 1, Parallelism: 1},
		{Memory: 31, Iterations: 1, Parallelism: 4}, // under 8 KiB per lane
		{Memory: 1<<20 + 1, Iterations: 1, Parallelism: 1},
		{Memory: 1 << 20, Iterations: 5, Parallelism: 1}, // 5 GiB of passes
	} {
		if _, err := password.NewArgon2id(p); err == nil {
			t.Errorf("NewArgon2id(%+v) accepted", p)
		}
	}
	for _, p := range []password.Params{
		password.TestParams(),
		{Memory: 47104, Iterations: 1, Parallelism: 1}, // OWASP's other equal choice
		{Memory: 1 << 20, Iterations: 4, Parallelism: 4},
	} {
		if _, err := password.NewArgon2id(p); err != nil {
			t.Errorf("NewArgon2id(%+v): %v", p, err)
		}
	}
}

// The issue: bcrypt ignores bytes past 72, so the first 72 bytes of a
// password plus anything logged in.
func TestArgon2idUsesEveryByte(t *testing.T) {
	h := newHasher(t, password.TestParams())
	long := strings.Repeat("0123456789", 10) // 100 bytes
	hash := hashOf(t, h, long)
	for _, wrong := range []string{long[:72], long[:72] + "anything", long[:99], long[:99] + "!", long + "0"} {
		if h.PasswordMatches(hash, wrong) {
			t.Errorf("%d bytes (%q…) match a hash of 100", len(wrong), wrong[60:])
		}
	}
	if !h.PasswordMatches(hash, long) {
		t.Error("the right 100-byte password does not match")
	}
}

func TestArgon2idPasswordLength(t *testing.T) {
	h := newHasher(t, password.TestParams())
	longest := strings.Repeat("x", password.MaxPasswordBytes)
	hash := hashOf(t, h, longest)
	if !h.PasswordMatches(hash, longest) {
		t.Error("a 1,024-byte password does not match its hash")
	}

	tooLong := longest + "x"
	if _, err := h.HashPassword(tooLong); !errors.Is(err, password.ErrPasswordTooLong) {
		t.Errorf("HashPassword(1,025 bytes): %v, want ErrPasswordTooLong", err)
	}
	// Even against a hash really made of it, 1,025 bytes never match.
	planted := phcOf(tooLong, []byte("0123456789abcdef"), password.TestParams(), 32)
	if h.PasswordMatches(planted, tooLong) {
		t.Error("a 1,025-byte password matches")
	}
	if h.PasswordMatches(hash, tooLong) {
		t.Error("1,025 bytes match the hash of their first 1,024")
	}
}

// A hash of the reference implementation: the argon2id vector of
// golang.org/x/crypto/argon2's tests (password "password", salt
// "somesalt", t=3, m=256, p=2, 24-byte key) in the PHC format.
func TestArgon2idReferenceVector(t *testing.T) {
	key, _ := hex.DecodeString("4668d30ac4187e6878eedeacf0fd83c5a0a30db2cc16ef0b")
	hash := "$argon2id$v=19$m=256,t=3,p=2$c29tZXNhbHQ$" + base64.RawStdEncoding.EncodeToString(key)
	h := newHasher(t, password.TestParams())
	if !h.PasswordMatches([]byte(hash), "password") {
		t.Errorf("%s does not match \"password\"", hash)
	}
	if h.PasswordMatches([]byte(hash), "Password") {
		t.Errorf("%s matches \"Password\"", hash)
	}
}

func TestArgon2idOtherParamsNeedRehash(t *testing.T) {
	h := newHasher(t, password.TestParams())
	salt := []byte("0123456789abcdef")
	for name, hash := range map[string][]byte{
		"other memory":      phcOf(secret, salt, password.Params{Memory: 64, Iterations: 1, Parallelism: 1}, 32),
		"other iterations":  phcOf(secret, salt, password.Params{Memory: 8, Iterations: 3, Parallelism: 1}, 32),
		"other parallelism": phcOf(secret, salt, password.Params{Memory: 16, Iterations: 1, Parallelism: 2}, 32),
		"8-byte salt":       phcOf(secret, salt[:8], password.TestParams(), 32),
		"16-byte key":       phcOf(secret, salt, password.TestParams(), 16),
		"64-byte key":       phcOf(secret, salt, password.TestParams(), 64),
		"another hasher's":  hashOf(t, newHasher(t, password.Params{Memory: 32, Iterations: 2, Parallelism: 2}), secret),
	} {
		t.Run(name, func(t *testing.T) {
			if !h.PasswordMatches(hash, secret) {
				t.Errorf("%s does not match", hash)
			}
			if h.PasswordMatches(hash, secret+"!") {
				t.Errorf("%s matches a wrong password", hash)
			}
			if !h.NeedsRehash(hash) {
				t.Errorf("%s needs no rehash", hash)
			}
		})
	}
	if same := phcOf(secret, salt, password.TestParams(), 32); h.NeedsRehash(same) || !h.PasswordMatches(same, secret) {
		t.Errorf("%s of the hasher's parameters needs a rehash or does not match", same)
	}
}

func TestArgon2idChecksLegacyBcrypt(t *testing.T) {
	h := newHasher(t, password.TestParams())
	legacy, err := bcrypt.GenerateFromPassword([]byte(secret), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	for _, prefix := range []string{"$2a$", "$2b$", "$2y$"} {
		hash := []byte(prefix + string(legacy[4:]))
		if !h.PasswordMatches(hash, secret) {
			t.Errorf("%s does not match", hash)
		}
		if h.PasswordMatches(hash, secret+"!") || h.PasswordMatches(hash, "") {
			t.Errorf("%s matches a wrong password", hash)
		}
		if !h.NeedsRehash(hash) {
			t.Errorf("%s needs no rehash", hash)
		}
	}
	if h.PasswordMatches([]byte("$2x$"+string(legacy[4:])), secret) {
		t.Error("a $2x$ hash matches")
	}

	// bcrypt's truncation is closed for hashes not yet replaced too: the
	// domain allowed 72 bytes at most while it used bcrypt.
	longest := strings.Repeat("7", 72)
	legacy72, err := bcrypt.GenerateFromPassword([]byte(longest), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	if !h.PasswordMatches(legacy72, longest) {
		t.Error("a 72-byte password does not match its bcrypt hash")
	}
	if h.PasswordMatches(legacy72, longest+"anything") {
		t.Error("72 bytes + anything match a bcrypt hash of the 72")
	}

	// A planted cost: 31 would take hours; refused without hashing.
	planted := []byte(strings.Replace(string(legacy), "$04$", "$31$", 1))
	if h.PasswordMatches(planted, secret) {
		t.Errorf("%s matches", planted)
	}
}

func TestArgon2idRefusesMalformedHashes(t *testing.T) {
	h := newHasher(t, password.TestParams())
	valid := string(phcOf(secret, []byte("0123456789abcdef"), password.TestParams(), 32))
	if !h.PasswordMatches([]byte(valid), secret) {
		t.Fatalf("%s does not match", valid)
	}
	parts := strings.Split(valid, "$") // "", argon2id, v=19, params, salt, key
	salt, key := parts[4], parts[5]
	with := func(params, salt, key string) string {
		return "$argon2id$v=19$" + params + "$" + salt + "$" + key
	}
	// Every case but the prefix ones would match secret if it were read
	// leniently, or would take minutes and gigabytes if it were hashed.
	for _, c := range []struct{ name, hash string }{
		{"empty", ""},
		{"not a hash", "not a hash"},
		{"argon2i", strings.Replace(valid, "$argon2id$", "$argon2i$", 1)},
		{"argon2d", strings.Replace(valid, "$argon2id$", "$argon2d$", 1)},
		{"upper case", strings.Replace(valid, "$argon2id$", "$Argon2id$", 1)},
		{"version 16", strings.Replace(valid, "v=19", "v=16", 1)},
		{"no version", strings.Replace(valid, "$v=19", "", 1)},
		{"no leading $", valid[1:]},
		{"trailing $", valid + "$"},
		{"extra field", with("m=8,t=1,p=1", salt, key+"$"+key)},
		{"no key", with("m=8,t=1,p=1", salt, "")},
		{"params out of order", with("t=1,m=8,p=1", salt, key)},
		{"params missing", with("m=8,t=1", salt, key)},
		{"params extra", with("m=8,t=1,p=1,keyid=x", salt, key)},
		{"params with spaces", with("m=8, t=1, p=1", salt, key)},
		{"leading zero", with("m=08,t=1,p=1", salt, key)},
		{"plus sign", with("m=+8,t=1,p=1", salt, key)},
		{"hex", with("m=0x8,t=1,p=1", salt, key)},
		{"over uint32", with("m=4294967304,t=1,p=1", salt, key)},
		{"empty value", with("m=,t=1,p=1", salt, key)},
		{"salt not base64", with("m=8,t=1,p=1", "!!!!"+salt[4:], key)},
		{"key not base64", with("m=8,t=1,p=1", salt, key[:40]+"***")},
		{"padded salt", with("m=8,t=1,p=1", salt+"==", key)},
		{"line break in salt", with("m=8,t=1,p=1", salt[:10]+"\n"+salt[10:], key)},
		{"stray bits", with("m=8,t=1,p=1", withStrayBit(salt), key)},
		{"salt of 4 bytes", with("m=8,t=1,p=1", base64.RawStdEncoding.EncodeToString([]byte("salt")), key)},
		{"salt of 65 bytes", with("m=8,t=1,p=1", base64.RawStdEncoding.EncodeToString(make([]byte, 65)), key)},
		{"key of 8 bytes", with("m=8,t=1,p=1", salt, base64.RawStdEncoding.EncodeToString(make([]byte, 8)))},
		{"key of 65 bytes", with("m=8,t=1,p=1", salt, base64.RawStdEncoding.EncodeToString(make([]byte, 65)))},
		{"too long", with("m=8,t=1,p=1", salt, key) + strings.Repeat("A", 300)},
		{"memory 0", with("m=0,t=1,p=1", salt, key)},
		{"memory under 8 KiB a lane", with("m=15,t=1,p=2", salt, key)},
		{"iterations 0", with("m=8,t=0,p=1", salt, key)},
		{"parallelism 0", with("m=8,t=1,p=0", salt, key)},
		{"parallelism 256", with("m=4096,t=1,p=256", salt, key)},
		{"absurd memory", with("m=4194304,t=1,p=1", salt, key)}, // 4 GiB
		{"memory over 1 GiB", with("m=1048577,t=1,p=1", salt, key)},
		{"absurd iterations", with("m=8,t=1000000,p=1", salt, key)},
		{"iterations over 100", with("m=8,t=101,p=1", salt, key)},
		{"absurd work", with("m=1048576,t=100,p=1", salt, key)}, // 100 GiB of passes
	} {
		t.Run(c.name, func(t *testing.T) {
			if h.PasswordMatches([]byte(c.hash), secret) {
				t.Errorf("%q matches", c.hash)
			}
			if !h.NeedsRehash([]byte(c.hash)) {
				t.Errorf("%q needs no rehash", c.hash)
			}
		})
	}
}

// withStrayBit sets the lowest bit of the last character of s, unpadded
// base64 of 16 bytes: a bit past the 128th, which a lenient decoder
// ignores.
func withStrayBit(s string) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	last := strings.IndexByte(alphabet, s[len(s)-1])
	return s[:len(s)-1] + string(alphabet[last|1])
}

// BenchmarkHashPassword measures a hash at the production parameters:
// what every login (and every unknown user's dummy check) costs.
func BenchmarkHashPassword(b *testing.B) {
	h := newHasher(b, password.DefaultParams())
	for b.Loop() {
		if _, err := h.HashPassword(secret); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPasswordMatches compares a check of a default Argon2id hash
// with a check of a legacy bcrypt hash of the daemon's old cost (10).
func BenchmarkPasswordMatches(b *testing.B) {
	h := newHasher(b, password.DefaultParams())
	legacy, err := bcrypt.GenerateFromPassword([]byte(secret), bcrypt.DefaultCost)
	if err != nil {
		b.Fatal(err)
	}
	for name, hash := range map[string][]byte{
		"argon2id-m19456-t2-p1": hashOf(b, h, secret),
		"bcrypt-10":             legacy,
	} {
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				if !h.PasswordMatches(hash, secret) {
					b.Fatal("no match")
				}
			}
		})
	}
}
