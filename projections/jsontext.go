package projections

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/backupledger/backupledger/domain"
)

// CheckJSONText refuses a JSON request body that encoding/json would
// silently alter: bytes that are not UTF-8 (decoded as U+FFFD), and \u
// escapes of half a surrogate pair. Both transports call it before they
// decode a request into the wire types of this package.
func CheckJSONText(data []byte) error {
	if !utf8.Valid(data) {
		i := invalidUTF8(data)
		return domain.Errorf(domain.CodeInvalidArgument, "request body is not valid UTF-8 (byte 0x%02x at offset %d): JSON text must be UTF-8", data[i], i)
	}
	if i := loneSurrogate(data); i >= 0 {
		return domain.Errorf(domain.CodeInvalidArgument, "request body has an unpaired UTF-16 surrogate escape %s at offset %d", data[i:i+6], i)
	}
	return nil
}

// invalidUTF8 returns the offset of the first byte of data that is not
// part of a valid UTF-8 sequence, or -1.
func invalidUTF8(data []byte) int {
	for i := 0; i < len(data); {
		r, n := utf8.DecodeRune(data[i:])
		if r == utf8.RuneError && n == 1 {
			return i
		}
		i += n
	}
	return -1
}

// loneSurrogate returns the offset of the first \uXXXX escape in a JSON
// string of data that is half of a UTF-16 surrogate pair without its other
// half, or -1. Malformed JSON is left to the decoder.
func loneSurrogate(data []byte) int {
	inString := false
	for i := 0; i < len(data); i++ {
		switch c := data[i]; {
		case !inString:
			inString = c == '"'
		case c == '"':
			inString = false
		case c == '\\':
			r, ok := escapedRune(data, i)
			switch {
			case !ok || !utf16.IsSurrogate(r):
			case r >= 0xdc00:
				return i
			default:
				if r2, ok := escapedRune(data, i+6); !ok || r2 < 0xdc00 || r2 > 0xdfff {
					return i
				}
				i += 6
			}
			i++ // the escaped character; hex digits need no skipping
		}
	}
	return -1
}

// escapedRune decodes the \uXXXX escape at data[i:], if there is one.
func escapedRune(data []byte, i int) (rune, bool) {
	if i+6 > len(data) || data[i] != '\\' || data[i+1] != 'u' {
		return 0, false
	}
	v, err := strconv.ParseUint(string(data[i+2:i+6]), 16, 16)
	return rune(v), err == nil
}

// DecodeRequest decodes the JSON request body data into dst, the way both
// transports take a request: one JSON object, valid UTF-8 without unpaired
// surrogate escapes (CheckJSONText), no unknown fields, nothing after it.
// An empty body leaves dst unchanged. Errors are invalid_argument with a
// detail that says what is wrong.
func DecodeRequest(data []byte, dst any) error {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil
	}
	if err := CheckJSONText(data); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return JSONError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return domain.Errorf(domain.CodeInvalidArgument, "request body must hold a single JSON object and nothing after it")
	}
	return nil
}

// JSONError turns an error of encoding/json into invalid_argument with a
// detail that says what is wrong.
func JSONError(err error) error {
	var (
		syn *json.SyntaxError
		typ *json.UnmarshalTypeError
	)
	switch {
	case errors.As(err, &syn):
		return domain.Errorf(domain.CodeInvalidArgument, "malformed JSON at byte %d: %v", syn.Offset, syn)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return domain.Errorf(domain.CodeInvalidArgument, "malformed JSON: unexpected end of the body")
	case errors.As(err, &typ):
		if typ.Field == "" {
			return domain.Errorf(domain.CodeInvalidArgument, "request body must be a JSON object, got a JSON %s", typ.Value)
		}
		return domain.Errorf(domain.CodeInvalidArgument, "field %q must be a %s, got a JSON %s", typ.Field, typ.Type, typ.Value)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return domain.Errorf(domain.CodeInvalidArgument, "unknown field %s", strings.TrimPrefix(err.Error(), "json: unknown field "))
	}
	return domain.Errorf(domain.CodeInvalidArgument, "invalid JSON body: %v", err)
}
