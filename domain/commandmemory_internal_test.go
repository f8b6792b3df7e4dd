package domain

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"
)

// The memory remembers exactly the latest size distinct keys, each with
// the sequence of its first put, whole when among the latest
// wholeRecords puts: checked against a plain model over random keys that
// repeat, with sizes that make the table wrap, probe and move entries back.
func TestCommandMemoryAgainstAModel(t *testing.T) {
	for _, size := range []int{1, 2, 3, 7, 64, 65, 100, 1000} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(size), 7))
			m := newCommandMemory(size)
			var order []string           // remembered keys, oldest first
			first := map[string]uint64{} // remembered key → seq of its put
			puts := map[string]int{}     // remembered key → its put number
			n := 0
			for seq := uint64(1); seq <= uint64(20*size+300); seq++ {
				key := fmt.Sprintf("k%d", rng.IntN(3*size+10))
				m.put(key, CommandRecord{Seq: seq, Type: TypeBackupRenamed, BackupID: key})
				if _, ok := first[key]; !ok {
					if len(order) == size {
						delete(first, order[0])
						delete(puts, order[0])
						order = order[1:]
					}
					order = append(order, key)
					first[key], puts[key] = seq, n
					n++
				}
				if seq%17 != 0 {
					continue
				}
				for k := range 3*size + 10 {
					key := fmt.Sprintf("k%d", k)
					rec, ok := m.get(key)
					want, remembered := first[key]
					if ok != remembered {
						t.Fatalf("after seq %d: %s remembered = %v, want %v", seq, key, ok, remembered)
					}
					if !ok {
						continue
					}
					whole := n-puts[key] <= wholeRecords
					switch {
					case whole && rec != (CommandRecord{Seq: want, Type: TypeBackupRenamed, BackupID: key}):
						t.Fatalf("after seq %d: %s = %+v, want whole with seq %d", seq, key, rec, want)
					case !whole && rec != (CommandRecord{Seq: want, Recall: true}):
						t.Fatalf("after seq %d: %s = %+v, want seq %d to recall", seq, key, rec, want)
					}
				}
			}
			if got := len(m.ring); got != len(order) {
				t.Fatalf("ring holds %d, want %d", got, len(order))
			}
		})
	}
}

// BenchmarkCommandMemory reports the memory of an app's full command
// memory (Rules.CommandMemory 1,000) per command.
func BenchmarkCommandMemory(b *testing.B) {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	ms := make([]commandMemory, 100)
	for j := range ms {
		ms[j] = newCommandMemory(1000)
		for i := range 1200 {
			ms[j].put(fmt.Sprintf("alice\x00key-%d-%d", j, i), CommandRecord{Seq: uint64(i), Type: TypeBackupRenamed, BackupID: "01JABCDEFGHJKMNPQRSTVWXYZ0"})
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	m := ms[0]
	b.ResetTimer()
	for i := range b.N {
		m.get(fmt.Sprintf("alice\x00key-0-%d", i%1200))
	}
	b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/100/1000, "bytes/command")
	runtime.KeepAlive(ms)
}
