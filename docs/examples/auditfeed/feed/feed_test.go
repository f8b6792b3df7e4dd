package feed

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/backupledger/backupledger/test/natstest"
)

func TestValidate(t *testing.T) {
	if err := (Config{Out: "x"}).Validate(); err != nil {
		t.Errorf("defaults: %v", err)
	}
	err := Config{Durable: "backup-worker", Filter: "other.>", Batch: -1, MaxWait: time.Millisecond, AckWait: time.Millisecond}.Validate()
	for _, want := range []string{"out:", "backupd's own consumer", "filter", "batch", "max wait", "ack wait"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want it to mention %q", err, want)
		}
	}
	if err := (Config{Out: "x", Durable: "a.b"}).Validate(); err == nil {
		t.Error("a durable name with a dot is accepted")
	}
	if err := (Config{Out: "x", Durable: "notifier"}).Validate(); err == nil {
		t.Error("notifier is accepted")
	}
}

// ledger is a stream LEDGER on a plain NATS server, and the events
// published to it.
type ledger struct {
	t      *testing.T
	nc     *nats.Conn
	js     jetstream.JetStream
	bodies map[string][][]byte // by filter: "ledger.events.>" and each subject
	n      int
}

func newLedger(t *testing.T) *ledger {
	s := natstest.Server(t, "")
	nc, js := natstest.Connect(t, s)
	if _, err := js.CreateStream(context.Background(), jetstream.StreamConfig{
		Name: Stream, Subjects: []string{SubjectAll}, AllowDirect: true,
	}); err != nil {
		t.Fatal(err)
	}
	return &ledger{t: t, nc: nc, js: js, bodies: map[string][][]byte{}}
}

// publish appends an event of each app.
func (l *ledger) publish(apps ...string) {
	l.t.Helper()
	for _, app := range apps {
		l.n++
		body := fmt.Appendf(nil, `{"id":"%03d","app":%q}`, l.n, app)
		if _, err := l.js.Publish(context.Background(), subjectPrefix+app, body); err != nil {
			l.t.Fatal(err)
		}
		l.bodies[SubjectAll] = append(l.bodies[SubjectAll], body)
		l.bodies[subjectPrefix+app] = append(l.bodies[subjectPrefix+app], body)
	}
}

// want is the file of a feed of filter.
func (l *ledger) want(filter string) string {
	var b bytes.Buffer
	for _, body := range l.bodies[filter] {
		b.Write(body)
		b.WriteByte('\n')
	}
	return b.String()
}

// run runs the feed until the file is as want says, then stops it.
func (l *ledger) run(cfg Config) {
	l.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, l.nc, cfg) }()
	l.waitFile(cfg, done)
	cancel()
	if err := <-done; err != nil {
		l.t.Fatalf("run: %v", err)
	}
}

func (l *ledger) waitFile(cfg Config, done <-chan error) {
	l.t.Helper()
	natstest.CheckFor(l.t, 10*time.Second, 5*time.Millisecond, func() error {
		select {
		case err := <-done:
			l.t.Fatalf("run ended: %v", err)
		default:
		}
		b, _ := os.ReadFile(cfg.Out)
		if want := l.want(cmpOr(cfg.Filter, SubjectAll)); string(b) != want {
			return fmt.Errorf("file\n%s\nwant\n%s", b, want)
		}
		return nil
	})
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func (l *ledger) consumer(name string) jetstream.Consumer {
	l.t.Helper()
	c, err := l.js.Consumer(context.Background(), Stream, name)
	if err != nil {
		l.t.Fatal(err)
	}
	return c
}

// steal fetches n deliveries of the consumer and drops them, as a run
// that crashed before it acknowledged them would.
func (l *ledger) steal(name string, n int) [][]byte {
	l.t.Helper()
	batch, err := l.consumer(name).Fetch(n, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		l.t.Fatal(err)
	}
	var out [][]byte
	for m := range batch.Messages() {
		out = append(out, m.Data())
	}
	if len(out) != n {
		l.t.Fatalf("fetched %d of %d: %v", len(out), n, batch.Error())
	}
	return out
}

func TestFeedResumesAfterACrash(t *testing.T) {
	l := newLedger(t)
	cfg := Config{Out: filepath.Join(t.TempDir(), "events.jsonl"), Batch: 3, MaxWait: 100 * time.Millisecond, AckWait: time.Second}
	l.publish("a", "b", "a", "c", "a")
	l.run(cfg)
	l.publish("b", "a", "b")
	l.run(cfg) // a plain restart

	// A run crashed after fetching three events and writing two and a half.
	l.publish("a", "b", "c")
	got := l.steal(DefaultDurable, 3)
	f, err := os.OpenFile(cfg.Out, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(f, "%s\n%s\n%s", got[0], got[1], got[2][:5])
	f.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- Run(ctx, l.nc, cfg) }()
	l.waitFile(cfg, done)
	// Nothing else comes: the three are delivered again after AckWait,
	// skipped, and acknowledged.
	natstest.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		info, err := l.consumer(DefaultDurable).Info(context.Background())
		if err != nil {
			return err
		}
		if info.NumAckPending != 0 || info.NumPending != 0 || info.AckFloor.Stream != uint64(l.n) {
			return fmt.Errorf("consumer: %d pending, %d unacknowledged, acknowledged up to %d", info.NumPending, info.NumAckPending, info.AckFloor.Stream)
		}
		return nil
	})
	l.publish("c")
	l.waitFile(cfg, done)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	// A crash before anything was written: the unacknowledged events are
	// read from the stream at the start.
	l.publish("a", "a")
	l.steal(DefaultDurable, 2)
	l.run(cfg)
}

func TestFeedFillsADeliveryGoneAstray(t *testing.T) {
	l := newLedger(t)
	cfg := Config{Out: filepath.Join(t.TempDir(), "events.jsonl"), MaxWait: 100 * time.Millisecond, AckWait: time.Minute}.withDefaults()
	l.publish("a", "b")
	l.run(cfg)

	ctx := context.Background()
	st, err := l.js.Stream(ctx, Stream)
	if err != nil {
		t.Fatal(err)
	}
	cons := l.consumer(cfg.Durable)
	out, err := openOut(cfg.Out)
	if err != nil {
		t.Fatal(err)
	}
	defer out.close()
	f := &feeder{cfg: cfg, stream: st, cons: cons, out: out}
	if err := f.resume(ctx, cons.CachedInfo()); err != nil {
		t.Fatal(err)
	}
	// The next delivery goes to a fetch nobody reads any more.
	l.publish("a", "c", "b")
	l.steal(cfg.Durable, 1)
	if n, err := f.batch(ctx, false); err != nil || n != 2 {
		t.Fatalf("batch: %d deliveries, %v", n, err)
	}
	b, _ := os.ReadFile(cfg.Out)
	if want := l.want(SubjectAll); string(b) != want {
		t.Errorf("file\n%s\nwant\n%s", b, want)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.AckFloor.Stream != 5 {
		t.Errorf("acknowledged up to %d, want 5", info.AckFloor.Stream)
	}
}

func TestFeedOfOneApp(t *testing.T) {
	l := newLedger(t)
	cfg := Config{Out: filepath.Join(t.TempDir(), "a.jsonl"), Durable: "a-feed", Filter: "ledger.events.a", Batch: 2,
		MaxWait: 100 * time.Millisecond, AckWait: time.Second}
	l.publish("a", "b", "b", "a", "c", "a")
	l.run(cfg)
	l.publish("b", "a", "a", "c", "b", "a")
	l.steal("a-feed", 2)
	l.run(cfg)
}

func TestFeedFileAndConsumerMustMatch(t *testing.T) {
	l := newLedger(t)
	dir := t.TempDir()
	cfg := Config{Out: filepath.Join(dir, "events.jsonl"), MaxWait: 100 * time.Millisecond, AckWait: time.Second}
	l.publish("a", "b")
	l.run(cfg)

	// Another consumer's file, or an edited one.
	for name, content := range map[string]string{
		"new consumer, used file": "",
		"edited":                  `{"id":"999"}` + "\n",
	} {
		t.Run(name, func(t *testing.T) {
			c := cfg
			if content == "" {
				c.Durable = "other"
			} else {
				c.Out = filepath.Join(t.TempDir(), "edited.jsonl")
				b, _ := os.ReadFile(cfg.Out)
				if err := os.WriteFile(c.Out, append(b, content...), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			if err := Run(context.Background(), l.nc, c); !errors.Is(err, ErrMismatch) {
				t.Errorf("Run = %v, want ErrMismatch", err)
			}
		})
	}

	// A rotated file: the new one starts after the events of the old.
	if err := os.Rename(cfg.Out, filepath.Join(dir, "events.1.jsonl")); err != nil {
		t.Fatal(err)
	}
	l.bodies[SubjectAll] = nil
	l.publish("c")
	l.run(cfg)
}
