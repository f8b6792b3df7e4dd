package objectstore_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/backupledger/backupledger/domain"
)

// heapPeak samples the live heap (after a collection) until stop is called,
// and returns the highest value seen.
func heapPeak() (stop func() uint64) {
	var (
		peak uint64
		wg   sync.WaitGroup
		quit = make(chan struct{})
	)
	sample := func() {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		peak = max(peak, ms.HeapAlloc)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for {
			sample()
			select {
			case <-quit:
				return
			case <-t.C:
			}
		}
	}()
	return func() uint64 {
		close(quit)
		wg.Wait()
		sample()
		return peak
	}
}

func liveHeap() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// A 128 MiB archive of incompressible items made on the fly is written
// without the archive, or any item, ever being in memory as a whole.
func TestWriteArchiveStreams(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 128 MiB")
	}
	a, _ := setup(t)
	const (
		items    = 32
		itemSize = 4 << 20
		total    = items * itemSize
	)
	export := func(emit func(domain.Item) error) error {
		for i := range items {
			body := io.LimitReader(rand.NewChaCha8([32]byte{byte(i)}), itemSize)
			if err := emit(domain.Item{Path: fmt.Sprintf("files/%02d.bin", i), Size: itemSize, Body: body}); err != nil {
				return err
			}
		}
		return nil
	}

	base := liveHeap()
	stop := heapPeak()
	info, err := a.WriteArchive(context.Background(), header("01JBIG"), export)
	peak := stop()
	if err != nil {
		t.Fatalf("WriteArchive: %v", err)
	}
	growth := int64(peak) - int64(base)
	t.Logf("archive %d MiB; live heap %d MiB before, peak growth %.1f MiB", info.SizeBytes>>20, base>>20, float64(growth)/(1<<20))
	if info.SizeBytes < total || info.ItemCount != items {
		t.Fatalf("ArchiveInfo = %+v, want ≥ %d bytes and %d items", info, total, items)
	}
	if limit := int64(total / 2); growth > limit {
		t.Fatalf("live heap grew by %d MiB while writing a %d MiB archive; limit %d MiB", growth>>20, total>>20, limit>>20)
	}

	// Read it back as a stream too.
	rc, _, err := a.Open(context.Background(), "01JBIG")
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	h := sha256.New()
	n, err := io.Copy(h, rc)
	if err != nil {
		t.Fatalf("read back: %v", err)
	}
	if n != info.SizeBytes || hex.EncodeToString(h.Sum(nil)) != info.SHA256 {
		t.Fatalf("read back %d bytes with sha256 %x, want %d and %s", n, h.Sum(nil), info.SizeBytes, info.SHA256)
	}
}
