package test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	njs "github.com/nats-io/nats.go/jetstream"

	"github.com/backupledger/backupledger/cmd/backupd/daemon"
	"github.com/backupledger/backupledger/docs/examples/auditfeed/feed"
	"github.com/backupledger/backupledger/test/natstest"
)

// ledgerBodies returns the body of every message of LEDGER, in stream
// order, read with the node's own rights.
func (n *node) ledgerBodies() [][]byte {
	n.t.Helper()
	ctx := context.Background()
	st, err := n.js.Stream(ctx, "LEDGER")
	if err != nil {
		n.t.Fatal(err)
	}
	var out [][]byte
	for seq := uint64(1); seq <= st.CachedInfo().State.LastSeq; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if err != nil {
			n.t.Fatalf("get %d: %v", seq, err)
		}
		out = append(out, m.Data)
	}
	return out
}

// jsonLines joins bodies as JSON Lines: each followed by a newline.
func jsonLines(bodies [][]byte) []byte {
	var b bytes.Buffer
	for _, body := range bodies {
		b.Write(body)
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// auditLogin connects with the audit role's login file in dir (the node's
// data dir), as an external program would.
func auditLogin(t *testing.T, dir string) *nats.Conn {
	t.Helper()
	l, err := feed.ReadLogin(daemon.NATSCredentialsPath(dir, daemon.RoleAudit))
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(l.URL, l.Options()...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// runFeed runs the audit feed until the returned stop is called; stop
// waits for it to end and fails the test if it returned an error.
func runFeed(t *testing.T, nc *nats.Conn, cfg feed.Config) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- feed.Run(ctx, nc, cfg) }()
	stopped := false
	stop = func() {
		t.Helper()
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("feed: %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("the feed did not stop")
		}
	}
	t.Cleanup(stop)
	return stop
}

// waitFeedFile waits until the file at path holds exactly the events of the
// ledger, as JSON Lines.
func (n *node) waitFeedFile(path string) {
	n.t.Helper()
	natstest.CheckFor(n.t, 20*time.Second, 20*time.Millisecond, func() error {
		got, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if want := jsonLines(n.ledgerBodies()); !bytes.Equal(got, want) {
			gl, wl := bytes.Split(got, []byte("\n")), bytes.Split(want, []byte("\n"))
			for i := range min(len(gl), len(wl)) {
				if !bytes.Equal(gl[i], wl[i]) {
					return fmt.Errorf("the file holds %d lines, want %d; line %d is\n%s\nwant\n%s",
						len(gl)-1, len(wl)-1, i+1, gl[i], wl[i])
				}
			}
			return fmt.Errorf("the file holds %d lines, want %d", len(gl)-1, len(wl)-1)
		}
		return nil
	})
}

func TestAuditFeedResumes(t *testing.T) {
	dir := t.TempDir()
	n := startNode(t, dir, noMinInterval, nil)
	n.readyBackup("crm")
	n.readyBackup("hr")
	out := filepath.Join(t.TempDir(), "events.jsonl")
	// Small batches, so that one run writes several.
	cfg := feed.Config{Out: out, Batch: 4, MaxWait: 200 * time.Millisecond, AckWait: 2 * time.Second}

	stop := runFeed(t, auditLogin(t, dir), cfg)
	n.waitFeedFile(out)
	n.readyBackup("crm") // while it runs
	n.waitFeedFile(out)
	stop()

	// Events stored while the feed is stopped are copied by the next run,
	// after the ones it copied before, and nothing twice.
	n.readyBackup("sales")
	n.readyBackup("hr")
	stop = runFeed(t, auditLogin(t, dir), cfg)
	n.waitFeedFile(out)
	stop()

	// A run that crashed after it had fetched a backup's events and
	// written all but the last, in the middle of writing that one.
	n.readyBackup("crm")
	nc := auditLogin(t, dir)
	js, err := njs.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	cons, err := js.Consumer(ctx, "LEDGER", feed.DefaultDurable)
	if err != nil {
		t.Fatal(err)
	}
	// The mirror the audit login reads may trail LEDGER: wait until it
	// holds the backup's events.
	var pending int
	natstest.CheckFor(t, 20*time.Second, 20*time.Millisecond, func() error {
		info, err := cons.Info(ctx)
		if err != nil {
			return err
		}
		pending = int(info.NumPending)
		if want := n.lastSeq() - info.AckFloor.Stream; uint64(pending) != want || pending < 3 {
			return fmt.Errorf("%d events pending, want a backup's (%d)", pending, want)
		}
		return nil
	})
	batch, err := cons.Fetch(pending, njs.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	fetched := 0
	for range batch.Messages() {
		fetched++
	}
	if fetched != pending {
		t.Fatalf("fetched %d of %d events: %v", fetched, pending, batch.Error())
	}
	// The crashed run had written the events up to the acknowledged ones,
	// then those it fetched (and any delivered before them that it had not
	// acknowledged), in stream order.
	info, err := cons.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	bodies := n.ledgerBodies()
	unacked := bodies[info.AckFloor.Stream:info.Delivered.Stream]
	last := unacked[len(unacked)-1]
	crashed := append(jsonLines(bodies[:info.Delivered.Stream-1]), last[:len(last)/2]...)
	if err := os.WriteFile(out, crashed, 0o640); err != nil {
		t.Fatal(err)
	}
	// The next run cuts the incomplete line, writes that event at once,
	// and skips all of them when they are delivered again after AckWait.
	var logs lockedBuffer
	cfg.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	stop = runFeed(t, nc, cfg)
	n.waitFeedFile(out)
	natstest.CheckFor(t, 20*time.Second, 20*time.Millisecond, func() error {
		info, err := cons.Info(ctx)
		if err != nil {
			return err
		}
		if info.NumAckPending != 0 || info.NumPending != 0 || info.AckFloor.Stream != n.lastSeq() {
			return fmt.Errorf("consumer: %d pending, %d waiting for an ack, acknowledged up to %d; want all acknowledged up to %d",
				info.NumPending, info.NumAckPending, info.AckFloor.Stream, n.lastSeq())
		}
		return nil
	})
	stop()
	n.waitFeedFile(out)
	for _, want := range []string{
		fmt.Sprintf("truncated_bytes=%d", len(last)/2),
		fmt.Sprintf("unacked=%d unacked_written_now=1", len(unacked)),
	} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("the log lacks %s:\n%s", want, logs.String())
		}
	}
	skipped := 0
	for _, m := range regexp.MustCompile(`skipped=(\d+)`).FindAllStringSubmatch(logs.String(), -1) {
		k, _ := strconv.Atoi(m[1])
		skipped += k
	}
	if skipped != len(unacked) {
		t.Errorf("%d deliveries skipped, want %d:\n%s", skipped, len(unacked), logs.String())
	}
}
