package objectstore

import (
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/backupledger/backupledger/adapters/objectstore/archive"
)

// Defaults of Config.
const (
	// DefaultBucket is the archives' bucket.
	DefaultBucket = "ledger_archives"
	// DefaultStagingBucket is the bucket of archives over NATS.
	DefaultStagingBucket = "ledger_staging"
	// DefaultStagingTTL is how long a staging object lives.
	DefaultStagingTTL = time.Hour
	// DefaultReplicas is the buckets' number of replicas.
	DefaultReplicas = 1
	// DefaultMaxUploadBytes bounds an uploaded zip file.
	DefaultMaxUploadBytes = archive.DefaultMaxArchiveBytes
	// DefaultMaxEntries bounds the entries of an uploaded archive.
	DefaultMaxEntries = archive.DefaultMaxEntries
	// DefaultMaxUncompressedBytes bounds the total size of an uploaded
	// archive's entries.
	DefaultMaxUncompressedBytes = archive.DefaultMaxUncompressedBytes
	// DefaultMaxRatio bounds the compression ratio of an uploaded
	// archive's entries larger than 1 MiB.
	DefaultMaxRatio = archive.DefaultMaxRatio
	// DefaultMaxManifestBytes bounds manifest.json.
	DefaultMaxManifestBytes = archive.DefaultMaxManifestBytes
	// DefaultCallTimeout bounds one call to a bucket's stream.
	DefaultCallTimeout = 30 * time.Second
)

// Config configures the object store buckets and the limits on uploads.
// Zero fields take their defaults.
type Config struct {
	// Bucket is the archives' object store bucket; default DefaultBucket.
	Bucket string
	// StagingBucket is the bucket through which NATS clients hand in
	// uploads and fetch downloads; default DefaultStagingBucket.
	StagingBucket string
	// Staging is the JetStream API of the account that holds the staging
	// bucket, when that is not the archives' account (backupd reaches the
	// producers' account under a prefix: docs/nats/accounts.conf); nil
	// means the archives' own.
	Staging jetstream.JetStream
	// NoStaging leaves the staging bucket out: archives do not travel
	// over NATS, and ImportStaged and StageDownload answer CodeUnavailable.
	NoStaging bool
	// StagingTTL is how long an object stays in the staging bucket before
	// the server removes it; default DefaultStagingTTL.
	StagingTTL time.Duration
	// Replicas is the buckets' number of replicas (1 to 5); default 1.
	Replicas int
	// TempDir is where component downloads and archives read for a
	// restore are spooled; default os.TempDir(). Uploads are not spooled.
	TempDir string
	// MaxUploadBytes bounds an uploaded archive (CodeArchiveTooLarge);
	// default 2 GiB.
	MaxUploadBytes int64
	// MaxEntries bounds the entries of an uploaded archive, the manifest
	// and directory entries included; default 100000.
	MaxEntries int
	// MaxUncompressedBytes bounds the total uncompressed size of an
	// uploaded archive's entries; default 8 GiB.
	MaxUncompressedBytes int64
	// MaxRatio bounds how many times its compressed size an entry of more
	// than 1 MiB may inflate to; default 200.
	MaxRatio int
	// CallTimeout bounds each call to a bucket's stream that writes or
	// removes an object: the read of its record, the acknowledgement of
	// each chunk, the publish of its record, a purge, a delete. A call
	// that is never answered (the stream's leader, or the replica it went
	// to, hangs) fails then instead of holding a backup's worker, a
	// restore or a request until some larger deadline; default
	// DefaultCallTimeout. Reads of a whole archive are not one call.
	CallTimeout time.Duration
	// Written, if set, is told the size of every archive stored (backups
	// and uploads), and Read the bytes of archives read back (downloads,
	// restores, checks): the metrics' byte counters.
	Written, Read func(n int64)
}

var bucketRe = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

func (c Config) withDefaults() Config {
	if c.Bucket == "" {
		c.Bucket = DefaultBucket
	}
	if c.StagingBucket == "" {
		c.StagingBucket = DefaultStagingBucket
	}
	if c.StagingTTL == 0 {
		c.StagingTTL = DefaultStagingTTL
	}
	if c.Replicas == 0 {
		c.Replicas = DefaultReplicas
	}
	if c.MaxUploadBytes == 0 {
		c.MaxUploadBytes = DefaultMaxUploadBytes
	}
	if c.MaxEntries == 0 {
		c.MaxEntries = DefaultMaxEntries
	}
	if c.MaxUncompressedBytes == 0 {
		c.MaxUncompressedBytes = DefaultMaxUncompressedBytes
	}
	if c.MaxRatio == 0 {
		c.MaxRatio = DefaultMaxRatio
	}
	if c.CallTimeout == 0 {
		c.CallTimeout = DefaultCallTimeout
	}
	return c
}

// Limits returns the limits that c puts on uploads.
func (c Config) Limits() Limits {
	c = c.withDefaults()
	return Limits{
		MaxArchiveBytes: c.MaxUploadBytes, MaxEntries: c.MaxEntries,
		MaxUncompressedBytes: c.MaxUncompressedBytes, MaxRatio: c.MaxRatio,
	}
}

// Validate reports every invalid field of c, joined; zero fields stand for
// their defaults and are valid.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	if !bucketRe.MatchString(c.Bucket) {
		errs = append(errs, fmt.Errorf("bucket %q: must be letters, digits, '_' or '-'", c.Bucket))
	}
	if !bucketRe.MatchString(c.StagingBucket) {
		errs = append(errs, fmt.Errorf("staging bucket %q: must be letters, digits, '_' or '-'", c.StagingBucket))
	}
	if c.StagingBucket == c.Bucket {
		errs = append(errs, fmt.Errorf("staging bucket %q: must differ from the archives' bucket", c.StagingBucket))
	}
	if c.StagingTTL < time.Minute {
		errs = append(errs, fmt.Errorf("staging TTL %s: must be at least a minute", c.StagingTTL))
	}
	if c.Replicas < 1 || c.Replicas > 5 {
		errs = append(errs, fmt.Errorf("replicas %d: must be 1 to 5", c.Replicas))
	}
	if c.MaxUploadBytes < 0 {
		errs = append(errs, fmt.Errorf("max upload bytes %d: must be positive", c.MaxUploadBytes))
	}
	if c.MaxEntries < 0 {
		errs = append(errs, fmt.Errorf("max entries %d: must be positive", c.MaxEntries))
	}
	if c.MaxUncompressedBytes < 0 {
		errs = append(errs, fmt.Errorf("max uncompressed bytes %d: must be positive", c.MaxUncompressedBytes))
	}
	if c.MaxRatio < 0 {
		errs = append(errs, fmt.Errorf("max ratio %d: must be positive", c.MaxRatio))
	}
	if c.CallTimeout < 0 {
		errs = append(errs, fmt.Errorf("call timeout %s: must be positive", c.CallTimeout))
	}
	return errors.Join(errs...)
}
