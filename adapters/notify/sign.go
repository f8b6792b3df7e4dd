package notify

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// signaturePrefix starts every signature: the name of the algorithm.
const signaturePrefix = "sha256="

// Sign returns the value of the header X-Backupledger-Signature for body:
// "sha256=" and the lowercase hex HMAC-SHA256 of body with secret.
func Sign(secret, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return signaturePrefix + hex.EncodeToString(m.Sum(nil))
}

// Verify reports whether sig is a valid signature of body with secret (see
// Sign), comparing in constant time. It is for receivers and tests.
func Verify(secret, body []byte, sig string) bool {
	hexSum, ok := strings.CutPrefix(sig, signaturePrefix)
	if !ok {
		return false
	}
	got, err := hex.DecodeString(hexSum)
	if err != nil {
		return false
	}
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return hmac.Equal(got, m.Sum(nil))
}
