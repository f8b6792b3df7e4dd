package kv

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"time"
)

// Defaults of Config.
const (
	DefaultBucket        = "ledger_config"
	DefaultReplicas      = 1
	DefaultMaxValueBytes = 1 << 20
	// DefaultMaxReplaceDocs bounds the documents of one Replace.
	DefaultMaxReplaceDocs = 10_000
	// DefaultMaxReplaceBytes bounds the keys and values that one Replace
	// holds in memory.
	DefaultMaxReplaceBytes = 64 << 20
	// DefaultCallTimeout bounds one read or write of the bucket.
	DefaultCallTimeout = 10 * time.Second
)

// Config configures the key-value bucket. Zero fields take their defaults.
type Config struct {
	// Bucket is the key-value bucket's name; default DefaultBucket.
	Bucket string
	// Replicas is the bucket's number of replicas (1 to 5); default 1.
	Replicas int
	// MaxValueBytes is the largest document accepted; default 1 MiB. It
	// cannot exceed the server's max_payload.
	MaxValueBytes int
	// MaxReplaceDocs is the most documents that one Replace (a restore)
	// writes into an app; default DefaultMaxReplaceDocs.
	MaxReplaceDocs int
	// MaxReplaceBytes bounds the sum of the key and value lengths of the
	// documents of one Replace, which it holds in memory before it writes;
	// default DefaultMaxReplaceBytes.
	MaxReplaceBytes int64
	// CallTimeout bounds one read or write of the bucket (a listing of an
	// app's keys gets six times as long): a call the bucket's leader never
	// answers fails instead of holding a request, a backup or a restore;
	// default DefaultCallTimeout.
	CallTimeout time.Duration
}

var bucketRe = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

func (c Config) withDefaults() Config {
	if c.Bucket == "" {
		c.Bucket = DefaultBucket
	}
	if c.Replicas == 0 {
		c.Replicas = DefaultReplicas
	}
	if c.MaxValueBytes == 0 {
		c.MaxValueBytes = DefaultMaxValueBytes
	}
	if c.MaxReplaceDocs == 0 {
		c.MaxReplaceDocs = DefaultMaxReplaceDocs
	}
	if c.MaxReplaceBytes == 0 {
		c.MaxReplaceBytes = DefaultMaxReplaceBytes
	}
	if c.CallTimeout == 0 {
		c.CallTimeout = DefaultCallTimeout
	}
	return c
}

// Validate reports every invalid field of c, joined; zero fields stand for
// their defaults and are valid.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	if !bucketRe.MatchString(c.Bucket) {
		errs = append(errs, fmt.Errorf("bucket %q: must be letters, digits, '_' or '-'", c.Bucket))
	}
	if c.Replicas < 1 || c.Replicas > 5 {
		errs = append(errs, fmt.Errorf("replicas %d: must be 1 to 5", c.Replicas))
	}
	if c.MaxValueBytes < 0 || c.MaxValueBytes > math.MaxInt32 {
		errs = append(errs, fmt.Errorf("max value bytes %d: must be 1 to %d", c.MaxValueBytes, math.MaxInt32))
	}
	if c.MaxReplaceDocs < 0 {
		errs = append(errs, fmt.Errorf("max replace docs %d: must be positive", c.MaxReplaceDocs))
	}
	if c.MaxReplaceBytes < 0 {
		errs = append(errs, fmt.Errorf("max replace bytes %d: must be positive", c.MaxReplaceBytes))
	}
	if c.CallTimeout < 0 {
		errs = append(errs, fmt.Errorf("call timeout %s: must be positive", c.CallTimeout))
	}
	return errors.Join(errs...)
}
