package objectstore_test

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/backupledger/backupledger/adapters/objectstore"
	"github.com/backupledger/backupledger/domain"
)

func BenchmarkTmpUpload(b *testing.B) {
	app := benchAppOnce()
	ctx := context.Background()
	js := benchServer(b, false)
	tmp := b.TempDir()
	a, err := objectstore.New(ctx, js, objectstore.Config{TempDir: tmp})
	if err != nil {
		b.Fatal(err)
	}
	info, err := a.WriteArchive(ctx, domain.ArchiveHeader{App: "bench", BackupID: "x", Name: "bench", CreatedAt: time.Now(),
		Origin: domain.OriginManual, SchemaVersion: 1, SourceKind: "dir", Components: []string{"config", "files"}}, app.export)
	if err != nil {
		b.Fatal(err)
	}
	s, _ := a.OpenArchive(ctx, "x", info.SizeBytes, info.SHA256, "")
	path := filepath.Join(tmp, "a.zip")
	f, _ := os.Create(path)
	io.Copy(f, s)
	f.Close()
	s.Close()
	b.Run("validate", func(b *testing.B) {
		for b.Loop() {
			f, _ := os.Open(path)
			if _, err := objectstore.ValidateArchive(ctx, f, info.SizeBytes, objectstore.Limits{}); err != nil {
				b.Fatal(err)
			}
			f.Close()
			b.SetBytes(info.SizeBytes)
		}
	})
	b.Run("copyfile", func(b *testing.B) {
		for b.Loop() {
			f, _ := os.Open(path)
			g, _ := os.Create(path + ".2")
			io.CopyBuffer(struct{ io.Writer }{g}, struct{ io.Reader }{f}, make([]byte, 1<<20))
			f.Close()
			g.Close()
			os.Remove(path + ".2")
			b.SetBytes(info.SizeBytes)
		}
	})
	b.Run("rawput", func(b *testing.B) {
		for b.Loop() {
			f, _ := os.Open(path)
			if _, err := a.PutRaw(ctx, "r", f); err != nil {
				b.Fatal(err)
			}
			f.Close()
			b.SetBytes(info.SizeBytes)
		}
	})
	b.Run("import", func(b *testing.B) {
		for b.Loop() {
			f, _ := os.Open(path)
			if _, err := a.ImportArchive(ctx, "i", f); err != nil {
				b.Fatal(err)
			}
			f.Close()
			b.SetBytes(info.SizeBytes)
		}
	})
}
