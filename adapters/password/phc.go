package password

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// phc is an Argon2id hash in the PHC string format of the reference
// implementation:
//
//	$argon2id$v=19$m=<KiB>,t=<iterations>,p=<lanes>$<salt>$<key>
//
// with salt and key in unpadded standard base64.
type phc struct {
	params Params
	salt   []byte
	key    []byte
}

const (
	phcPrefix = "$argon2id$v=19$"
	// Bounds of a stored hash's salt and key (RFC 9106 asks for a salt of
	// at least 8 bytes; 16-byte keys are the shortest tools make).
	minSaltBytes, maxSaltBytes = 8, 64
	minKeyBytes, maxKeyBytes   = 16, 64
	// maxPHCBytes is longer than any hash within the bounds.
	maxPHCBytes = 256
)

func (h phc) encode() []byte {
	return fmt.Appendf(nil, "%sm=%d,t=%d,p=%d$%s$%s", phcPrefix,
		h.params.Memory, h.params.Iterations, h.params.Parallelism,
		base64.RawStdEncoding.EncodeToString(h.salt), base64.RawStdEncoding.EncodeToString(h.key))
}

// parsePHC reads an Argon2id hash strictly: version 19 only, the
// parameters m, t, p in that order as plain decimals within
// Params.Validate's bounds, canonical unpadded base64, and salt and key
// lengths within bounds. Anything else is an error, found before any
// hashing.
func parsePHC(hash []byte) (phc, error) {
	if len(hash) > maxPHCBytes {
		return phc{}, errors.New("argon2id hash too long")
	}
	rest, ok := strings.CutPrefix(string(hash), phcPrefix)
	if !ok {
		return phc{}, errors.New("not an argon2id v=19 hash")
	}
	fields := strings.Split(rest, "$")
	if len(fields) != 3 {
		return phc{}, fmt.Errorf("argon2id hash has %d fields after the version, want 3", len(fields))
	}
	params, err := parsePHCParams(fields[0])
	if err != nil {
		return phc{}, err
	}
	salt, err := decodeB64(fields[1], minSaltBytes, maxSaltBytes)
	if err != nil {
		return phc{}, fmt.Errorf("argon2id salt: %w", err)
	}
	key, err := decodeB64(fields[2], minKeyBytes, maxKeyBytes)
	if err != nil {
		return phc{}, fmt.Errorf("argon2id key: %w", err)
	}
	return phc{params: params, salt: salt, key: key}, nil
}

func parsePHCParams(s string) (Params, error) {
	parts := strings.Split(s, ",")
	if len(parts) != 3 {
		return Params{}, fmt.Errorf("argon2id parameters %q: want m=…,t=…,p=…", s)
	}
	var values [3]uint32
	for i, name := range []string{"m", "t", "p"} {
		v, ok := strings.CutPrefix(parts[i], name+"=")
		if !ok {
			return Params{}, fmt.Errorf("argon2id parameters %q: want m=…,t=…,p=…", s)
		}
		n, err := parseDecimal(v)
		if err != nil {
			return Params{}, fmt.Errorf("argon2id parameter %s: %w", name, err)
		}
		values[i] = n
	}
	if values[2] > 255 {
		return Params{}, fmt.Errorf("argon2id parallelism %d is over 255", values[2])
	}
	p := Params{Memory: values[0], Iterations: values[1], Parallelism: uint8(values[2])}
	if err := p.Validate(); err != nil {
		return Params{}, err
	}
	return p, nil
}

// parseDecimal reads a uint32 written as the reference implementation
// writes it: digits only, no sign, no leading zero.
func parseDecimal(s string) (uint32, error) {
	if s == "" || len(s) > 10 || (s[0] == '0' && len(s) > 1) || strings.TrimLeft(s, "0123456789") != "" {
		return 0, fmt.Errorf("%q is not a plain decimal", s)
	}
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("%q: %w", s, err)
	}
	return uint32(n), nil
}

// decodeB64 decodes unpadded standard base64 that re-encodes to itself
// (no line breaks, no stray bits) into minLen to maxLen bytes.
func decodeB64(s string, minLen, maxLen int) ([]byte, error) {
	b, err := base64.RawStdEncoding.DecodeString(s)
	if err != nil {
		return nil, err
	}
	if base64.RawStdEncoding.EncodeToString(b) != s {
		return nil, errors.New("not canonical unpadded base64")
	}
	if len(b) < minLen || len(b) > maxLen {
		return nil, fmt.Errorf("%d bytes, want %d to %d", len(b), minLen, maxLen)
	}
	return b, nil
}
