package objectstore_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/backupledger/backupledger/adapters/objectstore"
)

func BenchmarkTmpPut(b *testing.B) {
	app := benchAppOnce()
	ctx := context.Background()
	js := benchServer(b, false)
	a, err := objectstore.New(ctx, js, objectstore.Config{TempDir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	obs, _ := js.ObjectStore(ctx, objectstore.DefaultBucket)
	i := 0
	b.Run("natsgo", func(b *testing.B) {
		for b.Loop() {
			i++
			_, err := obs.Put(ctx, jetstream.ObjectMeta{Name: fmt.Sprint("n", i), Opts: &jetstream.ObjectMetaOptions{ChunkSize: 128 << 10}}, app.reader())
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(app.total)
			obs.Delete(ctx, fmt.Sprint("n", i))
		}
	})
	b.Run("paced", func(b *testing.B) {
		for b.Loop() {
			i++
			_, err := a.PutRaw(ctx, fmt.Sprint("p", i), app.reader())
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(app.total)
			obs.Delete(ctx, fmt.Sprint("p", i))
		}
	})
}
