package test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	njs "github.com/nats-io/nats.go/jetstream"

	"github.com/backupledger/backupledger/cmd/backupd/daemon"
	"github.com/backupledger/backupledger/domain"
	"github.com/backupledger/backupledger/projections"
	"github.com/backupledger/backupledger/service"
	"github.com/backupledger/backupledger/test/natstest"
)

const token = "e2e-admin-token"

// metricsToken is the scrape token of test nodes' metrics listener.
const metricsToken = "e2e-metrics-token"

// node is one backupd started in-process on random ports.
type node struct {
	t    testing.TB
	d    *daemon.Daemon
	base string
	nc   *nats.Conn
	js   njs.JetStream
	// producer is a client logged in as the producer role, made by the
	// first NATS API request (see producerConn).
	producer *roleConn
}

// startNode starts backupd on dir with test-friendly settings; tune, if not
// nil, changes the config, and wrap, if not nil, wraps the workers' source.
func startNode(t testing.TB, dir string, tune func(*daemon.Config), wrap func(service.Source) service.Source) *node {
	t.Helper()
	return startNodeWith(t, dir, tune, func(h *daemon.TestHooks) { h.SourceWrapper = wrap })
}

// nodeConfig is the configuration of a test node on dir, after tune (if
// not nil) changed it.
func nodeConfig(dir string, tune func(*daemon.Config)) daemon.Config {
	cfg := daemon.DefaultConfig()
	cfg.DataDir = dir
	cfg.HTTP.Addr = "127.0.0.1:0"
	cfg.NATS.Listen = "127.0.0.1:0"
	cfg.Metrics.Addr = "127.0.0.1:0"
	cfg.Metrics.Token = metricsToken
	cfg.AdminToken = token
	cfg.NATS.Sync = daemon.SyncInterval
	cfg.Jobs.AckWait = 2 * time.Second
	cfg.Jobs.MaxDeliver = 3
	cfg.ShutdownTimeout = 10 * time.Second
	if tune != nil {
		tune(&cfg)
	}
	return cfg
}

// startNodeWith is startNode with the config's test hooks set by hook.
func startNodeWith(t testing.TB, dir string, tune func(*daemon.Config), hook func(*daemon.TestHooks)) *node {
	t.Helper()
	cfg := nodeConfig(dir, tune)
	if hook != nil {
		hook(&cfg.Hooks)
	}
	d, err := daemon.New(cfg)
	if err != nil {
		t.Fatalf("new daemon: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := d.Start(ctx); err != nil {
		t.Fatalf("start daemon: %v", err)
	}
	t.Cleanup(func() { d.Kill() })
	if err := d.WaitReady(ctx); err != nil {
		t.Fatalf("daemon not ready: %v", err)
	}
	// The test's own client has the daemon's rights: the backupd login of
	// the embedded server, or the external cluster's credentials.
	opts, err := d.NATSConnectOptions()
	if err != nil {
		t.Fatalf("nats login: %v", err)
	}
	nc, err := nats.Connect(d.NATSURL(), opts...)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(nc.Close)
	js, err := njs.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return &node{t: t, d: d, base: "http://" + d.HTTPAddr(), nc: nc, js: js}
}

// stop closes the node's client connection and stops the daemon gracefully.
func (n *node) stop() {
	n.t.Helper()
	n.closeClients()
	if err := n.d.Close(); err != nil {
		n.t.Fatalf("close daemon: %v", err)
	}
}

// kill closes the client connection and stops the daemon as a crash would.
func (n *node) kill() {
	n.closeClients()
	n.d.Kill()
}

// closeClients closes the node's client connections.
func (n *node) closeClients() {
	n.nc.Close()
	if n.producer != nil {
		n.producer.nc.Close()
	}
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) json(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
}

// problem is an application/problem+json body.
type problem struct {
	Status            int    `json:"status"`
	Code              string `json:"code"`
	Detail            string `json:"detail"`
	RetryAfterSeconds int    `json:"retry_after_seconds"`
}

// do sends a request with the admin token (unless headers say otherwise).
func (n *node) do(method, path string, body any, headers ...string) response {
	n.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = bytes.NewBufferString(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		buf, err := json.Marshal(b)
		if err != nil {
			n.t.Fatal(err)
		}
		rd = bytes.NewReader(buf)
	}
	req, err := http.NewRequest(method, n.base+path, rd)
	if err != nil {
		n.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		if headers[i+1] == "" {
			req.Header.Del(headers[i])
		} else {
			req.Header.Set(headers[i], headers[i+1])
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		n.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		n.t.Fatal(err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

// must sends a request and fails the test unless it answers want.
func (n *node) must(want int, method, path string, body any, headers ...string) response {
	n.t.Helper()
	r := n.do(method, path, body, headers...)
	if r.status != want {
		n.t.Fatalf("%s %s: status %d, want %d: %s", method, path, r.status, want, r.body)
	}
	return r
}

// ensureApp makes app exist, as the server administrator: if it is not
// registered (and has no events from before registration), it registers
// it in the organisation "test", made if need be. No command creates an
// app; the helpers createBackup and putConfig call this first, so that a
// test need not. A test of registration itself uses n.do.
func (n *node) ensureApp(app string) {
	n.t.Helper()
	if r := n.do("GET", "/v1/apps/"+app+"/admins", nil); r.status == http.StatusOK {
		return
	}
	if r := n.do("POST", "/v1/orgs", map[string]string{"id": "test"}); r.status != http.StatusCreated && r.status != http.StatusConflict {
		n.t.Fatalf("create organisation test: status %d: %s", r.status, r.body)
	}
	n.must(http.StatusOK, "PUT", "/v1/apps/"+app, map[string]string{"org": "test"})
}

func (n *node) createBackup(app string, body any) projections.BackupView {
	n.t.Helper()
	n.ensureApp(app)
	var b projections.BackupView
	n.must(http.StatusAccepted, "POST", "/v1/apps/"+app+"/backups", body).json(n.t, &b)
	return b
}

func (n *node) backup(app, id string) projections.BackupView {
	n.t.Helper()
	var b projections.BackupView
	n.must(http.StatusOK, "GET", "/v1/apps/"+app+"/backups/"+id, nil).json(n.t, &b)
	return b
}

// waitStatus waits until the backup has one of the statuses and returns it.
func (n *node) waitStatus(app, id string, total time.Duration, want ...domain.Status) projections.BackupView {
	n.t.Helper()
	var b projections.BackupView
	natstest.CheckFor(n.t, total, 20*time.Millisecond, func() error {
		b = n.backup(app, id)
		for _, s := range want {
			if b.Status == string(s) {
				return nil
			}
		}
		return fmt.Errorf("backup %s is %s, want %v (error %v)", id, b.Status, want, b.Error)
	})
	return b
}

// lastSeq returns the LEDGER stream's last sequence.
// ledgerMsg reads the message at seq of the ledger's LEDGER.
func (n *node) ledgerMsg(seq uint64) (*njs.RawStreamMsg, error) {
	st, err := n.js.Stream(context.Background(), "LEDGER")
	if err != nil {
		return nil, err
	}
	return st.GetMsg(context.Background(), seq)
}

func (n *node) lastSeq() uint64 {
	n.t.Helper()
	s, err := n.js.Stream(context.Background(), "LEDGER")
	if err != nil {
		n.t.Fatal(err)
	}
	info, err := s.Info(context.Background())
	if err != nil {
		n.t.Fatal(err)
	}
	return info.State.LastSeq
}

// putConfig stores a document in the app's built-in configuration store.
func (n *node) putConfig(app, key, value string) {
	n.t.Helper()
	n.ensureApp(app)
	r := n.do("PUT", "/v1/apps/"+app+"/config/"+key, value, "Content-Type", "application/octet-stream")
	if r.status != http.StatusCreated && r.status != http.StatusOK {
		n.t.Fatalf("put config %s/%s: status %d: %s", app, key, r.status, r.body)
	}
}
