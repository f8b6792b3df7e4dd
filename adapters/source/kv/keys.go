package kv

import (
	"strings"

	"github.com/backupledger/backupledger/domain"
)

// MaxKeyLen is the longest document key, in bytes.
const MaxKeyLen = 200

// validateKey checks a document key against the scheme of the package
// documentation and returns an *domain.Error with CodeInvalidArgument.
func validateKey(key string) error {
	if key == "" || len(key) > MaxKeyLen {
		return domain.Errorf(domain.CodeInvalidArgument, "config key must be 1 to %d characters of [A-Za-z0-9_=/.-], got %d", MaxKeyLen, len(key))
	}
	for i := 0; i < len(key); i++ {
		c := key[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == '_' || c == '=' || c == '/' || c == '.' || c == '-'
		if !ok {
			return domain.Errorf(domain.CodeInvalidArgument, "config key %q: character %q not allowed; use [A-Za-z0-9_=/.-]", key, c)
		}
	}
	switch {
	case key[0] == '.' || key[len(key)-1] == '.' || strings.Contains(key, ".."):
		return domain.Errorf(domain.CodeInvalidArgument, "config key %q: must not begin or end with '.' or contain \"..\"", key)
	case key[0] == '/' || key[len(key)-1] == '/' || strings.Contains(key, "//"):
		return domain.Errorf(domain.CodeInvalidArgument, "config key %q: must not begin or end with '/' or contain \"//\"", key)
	case strings.Contains(key, "/./"):
		return domain.Errorf(domain.CodeInvalidArgument, "config key %q: must not contain a \".\" path segment", key)
	}
	return nil
}

// kvKey returns the bucket key of app's document key after checking both.
func kvKey(app, key string) (string, error) {
	if err := domain.ValidateAppID(app); err != nil {
		return "", err
	}
	if err := validateKey(key); err != nil {
		return "", err
	}
	return app + "." + key, nil
}
