package domain

import (
	"time"
)

// ConfigDoc is one document of an app's configuration in the built-in
// configuration store (source "kv").
type ConfigDoc struct {
	Key string
	// Value is nil in listings.
	Value    []byte
	Size     int64
	Revision uint64
	Updated  time.Time
}
