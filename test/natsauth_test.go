package test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	njs "github.com/nats-io/nats.go/jetstream"

	"github.com/backupledger/backupledger/cmd/backupd/daemon"
	"github.com/backupledger/backupledger/domain"
	"github.com/backupledger/backupledger/projections"
	"github.com/backupledger/backupledger/test/natstest"
)

// roleConn is a client logged in to a node's embedded server as one role,
// with the asynchronous errors the server sent it (permission violations).
type roleConn struct {
	t    testing.TB
	role string
	nc   *nats.Conn
	js   njs.JetStream
	errs chan error
}

// connectAs logs in to the node's embedded server over TCP with the role's
// credentials file; the connection closes with the test.
func (n *node) connectAs(role string) *roleConn {
	n.t.Helper()
	c, err := n.d.NATSCredentials(role)
	if err != nil {
		n.t.Fatalf("%s credentials: %v", role, err)
	}
	return connectRole(n.t, c)
}

// connectRole logs in with c; the connection closes with the test.
func connectRole(t testing.TB, c daemon.NATSCredentials) *roleConn {
	t.Helper()
	role := c.User
	rc := &roleConn{t: t, role: role, errs: make(chan error, 64)}
	nc, err := c.Connect(nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		select {
		case rc.errs <- err:
		default: // the test looks for one error among the first ones
		}
	}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	rc.nc = nc
	if rc.js, err = njs.New(nc); err != nil {
		t.Fatal(err)
	}
	return rc
}

// waitViolation waits until the server reports a permissions violation
// naming subject (publish or subscribe).
func (c *roleConn) waitViolation(subject string) {
	c.t.Helper()
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	var seen []string
	for {
		select {
		case err := <-c.errs:
			if errors.Is(err, nats.ErrPermissionViolation) && strings.Contains(err.Error(), `"`+subject+`"`) {
				return
			}
			seen = append(seen, err.Error())
		case <-deadline.C:
			c.t.Fatalf("%s: no permissions violation for %q after 10s (errors seen: %q)", c.role, subject, seen)
		}
	}
}

// refused runs call, which must be stopped by a permissions violation on
// subject: it waits for the violation, then cancels call and checks that
// call failed.
func (c *roleConn) refused(subject string, call func(ctx context.Context) error) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- call(ctx) }()
	c.waitViolation(subject)
	cancel()
	if err := <-done; err == nil {
		c.t.Errorf("%s: the call on %s succeeded", c.role, subject)
	}
}

// publishRefused publishes to subject without JetStream and waits for the
// server to refuse it.
func (c *roleConn) publishRefused(subject string) {
	c.t.Helper()
	if err := c.nc.Publish(subject, []byte(`{"type":"backup.deleted"}`)); err != nil {
		c.t.Fatal(err)
	}
	c.waitViolation(subject)
}

// subscribeRefused subscribes to subject and waits for the server to
// refuse it.
func (c *roleConn) subscribeRefused(subject string) {
	c.t.Helper()
	sub, err := c.nc.SubscribeSync(subject)
	if err != nil {
		c.t.Fatal(err)
	}
	defer sub.Unsubscribe()
	c.waitViolation(subject)
}

// readyBackup stores a document, creates a backup of app over HTTP and
// waits for it to be ready.
func (n *node) readyBackup(app string) projections.BackupView {
	n.t.Helper()
	n.putConfig(app, "app.json", `{"name":"`+app+`"}`)
	b := n.createBackup(app, map[string]any{})
	return n.waitStatus(app, b.ID, 20*time.Second, domain.StatusReady)
}

func TestNATSLoginRequired(t *testing.T) {
	n := startNode(t, t.TempDir(), nil, nil)
	good, err := n.d.NATSCredentials(daemon.RoleProducer)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		opts []nats.Option
	}{
		{"no login", nil},
		{"wrong password", []nats.Option{nats.UserInfo(daemon.RoleProducer, "guess")}},
		{"another role's password", []nats.Option{nats.UserInfo(daemon.RoleBackupd, good.Password)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			nc, err := nats.Connect(n.d.NATSURL(), append(tc.opts, nats.MaxReconnects(0))...)
			if err == nil {
				nc.Close()
				t.Fatal("connected")
			}
			if !errors.Is(err, nats.ErrAuthorization) {
				t.Errorf("connect = %v, want %v", err, nats.ErrAuthorization)
			}
		})
	}
}

// waitMirror waits until the audit role's LEDGER, the mirror in its
// account, holds every message of the ledger up to seq.
func (c *roleConn) waitMirror(seq uint64) {
	c.t.Helper()
	natstest.CheckFor(c.t, 20*time.Second, 20*time.Millisecond, func() error {
		st, err := c.js.Stream(context.Background(), "LEDGER")
		if err != nil {
			return err
		}
		if last := st.CachedInfo().State.LastSeq; last < seq {
			return fmt.Errorf("the audit mirror is at %d, the ledger at %d", last, seq)
		}
		return nil
	})
}

func TestNATSAuditRole(t *testing.T) {
	n := startNode(t, t.TempDir(), nil, nil)
	b := n.readyBackup("crm")
	before := n.lastSeq()
	audit := n.connectAs(daemon.RoleAudit)
	audit.waitMirror(before)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	// Reading the ledger (its mirror in the audit account) through a
	// consumer of its own: ordered...
	st, err := audit.js.Stream(ctx, "LEDGER")
	if err != nil {
		t.Fatalf("audit: LEDGER stream: %v", err)
	}
	ordered, err := st.OrderedConsumer(ctx, njs.OrderedConsumerConfig{FilterSubjects: []string{"ledger.events.crm"}})
	if err != nil {
		t.Fatalf("audit: ordered consumer: %v", err)
	}
	var types []string
	for {
		m, err := ordered.Next(njs.FetchMaxWait(10 * time.Second))
		if err != nil {
			t.Fatalf("audit: next event: %v", err)
		}
		var ev struct {
			Type string `json:"type"`
			App  string `json:"app"`
		}
		if err := json.Unmarshal(m.Data(), &ev); err != nil {
			t.Fatalf("audit: event %s: %v", m.Data(), err)
		}
		if ev.App != "crm" {
			t.Errorf("event of app %q on ledger.events.crm", ev.App)
		}
		types = append(types, ev.Type)
		// The mirror keeps the ledger's sequences.
		if md, err := m.Metadata(); err != nil || md.NumPending == 0 {
			break
		}
	}
	if !slices.Contains(types, "backup.requested") || !slices.Contains(types, "backup.completed") {
		t.Errorf("audit read the events %v of backup %s, want backup.requested ... backup.completed", types, b.ID)
	}

	// ... and durable, with acknowledgements.
	durable, err := st.CreateOrUpdateConsumer(ctx, njs.ConsumerConfig{Durable: "audit-e2e", AckPolicy: njs.AckExplicitPolicy})
	if err != nil {
		t.Fatalf("audit: durable consumer: %v", err)
	}
	m, err := durable.Next(njs.FetchMaxWait(10 * time.Second))
	if err != nil {
		t.Fatalf("audit: fetch: %v", err)
	}
	if err := m.DoubleAck(ctx); err != nil {
		t.Fatalf("audit: ack: %v", err)
	}
	info, err := durable.Info(ctx)
	if err != nil {
		t.Fatalf("audit: consumer info: %v", err)
	}
	if info.AckFloor.Stream != 1 {
		t.Errorf("audit consumer ack floor %d, want 1", info.AckFloor.Stream)
	}
	if err := st.DeleteConsumer(ctx, "audit-e2e"); err != nil {
		t.Fatalf("audit: delete its consumer: %v", err)
	}
	raw, err := st.GetMsg(ctx, before)
	if err != nil {
		t.Fatalf("audit: get message %d: %v", before, err)
	}
	want, err := n.ledgerMsg(before)
	if err != nil {
		t.Fatal(err)
	}
	if raw.Subject != want.Subject || !bytes.Equal(raw.Data, want.Data) || !raw.Time.Equal(want.Time) {
		t.Errorf("audit: message %d of the mirror = %s %s %v, the ledger's = %s %s %v", before, raw.Subject, raw.Data, raw.Time, want.Subject, want.Data, want.Time)
	}

	// It writes nothing...
	audit.refused("ledger.events.crm", func(ctx context.Context) error {
		_, err := audit.js.Publish(ctx, "ledger.events.crm", []byte(`{"type":"backup.deleted"}`))
		return err
	})
	audit.publishRefused("ledger.events.x")
	// ... and the service's consumers are not in its account at all: the
	// workers' and the notifier's stay as they are.
	for _, name := range []string{"backup-worker", "notifier"} {
		if _, err := st.Consumer(ctx, name); !errors.Is(err, njs.ErrConsumerNotFound) {
			t.Errorf("audit: consumer %s of its LEDGER = %v, want not found", name, err)
		}
		if err := st.DeleteConsumer(ctx, name); !errors.Is(err, njs.ErrConsumerNotFound) {
			t.Errorf("audit: delete consumer %s = %v, want not found", name, err)
		}
		if _, err := n.js.Consumer(ctx, "LEDGER", name); err != nil {
			t.Errorf("the ledger's consumer %s: %v", name, err)
		}
	}
	audit.refused("$JS.API.STREAM.INFO.NOTIFY_LOG", func(ctx context.Context) error {
		_, err := audit.js.Stream(ctx, "NOTIFY_LOG")
		return err
	})
	// ... and reads neither archives, nor configuration, nor the API, nor
	// the replies to others.
	audit.refused("$JS.API.STREAM.INFO.OBJ_ledger_archives", func(ctx context.Context) error {
		_, err := audit.js.ObjectStore(ctx, "ledger_archives")
		return err
	})
	audit.refused("$JS.API.STREAM.INFO.KV_ledger_config", func(ctx context.Context) error {
		_, err := audit.js.KeyValue(ctx, "ledger_config")
		return err
	})
	audit.refused("$JS.API.STREAM.INFO.KV_ledger_secrets", func(ctx context.Context) error {
		_, err := audit.js.KeyValue(ctx, "ledger_secrets")
		return err
	})
	audit.publishRefused("ledger.api.backups.list")
	audit.subscribeRefused("_INBOX.>")
	audit.subscribeRefused("ledger.events.>")

	if after := n.lastSeq(); after != before {
		t.Errorf("LEDGER moved from %d to %d", before, after)
	}
}

func TestNATSProducerRole(t *testing.T) {
	n := startNode(t, t.TempDir(), nil, nil)
	b := n.readyBackup("crm")
	before := n.lastSeq()
	producer := n.connectAs(daemon.RoleProducer)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	// Requests to the API, with the bearer token.
	req := nats.NewMsg("ledger.api.backups.list")
	req.Header.Set("Authorization", "Bearer "+token)
	req.Data = []byte(`{"app":"crm"}`)
	resp, err := producer.nc.RequestMsg(req, 10*time.Second)
	if err != nil {
		t.Fatalf("producer: list: %v", err)
	}
	var list projections.BackupList
	if err := json.Unmarshal(resp.Data, &list); err != nil || len(list.Backups) != 1 || list.Backups[0].ID != b.ID {
		t.Fatalf("producer: list = %s (%v)", resp.Data, err)
	}

	// Objects of its own in the staging bucket: put, info, get, delete.
	staging, err := producer.js.ObjectStore(ctx, "ledger_staging")
	if err != nil {
		t.Fatalf("producer: staging bucket: %v", err)
	}
	content := bytes.Repeat([]byte("producer data "), 40000) // several chunks
	if _, err := staging.PutBytes(ctx, "producer/e2e.bin", content); err != nil {
		t.Fatalf("producer: put: %v", err)
	}
	if _, err := staging.PutBytes(ctx, "producer/e2e.bin", content[:100]); err != nil {
		t.Fatalf("producer: replace: %v", err)
	}
	if info, err := staging.GetInfo(ctx, "producer/e2e.bin"); err != nil || info.Size != 100 {
		t.Fatalf("producer: info = %+v, %v", info, err)
	}
	got, err := staging.GetBytes(ctx, "producer/e2e.bin")
	if err != nil || !bytes.Equal(got, content[:100]) {
		t.Fatalf("producer: get = %d bytes, %v", len(got), err)
	}
	if err := staging.Delete(ctx, "producer/e2e.bin"); err != nil {
		t.Fatalf("producer: delete: %v", err)
	}

	// A download staged by the service, read by the producer.
	req = nats.NewMsg("ledger.api.backups.download")
	req.Header.Set("Authorization", "Bearer "+token)
	req.Data, _ = json.Marshal(map[string]string{"app": "crm", "id": b.ID})
	if resp, err = producer.nc.RequestMsg(req, 30*time.Second); err != nil {
		t.Fatalf("producer: download: %v", err)
	}
	var staged struct {
		Object string `json:"object"`
	}
	if err := json.Unmarshal(resp.Data, &staged); err != nil || staged.Object == "" {
		t.Fatalf("producer: download = %s (%v)", resp.Data, err)
	}
	raw, err := staging.GetBytes(ctx, staged.Object)
	if err != nil {
		t.Fatalf("producer: get the staged download: %v", err)
	}
	if sum := sha256.Sum256(raw); hex.EncodeToString(sum[:]) != *b.SHA256 {
		t.Errorf("producer: staged download sha256 %x, ledger %s", sum, *b.SHA256)
	}

	// It cannot write events, neither directly...
	producer.refused("ledger.events.crm", func(ctx context.Context) error {
		_, err := producer.js.Publish(ctx, "ledger.events.crm", []byte(`{"type":"backup.deleted"}`))
		return err
	})
	producer.publishRefused("ledger.events.x")
	if after := n.lastSeq(); after != before {
		t.Errorf("LEDGER moved from %d to %d", before, after)
	}
	// ... nor read the ledger, the archives, the configuration, or the
	// replies and deliveries meant for others.
	producer.refused("$JS.API.STREAM.INFO.LEDGER", func(ctx context.Context) error {
		_, err := producer.js.Stream(ctx, "LEDGER")
		return err
	})
	producer.refused("$JS.API.STREAM.INFO.OBJ_ledger_archives", func(ctx context.Context) error {
		_, err := producer.js.ObjectStore(ctx, "ledger_archives")
		return err
	})
	producer.publishRefused("$JS.API.DIRECT.GET.OBJ_ledger_archives")
	producer.refused("$JS.API.STREAM.INFO.KV_ledger_config", func(ctx context.Context) error {
		_, err := producer.js.KeyValue(ctx, "ledger_config")
		return err
	})
	producer.refused("$JS.API.STREAM.INFO.KV_ledger_secrets", func(ctx context.Context) error {
		_, err := producer.js.KeyValue(ctx, "ledger_secrets")
		return err
	})
	producer.subscribeRefused("_INBOX.>")
	producer.subscribeRefused("ledger.api.>")
}

func TestNATSLoginsSurviveRestart(t *testing.T) {
	dir := t.TempDir()
	n := startNode(t, dir, nil, nil)
	files := map[string][]byte{}
	for _, role := range daemon.NATSRoles() {
		path := daemon.NATSCredentialsPath(dir, role)
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatalf("%s credentials: %v", role, err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, want -rw-------", path, fi.Mode())
		}
		if files[role], err = os.ReadFile(path); err != nil {
			t.Fatal(err)
		}
	}
	u, err := url.Parse(n.d.NATSURL())
	if err != nil {
		t.Fatal(err)
	}
	audit, err := n.d.NATSCredentials(daemon.RoleAudit)
	if err != nil {
		t.Fatal(err)
	}
	n.stop()

	// The same data dir on the same port: the same files, and the old
	// login still works.
	m := startNode(t, dir, func(c *daemon.Config) { c.NATS.Listen = net.JoinHostPort("127.0.0.1", u.Port()) }, nil)
	for _, role := range daemon.NATSRoles() {
		after, err := os.ReadFile(daemon.NATSCredentialsPath(dir, role))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(files[role], after) {
			t.Errorf("%s credentials changed across a restart:\n%s\n%s", role, files[role], after)
		}
	}
	nc, err := audit.Connect()
	if err != nil {
		t.Fatalf("the audit login of the first start: %v", err)
	}
	nc.Close()
	m.stop()
}
