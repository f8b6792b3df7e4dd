package test

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	njs "github.com/nats-io/nats.go/jetstream"

	"github.com/backupledger/backupledger/adapters/jetstream"
	"github.com/backupledger/backupledger/domain"
	"github.com/backupledger/backupledger/projections"
	"github.com/backupledger/backupledger/service"
)

const benchApps = 64

// benchServer starts an embedded server with the given durability.
func benchServer(b *testing.B, syncAlways bool) (*server.Server, njs.JetStream) {
	b.Helper()
	s, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: b.TempDir(),
		NoLog: true, NoSigs: true, SyncAlways: syncAlways,
	})
	if err != nil {
		b.Fatal(err)
	}
	s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		b.Fatal("server not ready")
	}
	b.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	nc, err := nats.Connect(s.ClientURL(), nats.InProcessServer(s))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(nc.Close)
	js, err := njs.New(nc)
	if err != nil {
		b.Fatal(err)
	}
	if err := jetstream.Setup(context.Background(), js, jetstream.Config{}); err != nil {
		b.Fatal(err)
	}
	return s, js
}

// perApp splits b.N operations over benchApps goroutines, one per app, and
// runs op for each; it reports the rate in ops/s and returns it.
func perApp(b *testing.B, op func(app string, i int) error) float64 {
	b.Helper()
	var wg sync.WaitGroup
	var failed atomic.Value
	b.ResetTimer()
	start := time.Now()
	for a := 0; a < benchApps; a++ {
		n := b.N / benchApps
		if a < b.N%benchApps {
			n++
		}
		wg.Add(1)
		go func(app string, n int) {
			defer wg.Done()
			for i := 0; i < n; i++ {
				if err := op(app, i); err != nil {
					failed.Store(err)
					return
				}
			}
		}("app"+strconv.Itoa(a), n)
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if err, _ := failed.Load().(error); err != nil {
		b.Fatal(err)
	}
	rate := float64(b.N) / elapsed.Seconds()
	b.ReportMetric(rate, "events/s")
	return rate
}

// BenchmarkAppend compares commands appended through the domain and the
// event store (decide against the in-memory fold, append with the expected
// subject sequence, wait until the projection applied it) with raw
// JetStream publishes carrying the expected-sequence header, 64 apps in
// parallel, with both durability settings. The ledger case reports its
// ratio to the raw rate measured just before it in the same run.
func BenchmarkAppend(b *testing.B) {
	for _, mode := range []struct {
		name   string
		always bool
	}{{"sync=interval", false}, {"sync=always", true}} {
		var raw float64
		b.Run(mode.name+"/raw", func(b *testing.B) {
			_, js := benchServer(b, mode.always)
			body := make([]byte, 256)
			var mu sync.Mutex
			last := map[string]uint64{}
			raw = perApp(b, func(app string, _ int) error {
				mu.Lock()
				seq := last[app]
				mu.Unlock()
				m := nats.NewMsg(jetstream.Subject(app))
				m.Data = body
				m.Header.Set("Nats-Expected-Last-Subject-Sequence", strconv.FormatUint(seq, 10))
				ack, err := js.PublishMsg(context.Background(), m)
				if err != nil {
					return err
				}
				mu.Lock()
				last[app] = ack.Sequence
				mu.Unlock()
				return nil
			})
		})
		b.Run(mode.name+"/ledger", func(b *testing.B) {
			_, js := benchServer(b, mode.always)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			l, ids, _ := benchLedger(b, ctx, js, domain.DefaultRules())
			rate := perApp(b, func(app string, i int) error {
				a, _ := strconv.Atoi(app[3:])
				_, err := l.Execute(ctx, domain.RenameBackup{App: app, BackupID: ids[a], Name: fmt.Sprintf("name %d", i)}, domain.Meta{Actor: "bench"})
				return err
			})
			if raw > 0 {
				b.ReportMetric(rate/raw, "ratio_to_raw")
			}
		})
	}
}

type benchClock struct{}

func (benchClock) Now() time.Time { return time.Now() }

type benchIDs struct{ n atomic.Uint64 }

func (i *benchIDs) NewID(t time.Time) string {
	return fmt.Sprintf("%013d%013d", t.UnixMilli(), i.n.Add(1))
}

// benchLedger sets up on js what backupd runs for commands: the signing
// key (with its genesis), the projection (which trusts the event MAC, as
// backupd's does) fed by a follower until ctx ends, the event store that
// signs and the ledger; then it requests a backup of each of the
// benchApps apps. It returns the ledger, the backups' ids by app, and the
// event MAC keys (service.Signing.MACKeyOf).
func benchLedger(b *testing.B, ctx context.Context, js njs.JetStream, rules domain.Rules) (*service.Ledger, []string, func(string) []byte) {
	b.Helper()
	keys, err := jetstream.NewKeys(ctx, js, 1)
	if err != nil {
		b.Fatal(err)
	}
	keyEvents, err := jetstream.NewEventStore(ctx, js, nil)
	if err != nil {
		b.Fatal(err)
	}
	signing := service.NewSigning(service.SigningConfig{}, keys, keyEvents, keyEvents, benchClock{}, &benchIDs{}, nil)
	if _, err := signing.Setup(ctx, nil); err != nil {
		b.Fatal(err)
	}
	evMAC := signing.MACKeyOf
	proj := projections.New(rules, projections.Options{MACKey: evMAC, Genesis: signing.GenesisKey(), OnKeys: signing.Learn})
	f := jetstream.NewFollower(js, proj.Apply, nil)
	go f.Run(ctx)
	store, err := jetstream.NewEventStore(ctx, js, signing)
	if err != nil {
		b.Fatal(err)
	}
	l, err := service.NewLedger(service.LedgerConfig{Rules: rules}, store, proj, benchClock{}, &benchIDs{}, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	ids := make([]string, benchApps)
	for a := range ids {
		res, err := l.Execute(ctx, domain.RequestBackup{App: "app" + strconv.Itoa(a)}, domain.Meta{Actor: "bench"})
		if err != nil {
			b.Fatal(err)
		}
		ids[a] = res.BackupID
	}
	return l, ids, evMAC
}

// BenchmarkReplay measures a cold start's fold: a new projection follows a
// stream of benchReplayEvents signed events from the start (every message
// checked: signature, app, chain), compared with a bare ordered-consumer
// read of the same stream in the same run. b.N is the number of replays.
func BenchmarkReplay(b *testing.B) {
	const benchReplayEvents = 20000
	_, js := benchServer(b, false)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rules := domain.DefaultRules()
	rules.MinInterval = 0
	l, ids, evMAC := benchLedger(b, ctx, js, rules)
	var wg sync.WaitGroup
	for a := range benchApps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range benchReplayEvents / benchApps {
				if _, err := l.Execute(ctx, domain.RenameBackup{App: "app" + strconv.Itoa(a), BackupID: ids[a], Name: fmt.Sprintf("n%d", i)}, domain.Meta{Actor: "bench"}); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	st, err := js.Stream(ctx, jetstream.StreamName)
	if err != nil {
		b.Fatal(err)
	}
	last := st.CachedInfo().State.LastSeq
	// backupd's projection takes the event MAC for the signature; an
	// auditor (or a projection without the key) verifies every one.
	for _, mode := range []struct {
		name     string
		trustMAC bool
	}{{"trust_mac", true}, {"verify_signatures", false}} {
		b.Run(mode.name, func(b *testing.B) {
			var rawTook, foldTook time.Duration
			for range b.N {
				start := time.Now()
				cons, err := st.OrderedConsumer(ctx, njs.OrderedConsumerConfig{})
				if err != nil {
					b.Fatal(err)
				}
				it, err := cons.Messages(njs.PullMaxMessages(1000))
				if err != nil {
					b.Fatal(err)
				}
				for n := uint64(0); n < last; n++ {
					if _, err := it.Next(); err != nil {
						b.Fatal(err)
					}
				}
				it.Stop()
				rawTook += time.Since(start)

				start = time.Now()
				var popts projections.Options
				if mode.trustMAC {
					popts.MACKey = evMAC
				}
				p := projections.New(rules, popts)
				g := jetstream.NewFollower(js, p.Apply, nil)
				fctx, stop := context.WithCancel(ctx)
				go g.Run(fctx)
				if err := g.WaitCaughtUp(ctx); err != nil {
					b.Fatal(err)
				}
				foldTook += time.Since(start)
				stop()
				for reason, n := range p.Rejected() {
					if n != 0 {
						b.Fatalf("replay refused %d messages as %s", n, reason)
					}
				}
			}
			raw := float64(last) * float64(b.N) / rawTook.Seconds()
			fold := float64(last) * float64(b.N) / foldTook.Seconds()
			b.ReportMetric(fold, "events/s")
			b.ReportMetric(raw, "raw_events/s")
			b.ReportMetric(fold/raw, "ratio_to_raw")
		})
	}
}
