package objectstore_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/backupledger/backupledger/adapters/objectstore"
	"github.com/backupledger/backupledger/domain"
)

// benchApp is a 1 GiB app: half JSON-like documents of 1 to 128 KiB in
// "config", half random files of 1 to 8 MiB in "files", interleaved. The
// bodies are slices of two pools made once, so generating them costs a
// copy.
type benchApp struct {
	jsonPool, randPool []byte
	items              []benchItem
	total              int64
}

type benchItem struct {
	component, path string
	data            []byte
}

var benchAppOnce = sync.OnceValue(func() *benchApp {
	r := rand.New(rand.NewPCG(1, 2))
	app := &benchApp{jsonPool: jsonLike(r, 16<<20), randPool: make([]byte, 64<<20)}
	cr := rand.NewChaCha8([32]byte{42})
	_, _ = cr.Read(app.randPool)
	const half = 512 << 20
	var jsonBytes, randBytes int64
	for jsonBytes < half || randBytes < half {
		if jsonBytes <= randBytes && jsonBytes < half || randBytes >= half {
			n := min(int64(1<<10+r.IntN(127<<10)), half-jsonBytes)
			off := r.IntN(len(app.jsonPool) - int(n))
			app.items = append(app.items, benchItem{"config", fmt.Sprintf("docs/%06d.json", len(app.items)), app.jsonPool[off : off+int(n)]})
			jsonBytes += n
		} else {
			n := min(int64(1<<20+r.IntN(7<<20)), half-randBytes)
			off := r.IntN(len(app.randPool) - int(n))
			app.items = append(app.items, benchItem{"files", fmt.Sprintf("blobs/%06d.bin", len(app.items)), app.randPool[off : off+int(n)]})
			randBytes += n
		}
	}
	app.total = jsonBytes + randBytes
	return app
})

// jsonLike returns n bytes of JSON records with varied values.
func jsonLike(r *rand.Rand, n int) []byte {
	cities := []string{"Paris", "Berlin", "Lisbon", "Oslo", "Rome", "Vienna", "Madrid", "Dublin"}
	tags := []string{"alpha", "beta", "gamma", "delta", "admin", "guest", "beta-tester", "premium"}
	var b bytes.Buffer
	for b.Len() < n {
		id := r.IntN(10_000_000)
		fmt.Fprintf(&b, `{"id":%d,"name":"user-%d","email":"u%d@example.com","active":%t,"score":%.4f,"tags":["%s","%s"],"address":{"city":"%s","zip":"%05d"},"updated":"2026-%02d-%02dT%02d:%02d:%02dZ"},`+"\n",
			id, id, id, r.IntN(2) == 0, r.Float64(), tags[r.IntN(len(tags))], tags[r.IntN(len(tags))], cities[r.IntN(len(cities))], r.IntN(100000),
			1+r.IntN(12), 1+r.IntN(28), r.IntN(24), r.IntN(60), r.IntN(60))
	}
	return b.Bytes()[:n]
}

func (app *benchApp) export(emit func(domain.Item) error) error {
	for _, it := range app.items {
		if err := emit(domain.Item{Component: it.component, Path: it.path, Size: int64(len(it.data)), Body: bytes.NewReader(it.data)}); err != nil {
			return err
		}
	}
	return nil
}

func (app *benchApp) reader() io.Reader {
	rs := make([]io.Reader, len(app.items))
	for i, it := range app.items {
		rs[i] = bytes.NewReader(it.data)
	}
	return io.MultiReader(rs...)
}

func benchServer(b *testing.B, syncAlways bool) jetstream.JetStream {
	s, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: b.TempDir(), NoLog: true, NoSigs: true, SyncAlways: syncAlways,
	})
	if err != nil {
		b.Fatal(err)
	}
	s.Start()
	b.Cleanup(s.Shutdown)
	if !s.ReadyForConnections(10 * time.Second) {
		b.Fatal("server not ready")
	}
	nc, err := nats.Connect(s.ClientURL(), nats.InProcessServer(s))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		b.Fatal(err)
	}
	return js
}

// peakRSS flushes the file systems' dirty pages, so that a phase does not
// pay for the writes of the one before, resets the process's peak resident
// set size, and returns a function that reads it (Linux; 0 elsewhere).
func peakRSS() func() float64 {
	syscall.Sync()
	_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
	return func() float64 {
		raw, err := os.ReadFile("/proc/self/status")
		if err != nil {
			return 0
		}
		for _, line := range strings.Split(string(raw), "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmHWM:" {
				kb, _ := strconv.ParseFloat(f[1], 64)
				return kb / 1024
			}
		}
		return 0
	}
}

func mibps(n int64, d time.Duration) float64 { return float64(n) / (1 << 20) / d.Seconds() }

// BenchmarkArchives1GiB measures, in the same run, a raw object store put
// and get of a 1 GiB app's bytes against creating a backup of it
// (WriteArchive), downloading it (OpenArchive) and uploading it
// (ImportArchive, against a raw put of the archive's bytes), with the
// embedded server's default sync interval and with fsync on every write.
// Run with -benchtime=1x.
func BenchmarkArchives1GiB(b *testing.B) {
	app := benchAppOnce()
	for _, mode := range []struct {
		name   string
		always bool
	}{{"sync=interval", false}, {"sync=always", true}} {
		b.Run(mode.name, func(b *testing.B) {
			ctx := context.Background()
			js := benchServer(b, mode.always)
			tmp := b.TempDir()
			a, err := objectstore.New(ctx, js, objectstore.Config{TempDir: tmp})
			if err != nil {
				b.Fatal(err)
			}
			for i := 0; b.Loop(); i++ {
				id := func(s string) string { return fmt.Sprintf("%s%d", s, i) }
				report := func(name string, n int64, d time.Duration, rss float64) float64 {
					v := mibps(n, d)
					b.ReportMetric(v, name+"_MiB/s")
					if rss > 0 {
						b.ReportMetric(rss, name+"_peakRSS_MiB")
					}
					return v
				}

				rss := peakRSS()
				t0 := time.Now()
				if _, err := a.PutRaw(ctx, id("raw"), app.reader()); err != nil {
					b.Fatalf("raw put: %v", err)
				}
				rawPut := report("raw_put", app.total, time.Since(t0), rss())

				rss = peakRSS()
				t0 = time.Now()
				info, err := a.WriteArchive(ctx, domain.ArchiveHeader{App: "bench", BackupID: id("backup"), Name: "bench", CreatedAt: time.Now(),
					Origin: domain.OriginManual, SchemaVersion: 1, SourceKind: "dir", Components: []string{"config", "files"}}, app.export)
				if err != nil {
					b.Fatalf("write archive: %v", err)
				}
				create := report("create", app.total, time.Since(t0), rss())
				b.ReportMetric(create/rawPut, "create/raw_put")
				b.ReportMetric(float64(info.SizeBytes)/(1<<20), "archive_MiB")

				obs, err := js.ObjectStore(ctx, objectstore.DefaultBucket)
				if err != nil {
					b.Fatal(err)
				}
				rss = peakRSS()
				t0 = time.Now()
				res, err := obs.Get(ctx, id("raw"))
				if err != nil {
					b.Fatal(err)
				}
				n, err := io.Copy(io.Discard, res)
				res.Close()
				if err != nil || n != app.total {
					b.Fatalf("raw get: %d bytes, %v", n, err)
				}
				rawGet := report("raw_get", n, time.Since(t0), rss())
				// Every phase runs against a store holding the same: a
				// store that grows makes later phases slower.
				if err := a.DeleteArchive(ctx, id("raw")); err != nil {
					b.Fatal(err)
				}

				rss = peakRSS()
				t0 = time.Now()
				s, err := a.OpenArchive(ctx, id("backup"), info.SizeBytes, info.SHA256, "")
				if err != nil {
					b.Fatal(err)
				}
				n, err = io.Copy(io.Discard, s)
				s.Close()
				if err != nil || n != info.SizeBytes {
					b.Fatalf("download: %d bytes, %v", n, err)
				}
				download := report("download", n, time.Since(t0), rss())
				b.ReportMetric(download/rawGet, "download/raw_get")

				// The archive as a client saved it, for the upload.
				path := filepath.Join(tmp, "archive.zip")
				res, err = obs.Get(ctx, id("backup"))
				if err != nil {
					b.Fatal(err)
				}
				f, err := os.Create(path)
				if err != nil {
					b.Fatal(err)
				}
				_, err = io.Copy(f, res)
				res.Close()
				f.Close()
				if err != nil {
					b.Fatal(err)
				}
				if err := a.DeleteArchive(ctx, id("backup")); err != nil {
					b.Fatal(err)
				}

				f, err = os.Open(path)
				if err != nil {
					b.Fatal(err)
				}
				rss = peakRSS()
				t0 = time.Now()
				if _, err := a.PutRaw(ctx, id("rawzip"), f); err != nil {
					b.Fatal(err)
				}
				rawZipPut := report("raw_put_archive", info.SizeBytes, time.Since(t0), rss())
				f.Close()
				if err := a.DeleteArchive(ctx, id("rawzip")); err != nil {
					b.Fatal(err)
				}

				f, err = os.Open(path)
				if err != nil {
					b.Fatal(err)
				}
				rss = peakRSS()
				t0 = time.Now()
				imp, err := a.ImportArchive(ctx, "bench", id("upload"), f)
				f.Close()
				if err != nil {
					b.Fatalf("upload: %v", err)
				}
				upload := report("upload", imp.SizeBytes, time.Since(t0), rss())
				b.ReportMetric(upload/rawZipPut, "upload/raw_put_archive")

				for _, name := range []string{"raw", "backup", "rawzip", "upload"} {
					_ = a.DeleteArchive(ctx, id(name))
				}
				os.Remove(path)
			}
		})
	}
}
