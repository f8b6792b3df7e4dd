package domain

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// Limits on user input.
const (
	MaxNameLen        = 100
	MaxDescriptionLen = 1000
	MaxKeyLen         = 64
	MaxAppIDLen       = 63
)

// ValidateAppID reports whether id is a valid app id:
// [a-z0-9][a-z0-9_-]{0,62}. It returns an *Error with CodeInvalidArgument.
func ValidateAppID(id string) error {
	if id == "" || len(id) > MaxAppIDLen {
		return Errorf(CodeInvalidArgument, "app id must be 1 to %d characters of [a-z0-9_-], starting with a letter or digit", MaxAppIDLen)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		ok := c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || i > 0 && (c == '_' || c == '-')
		if !ok {
			return Errorf(CodeInvalidArgument, "app id %q must match [a-z0-9][a-z0-9_-]{0,62}", id)
		}
	}
	return nil
}

// ValidateCommandKey reports whether key is a valid idempotency key:
// 1 to 64 characters of [A-Za-z0-9_.-].
func ValidateCommandKey(key string) error {
	if key == "" || len(key) > MaxKeyLen {
		return Errorf(CodeInvalidArgument, "idempotency key must be 1 to %d characters of [A-Za-z0-9_.-]", MaxKeyLen)
	}
	for i := 0; i < len(key); i++ {
		c := key[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-'
		if !ok {
			return Errorf(CodeInvalidArgument, "idempotency key must be 1 to %d characters of [A-Za-z0-9_.-]", MaxKeyLen)
		}
	}
	return nil
}

// NormalizeName trims a backup name and checks it: 1 to 100 characters
// (runes) after trimming, valid UTF-8, no control characters.
func NormalizeName(name string) (string, error) {
	name = strings.TrimSpace(name)
	if !utf8.ValidString(name) {
		return "", Errorf(CodeInvalidArgument, "name must be valid UTF-8")
	}
	n := utf8.RuneCountInString(name)
	if n == 0 || n > MaxNameLen {
		return "", Errorf(CodeInvalidArgument, "name must be 1 to %d characters after trimming spaces, got %d", MaxNameLen, n)
	}
	for _, r := range name {
		if unicode.IsControl(r) {
			return "", Errorf(CodeInvalidArgument, "name must not contain control characters")
		}
	}
	return name, nil
}

// NormalizeDescription trims a description and checks it: at most 1000
// characters, valid UTF-8, no control characters other than newline and tab.
func NormalizeDescription(d string) (string, error) {
	d = strings.TrimSpace(d)
	if !utf8.ValidString(d) {
		return "", Errorf(CodeInvalidArgument, "description must be valid UTF-8")
	}
	if n := utf8.RuneCountInString(d); n > MaxDescriptionLen {
		return "", Errorf(CodeInvalidArgument, "description must be at most %d characters, got %d", MaxDescriptionLen, n)
	}
	for _, r := range d {
		if unicode.IsControl(r) && r != '\n' && r != '\r' && r != '\t' {
			return "", Errorf(CodeInvalidArgument, "description must not contain control characters other than line breaks and tabs")
		}
	}
	return d, nil
}
