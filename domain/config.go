package domain

import (
	"context"
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

// ConfigStore is the built-in configuration store that people edit through
// the API.
type ConfigStore interface {
	// PutDoc stores value under key of app. A bad key or a value over the
	// limit returns an *Error with CodeInvalidArgument.
	PutDoc(ctx context.Context, app, key string, value []byte) (ConfigDoc, error)
	// GetDoc returns one document, or an *Error with CodeNotFound.
	GetDoc(ctx context.Context, app, key string) (ConfigDoc, error)
	// DeleteDoc removes one document, or returns an *Error with CodeNotFound.
	DeleteDoc(ctx context.Context, app, key string) error
	// ListDocs returns the app's documents sorted by key, without values.
	ListDocs(ctx context.Context, app string) ([]ConfigDoc, error)
}
