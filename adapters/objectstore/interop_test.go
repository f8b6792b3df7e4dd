package objectstore_test

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/backupledger/backupledger/adapters/objectstore"
	"github.com/backupledger/backupledger/domain"
)

// Archives are ordinary objects: nats.go's object store API (and so the
// nats CLI) reads them, verifies their digest and sees their metadata.
func TestArchivesAreOrdinaryObjects(t *testing.T) {
	ctx := context.Background()
	a, js := setup(t)
	docs := []doc{{"a", randomBytes(7, 700<<10)}, {"b", []byte("b")}}
	info, err := a.WriteArchive(ctx, header("01JPLAIN"), emitAll(docs))
	if err != nil {
		t.Fatal(err)
	}
	obs, err := js.ObjectStore(ctx, objectstore.DefaultBucket)
	if err != nil {
		t.Fatal(err)
	}
	b, err := obs.GetBytes(ctx, "01JPLAIN") // fails on a digest mismatch
	if err != nil {
		t.Fatalf("GetBytes: %v", err)
	}
	if int64(len(b)) != info.SizeBytes || sha(b) != info.SHA256 {
		t.Fatalf("nats.go read %d bytes sha %s, want %d %s", len(b), sha(b), info.SizeBytes, info.SHA256)
	}
	oi, err := obs.GetInfo(ctx, "01JPLAIN")
	if err != nil {
		t.Fatal(err)
	}
	if oi.Metadata["app"] != "crm" || oi.Headers.Get("Content-Type") != "application/zip" || oi.Opts == nil || oi.Opts.ChunkSize != 128<<10 {
		t.Fatalf("object info = %+v", oi)
	}
	if want := uint32((info.SizeBytes + 128<<10 - 1) / (128 << 10)); oi.Chunks != want {
		t.Fatalf("%d chunks, want %d", oi.Chunks, want)
	}
	// And nats.go's delete removes it for us too.
	if err := obs.Delete(ctx, "01JPLAIN"); err != nil {
		t.Fatal(err)
	}
	_, err = a.Stat(ctx, "01JPLAIN")
	wantCode(t, err, domain.CodeNotFound)
}

// With fsync on every write and a small intake queue on the stream, a put
// that does not wait for acknowledgements is refused with 429 (DESIGN §10);
// WriteArchive paces its chunks and gets through.
func TestWriteArchivePacesTheServer(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 32 MiB with fsync")
	}
	s, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true,
		SyncAlways: true, StreamMaxBufferedSize: 8 << 20,
	})
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	t.Cleanup(s.Shutdown)
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("server not ready")
	}
	nc, err := nats.Connect(s.ClientURL(), nats.InProcessServer(s))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	a, err := objectstore.New(context.Background(), js, objectstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	const items, itemSize = 8, 4 << 20
	info, err := a.WriteArchive(context.Background(), header("01JPACED"), func(emit func(domain.Item) error) error {
		for i := range items {
			body := io.LimitReader(rand.NewChaCha8([32]byte{byte(i)}), itemSize)
			if err := emit(domain.Item{Path: fmt.Sprint(i), Size: itemSize, Body: body}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("WriteArchive: %v", err)
	}
	if info.SizeBytes < items*itemSize {
		t.Fatalf("archive of %d bytes", info.SizeBytes)
	}
}
