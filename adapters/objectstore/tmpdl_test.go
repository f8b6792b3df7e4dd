package objectstore_test

import (
	"context"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/backupledger/backupledger/adapters/objectstore"
	"github.com/backupledger/backupledger/domain"
)

func BenchmarkTmpDownload(b *testing.B) {
	app := benchAppOnce()
	ctx := context.Background()
	js := benchServer(b, false)
	a, err := objectstore.New(ctx, js, objectstore.Config{TempDir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	info, err := a.WriteArchive(ctx, domain.ArchiveHeader{App: "bench", BackupID: "x", Name: "bench", CreatedAt: time.Now(),
		Origin: domain.OriginManual, SchemaVersion: 1, SourceKind: "dir", Components: []string{"config", "files"}}, app.export)
	if err != nil {
		b.Fatal(err)
	}
	obs, _ := js.ObjectStore(ctx, objectstore.DefaultBucket)
	b.Run("raw", func(b *testing.B) {
		for b.Loop() {
			res, _ := obs.Get(ctx, "x")
			n, err := io.Copy(io.Discard, res)
			res.Close()
			b.SetBytes(n)
			if err != nil {
				b.Fatal(err)
			}
		}
	})
	for _, sz := range []int{4 << 10, 8 << 10, 32 << 10, 128 << 10, 1 << 20} {
		b.Run(fmt.Sprint("raw", sz>>10, "k"), func(b *testing.B) {
			for b.Loop() {
				res, _ := obs.Get(ctx, "x")
				n, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{res}, make([]byte, sz))
				res.Close()
				b.SetBytes(n)
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("verified", func(b *testing.B) {
		for b.Loop() {
			s, err := a.OpenArchive(ctx, "x", info.SizeBytes, info.SHA256, "")
			if err != nil {
				b.Fatal(err)
			}
			n, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{s}, make([]byte, 32<<10))
			s.Close()
			b.SetBytes(n)
			if err != nil {
				b.Fatal(err)
			}
		}
	})
}
