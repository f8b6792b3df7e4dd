package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	njs "github.com/nats-io/nats.go/jetstream"

	ledgerjs "github.com/backupledger/backupledger/adapters/jetstream"
	"github.com/backupledger/backupledger/adapters/password"
	"github.com/backupledger/backupledger/cmd/backupd/daemon"
	"github.com/backupledger/backupledger/domain"
	"github.com/backupledger/backupledger/test/natstest"
)

// auditEnv is a backupd whose embedded NATS server listens on a port, so
// that it writes the audit role's login, with a client of its own rights.
type auditEnv struct {
	t     *testing.T
	dir   string // the directory that holds data/
	d     *daemon.Daemon
	login string // <dir>/data/nats/audit.json
	js    njs.JetStream
	nc    *nats.Conn
}

// startAuditBackupd starts backupd in-process on random ports, with its data
// in <t.TempDir()>/data and no minimum interval between backups.
func startAuditBackupd(t *testing.T) *auditEnv {
	t.Helper()
	dir := t.TempDir()
	cfg := daemon.DefaultConfig()
	cfg.DataDir = filepath.Join(dir, "data")
	cfg.HTTP.Addr = "127.0.0.1:0"
	cfg.NATS.Listen = "127.0.0.1:0"
	cfg.Metrics.Addr = daemon.ListenNone // no fixed port: scripts run in parallel
	cfg.AdminToken = testToken
	cfg.NATS.Sync = daemon.SyncInterval
	cfg.ShutdownTimeout = 10 * time.Second
	cfg.Identity.PasswordParams = password.TestParams()
	cfg.Rules.MinInterval = 0
	d, err := daemon.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := d.Start(ctx); err != nil {
		t.Fatalf("start backupd: %v", err)
	}
	t.Cleanup(func() {
		if err := d.Close(); err != nil {
			t.Errorf("close backupd: %v", err)
		}
	})
	if err := d.WaitReady(ctx); err != nil {
		t.Fatalf("backupd not ready: %v", err)
	}
	// The apps the tests use exist: registered, like every app.
	e := &auditEnv{t: t, dir: dir, d: d}
	e.must("org", "create", "test")
	for _, app := range []string{"crm", "hr"} {
		e.must("app", "register", app, "--org", "test")
	}
	opts, err := d.NATSConnectOptions()
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(d.NATSURL(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := njs.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	e.login, e.js, e.nc = daemon.NATSCredentialsPath(cfg.DataDir, daemon.RoleAudit), js, nc
	return e
}

// syncBuffer is a bytes.Buffer that a running command writes to while the
// test reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// ctl runs backupctl in-process with ctx against e's backupd (HTTP
// commands use its address and the admin token).
func (e *auditEnv) ctl(ctx context.Context, stdout *syncBuffer, args ...string) result {
	var errOut syncBuffer
	if stdout == nil {
		stdout = new(syncBuffer)
	}
	c := &cli{
		stdin: strings.NewReader(""), stdout: stdout, stderr: &errOut,
		env: func(k string) string {
			switch k {
			case envServer:
				return "http://" + e.d.HTTPAddr()
			case envToken:
				return testToken
			}
			return ""
		},
		isTerminal: func(any) bool { return false },
		pollEvery:  10 * time.Millisecond,
	}
	code := c.main(ctx, args)
	return result{code, stdout.String(), errOut.String()}
}

// must runs backupctl and fails the test unless it exits 0.
func (e *auditEnv) must(args ...string) result {
	e.t.Helper()
	r := e.ctl(context.Background(), nil, args...)
	if r.code != 0 {
		e.t.Fatalf("backupctl %s: exit %d\n%s%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r
}

// storedMsg is one message of LEDGER as the server holds it.
type storedMsg struct {
	seq     uint64
	subject string
	time    time.Time
	data    []byte
}

// ledger reads every message of LEDGER with backupd's rights.
func ledger(t *testing.T, js njs.JetStream) []storedMsg {
	t.Helper()
	ctx := context.Background()
	st, err := js.Stream(ctx, ledgerjs.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	var out []storedMsg
	for seq := uint64(1); seq <= st.CachedInfo().State.LastSeq; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if err != nil {
			t.Fatalf("get %d: %v", seq, err)
		}
		out = append(out, storedMsg{seq: m.Sequence, subject: m.Subject, time: m.Time, data: m.Data})
	}
	return out
}

// lines is the JSON Lines output of audit tail for msgs.
func lines(msgs []storedMsg) string {
	var b strings.Builder
	for _, m := range msgs {
		b.Write(m.data)
		b.WriteByte('\n')
	}
	return b.String()
}

func only(msgs []storedMsg, keep func(storedMsg) bool) []storedMsg {
	var out []storedMsg
	for _, m := range msgs {
		if keep(m) {
			out = append(out, m)
		}
	}
	return out
}

// makeEvents makes events of crm, hr and the identity stream through the
// HTTP API.
func (e *auditEnv) makeEvents() {
	e.t.Helper()
	e.must("config", "put", "crm", "app.json", `{"name":"crm"}`)
	e.must("backup", "create", "crm", "--wait", "--name", "first")
	e.must("backup", "create", "hr", "--wait")
	e.must("maintenance", "start", "crm", "--reason", "audit test")
	e.must("org", "create", "acme", "--name", "Acme")
	e.must("maintenance", "end", "crm")
	e.waitMirror()
}

// ephemeral returns the names of the consumers of the audit role's
// LEDGER (the mirror in the AUDIT_MIRROR account) that are not durable:
// ordered consumers. It asks the embedded server, since no login may list
// them.
func ephemeral(t *testing.T, e *auditEnv) map[string]bool {
	t.Helper()
	jsz, err := e.d.Server().Jsz(&server.JSzOptions{Account: daemon.AccountAuditMirror, Accounts: true, Streams: true, Consumer: true})
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, acc := range jsz.AccountDetails {
		for _, st := range acc.Streams {
			for _, c := range st.Consumer {
				if st.Name == ledgerjs.StreamName && c.Config.Durable == "" {
					names[c.Name] = true
				}
			}
		}
	}
	return names
}

// waitMirror waits until the audit role's LEDGER, the mirror, holds every
// message of the ledger.
func (e *auditEnv) waitMirror() {
	e.t.Helper()
	mirror, err := njs.NewWithAPIPrefix(e.nc, daemon.DefaultAuditAPI)
	if err != nil {
		e.t.Fatal(err)
	}
	natstest.CheckFor(e.t, 20*time.Second, 10*time.Millisecond, func() error {
		ctx := context.Background()
		st, err := e.js.Stream(ctx, ledgerjs.StreamName)
		if err != nil {
			return err
		}
		m, err := mirror.Stream(ctx, ledgerjs.StreamName)
		if err != nil {
			return err
		}
		if got, want := m.CachedInfo().State.LastSeq, st.CachedInfo().State.LastSeq; got != want {
			return fmt.Errorf("the audit mirror is at %d, the ledger at %d", got, want)
		}
		return nil
	})
}

func TestAuditTail(t *testing.T) {
	e := startAuditBackupd(t)
	e.makeEvents()
	before := ephemeral(t, e)
	all := ledger(t, e.js)
	if len(all) < 8 {
		t.Fatalf("the ledger holds %d events, want at least 8", len(all))
	}
	for _, tc := range []struct {
		name string
		args []string
		want []storedMsg
	}{
		{"all", nil, all},
		{"app", []string{"--app", "crm"}, only(all, func(m storedMsg) bool { return m.subject == "ledger.events.crm" })},
		{"identity", []string{"--app", "_identity"}, only(all, func(m storedMsg) bool { return m.subject == "ledger.events._identity" })},
		{"app without events", []string{"--app", "nobody"}, nil},
		{"since seq", []string{"--since", strconv.FormatUint(all[3].seq, 10)}, all[3:]},
		{"since seq with app", []string{"--since", strconv.FormatUint(all[3].seq, 10), "--app", "crm"},
			only(all[3:], func(m storedMsg) bool { return m.subject == "ledger.events.crm" })},
		{"since the last seq", []string{"--since", strconv.FormatUint(all[len(all)-1].seq, 10)}, all[len(all)-1:]},
		{"since after the end", []string{"--since", strconv.FormatUint(all[len(all)-1].seq+1, 10)}, nil},
		{"since time", []string{"--since", all[4].time.Format(time.RFC3339Nano)},
			only(all, func(m storedMsg) bool { return !m.time.Before(all[4].time) })},
		{"since a time in the future", []string{"--since", time.Now().Add(time.Hour).UTC().Format(time.RFC3339)}, nil},
		{"nats url without the login in it", []string{"--nats-url", e.d.NATSURL()}, all},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.ctl(context.Background(), nil, append([]string{"audit", "tail", "--nats-login", e.login}, tc.args...)...)
			if r.code != 0 {
				t.Fatalf("exit %d: %s", r.code, r.stderr)
			}
			if got, want := r.stdout, lines(tc.want); got != want {
				t.Errorf("got\n%s\nwant\n%s", got, want)
			}
		})
	}

	t.Run("default login beside data", func(t *testing.T) {
		t.Chdir(e.dir)
		r := e.ctl(context.Background(), nil, "audit", "tail", "--app", "hr")
		if want := lines(only(all, func(m storedMsg) bool { return m.subject == "ledger.events.hr" })); r.code != 0 || r.stdout != want {
			t.Errorf("exit %d, got\n%s\nwant\n%s\n%s", r.code, r.stdout, want, r.stderr)
		}
	})

	t.Run("follow", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		var out syncBuffer
		done := make(chan result, 1)
		go func() { done <- e.ctl(ctx, &out, "audit", "tail", "--nats-login", e.login, "--follow") }()
		natstest.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
			if got := out.String(); got != lines(all) {
				return fmt.Errorf("printed %d bytes of %d", len(got), len(lines(all)))
			}
			return nil
		})
		e.must("maintenance", "start", "hr", "--reason", "followed")
		now := ledger(t, e.js)
		if len(now) <= len(all) {
			t.Fatal("no new event")
		}
		natstest.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
			if got := out.String(); got != lines(now) {
				return fmt.Errorf("printed\n%s\nwant\n%s", got, lines(now))
			}
			return nil
		})
		cancel()
		select {
		case r := <-done:
			if r.code != 0 || r.stderr != "" {
				t.Errorf("interrupted --follow: exit %d, stderr %q", r.code, r.stderr)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("--follow did not stop when interrupted")
		}
	})

	t.Run("no consumer left behind", func(t *testing.T) {
		natstest.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
			for name := range ephemeral(t, e) {
				if !before[name] {
					return fmt.Errorf("consumer %s is still there", name)
				}
			}
			return nil
		})
	})
}

func TestAuditTailRefused(t *testing.T) {
	e := startAuditBackupd(t)
	b, err := os.ReadFile(e.login)
	if err != nil {
		t.Fatal(err)
	}
	var l natsLogin
	if err := json.Unmarshal(b, &l); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	write := func(name string, l natsLogin) string {
		b, err := json.Marshal(l)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	wrong := l
	wrong.Password, wrong.URL = "not-"+l.Password, e.d.NATSURL()
	producer, err := e.d.NATSCredentials(daemon.RoleProducer)
	if err != nil {
		t.Fatal(err)
	}
	notJSON := filepath.Join(dir, "token")
	if err := os.WriteFile(notJSON, []byte("a token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		args  []string
		code  int
		error string
	}{
		{"wrong password", []string{"--nats-login", write("wrong.json", wrong)}, 1, "Authorization Violation"},
		{"producer role", []string{"--nats-login", write("producer.json", natsLogin(producer)), "--timeout", "1s"}, 1,
			`audit role's?) (the NATS server said: nats: permissions violation: Permissions Violation for Publish to "$JS.API.STREAM.INFO.LEDGER"`},
		{"no login file", []string{"--nats-login", filepath.Join(dir, "none.json")}, 2, "none.json does not exist"},
		{"no url", []string{"--nats-login", write("nourl.json", natsLogin{User: "audit", Password: "x"})}, 2, "has no url; pass --nats-url"},
		{"login not json", []string{"--nats-login", notJSON}, 2, "is not a login file"},
		{"since bogus", []string{"--since", "yesterday"}, 2, `--since "yesterday" is neither`},
		{"since zero", []string{"--since", "0"}, 2, "stream sequences start at 1"},
		{"bad app", []string{"--app", "CRM!"}, 2, `--app "CRM!"`},
		{"extra argument", []string{"crm"}, 2, "too many arguments: crm"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.ctl(context.Background(), nil, append([]string{"audit", "tail"}, tc.args...)...)
			if r.code != tc.code || !strings.Contains(r.stderr, tc.error) {
				t.Errorf("exit %d, stderr %q; want exit %d with %q", r.code, r.stderr, tc.code, tc.error)
			}
			if strings.Contains(r.stderr, l.Password) || strings.Contains(r.stderr, producer.Password) {
				t.Errorf("a password shows in %q", r.stderr)
			}
		})
	}
}

// TestAuditVerifyDetectsForgery forges an event with backupd's own NATS
// rights, through a real backupd.
//
// It needs the backupd that signs the ledger (a key.created at its first
// start, every event signed): against a backupd that does not sign yet
// the ledger has no genesis, the forged copy is a broken link of the
// unsigned prefix instead of a refused message, and this test fails.
func TestAuditVerifyDetectsForgery(t *testing.T) {
	e := startAuditBackupd(t)
	e.makeEvents()
	all := ledger(t, e.js)
	keys := only(all, func(m storedMsg) bool { return m.subject == "ledger.events._keys" })
	if len(keys) == 0 {
		t.Fatal("no key.created on ledger.events._keys: this test needs the backupd that signs the ledger")
	}
	var created struct {
		Data struct {
			KeyID string `json:"key_id"`
		} `json:"data"`
	}
	if err := json.Unmarshal(keys[0].data, &created); err != nil {
		t.Fatal(err)
	}
	genesis, legacy := keys[0].seq, len(only(all, func(m storedMsg) bool { return m.seq < keys[0].seq }))
	r := e.must("audit", "verify", "--nats-login", e.login, "--key", created.Data.KeyID)
	for _, want := range []string{
		fmt.Sprintf("Checked %d events of 4 apps: every hash chain is intact and every event since seq %d is signed by the ledger's keys", len(all), genesis),
		fmt.Sprintf("Genesis: seq %d, key %s (the key given with --key).", genesis, created.Data.KeyID),
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("verify of an intact ledger lacks %q:\n%s", want, r.stdout)
		}
	}
	if legacy > 0 && !strings.Contains(r.stdout, fmt.Sprintf("(%d unsigned", legacy)) {
		t.Errorf("the %d unsigned events before the genesis are not counted:\n%s", legacy, r.stdout)
	}
	crm := only(all, func(m storedMsg) bool { return m.subject == "ledger.events.crm" })
	last := crm[len(crm)-1]
	if !strings.Contains(r.stdout, domain.HashEvent(last.data)) {
		t.Errorf("the head of crm's chain is not shown:\n%s", r.stdout)
	}

	// Someone with backupd's rights, but not its key, appends a copy of
	// crm's last event with another actor, keeping its prev_hash.
	var forged map[string]any
	if err := json.Unmarshal(last.data, &forged); err != nil {
		t.Fatal(err)
	}
	forged["actor"] = "mallory"
	body, err := json.Marshal(forged)
	if err != nil {
		t.Fatal(err)
	}
	ack, err := e.js.Publish(context.Background(), "ledger.events.crm", body, njs.WithExpectLastSequencePerSubject(last.seq))
	if err != nil {
		t.Fatal(err)
	}
	// backupd refuses the forged event and chains its next one to the last
	// genuine event, which verify accepts.
	e.must("maintenance", "start", "crm", "--reason", "after the forgery")
	e.waitMirror()
	now := ledger(t, e.js)
	after := now[len(now)-1]
	if after.subject != "ledger.events.crm" || after.seq <= ack.Sequence {
		t.Fatalf("the last event is %s at %d, want crm's after %d", after.subject, after.seq, ack.Sequence)
	}

	r = e.ctl(context.Background(), nil, "audit", "verify", "--nats-login", e.login)
	if r.code != 1 {
		t.Fatalf("verify of a forged ledger: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{
		fmt.Sprintf("crm (ledger.events.crm): refused message at stream sequence %d: unsigned\n", ack.Sequence),
		fmt.Sprintf("  it claimed to be: %s by mallory\n", forged["type"]),
		fmt.Sprintf("REFUSED at seq %d", ack.Sequence),
		domain.HashEvent(after.data), // crm's head: the genuine event after the forgery
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, r.stdout)
		}
	}
	if strings.Contains(r.stdout, "broken link") || strings.Count(r.stdout, "refused message at") != 1 {
		t.Errorf("want one refused message and no broken link:\n%s", r.stdout)
	}
	if want := fmt.Sprintf("backupctl: ledger not intact in 1 of 4 apps: crm (seq %d: unsigned)\n", ack.Sequence); r.stderr != want {
		t.Errorf("stderr %q, want %q", r.stderr, want)
	}

	r = e.ctl(context.Background(), nil, "audit", "verify", "--nats-login", e.login, "--json")
	var rep verifyReport
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil || r.code != 1 {
		t.Fatalf("--json: exit %d, %v\n%s", r.code, err, r.stdout)
	}
	if len(rep.Chains) != 4 || rep.Verified || rep.Intact || rep.Rejected != 1 || rep.GenesisSeq != genesis || rep.GenesisKey != created.Data.KeyID {
		t.Fatalf("--json: %+v", rep)
	}
	sawCRM := false
	for _, ch := range rep.Chains {
		if ch.App != "crm" {
			if !ch.Intact {
				t.Errorf("%s is not intact", ch.App)
			}
			continue
		}
		sawCRM = true
		if ch.Intact || ch.Broken != nil || ch.Rejected != 1 || len(ch.Refused) != 1 {
			t.Fatalf("crm's chain: %+v, want one refused message", ch)
		}
		want := refusal{Seq: ack.Sequence, Reason: domain.ReasonUnsigned, Detail: ch.Refused[0].Detail, Type: forged["type"].(string), Actor: "mallory"}
		if got := ch.Refused[0]; got != want || got.Detail == "" {
			t.Errorf("refused %+v, want %+v", got, want)
		}
		if ch.Events != len(crm)+1 || ch.LastSeq != after.seq || ch.Head != domain.HashEvent(after.data) {
			t.Errorf("crm: %d events, last seq %d, head %s; want %d, %d, %s", ch.Events, ch.LastSeq, ch.Head, len(crm)+1, after.seq, domain.HashEvent(after.data))
		}
	}
	if !sawCRM {
		t.Errorf("--json: no chain of crm in %+v", rep.Chains)
	}

	r = e.must("audit", "verify", "--nats-login", e.login, "--app", "hr")
	for _, want := range []string{"of 1 app: every hash chain is intact and every event since seq", "Read ledger.events._keys as well, for the keys: "} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("verify --app hr lacks %q:\n%s", want, r.stdout)
		}
	}
	if r := e.ctl(context.Background(), nil, "audit", "verify", "--nats-login", e.login, "--app", "crm"); r.code != 1 {
		t.Errorf("verify --app crm: exit %d", r.code)
	}
}

// handChain appends hand-made events to the LEDGER stream of a plain NATS
// server, or, without one (js nil), collects them in mem with the store
// time now. From its genesis on it signs what it appends, as backupd does.
type handChain struct {
	t    *testing.T
	js   njs.JetStream
	last map[string]string // hash of each subject's last event: its head
	n    int
	key  ed25519.PrivateKey // the key that signs; nil before the genesis
	seq  uint64             // stream sequence of the last message stored
	log  map[uint64]ledgerMsg
	mem  []ledgerMsg // without js: every message stored
	now  time.Time   // without js: the store time of the next message
}

func newHandChain(t *testing.T, js njs.JetStream) *handChain {
	return &handChain{t: t, js: js, last: map[string]string{}, log: map[uint64]ledgerMsg{},
		now: time.Date(2026, 11, 21, 10, 15, 0, 0, time.UTC)}
}

// Fixed keys of the hand-made ledgers: the ledger's first and second, and
// one the ledger never announced.
var (
	keyA       = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{0xa}, ed25519.SeedSize))
	keyB       = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{0xb}, ed25519.SeedSize))
	keyMallory = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{0xe}, ed25519.SeedSize))
	idA        = domain.KeyIDOf(keyA.Public().(ed25519.PublicKey))
	idB        = domain.KeyIDOf(keyB.Public().(ed25519.PublicKey))
	idMallory  = domain.KeyIDOf(keyMallory.Public().(ed25519.PublicKey))
)

// body returns an event of app chained to the head of subject: a
// backup.renamed unless edit changes the envelope.
func (h *handChain) body(subject, app string, edit func(env map[string]any)) []byte {
	h.t.Helper()
	return h.envelope(subject, app, "backup.renamed", map[string]any{"backup_id": "x", "name": fmt.Sprint(h.n + 1)}, edit)
}

// envelope returns the envelope of an event of type typ with data, of app,
// chained to the head of subject, after edit (if not nil) changed it.
func (h *handChain) envelope(subject, app, typ string, data any, edit func(env map[string]any)) []byte {
	h.t.Helper()
	h.n++
	env := map[string]any{
		"id": fmt.Sprintf("01K%023d", h.n), "type": typ, "version": 1, "app": app,
		"time": "2026-11-21T10:15:00Z", "actor": "alice", "command_id": fmt.Sprint(h.n),
		"prev_hash": h.last[subject], "data": data,
	}
	if edit != nil {
		edit(env)
	}
	body, err := json.Marshal(env)
	if err != nil {
		h.t.Fatal(err)
	}
	return body
}

// add appends an event of app on subject ledger.events.<subject>, signed
// from the genesis on; edit may change the envelope before it is stored.
// It returns the stored body.
func (h *handChain) add(subject, app string, edit func(env map[string]any)) []byte {
	h.t.Helper()
	return h.addRaw(subject, h.body(subject, app, edit))
}

// addRaw appends body as the next event of subject, signed from the
// genesis on.
func (h *handChain) addRaw(subject string, body []byte) []byte {
	h.t.Helper()
	h.put(subject, body, h.key, true)
	return body
}

// put stores body on subject, signed by key (nil: unsigned); chain makes
// it the subject's head. It returns its stream sequence.
func (h *handChain) put(subject string, body []byte, key ed25519.PrivateKey, chain bool) uint64 {
	h.t.Helper()
	var keyID, sig string
	if key != nil {
		keyID, sig = domain.SignBody(key, body)
	}
	seq := h.publish(subject, body, keyID, sig)
	if chain {
		h.last[subject] = domain.HashEvent(body)
	}
	return seq
}

// forge stores body on subject signed by key (nil: unsigned), without
// moving the head: a message someone who can publish slips in.
func (h *handChain) forge(subject string, body []byte, key ed25519.PrivateKey) uint64 {
	h.t.Helper()
	return h.put(subject, body, key, false)
}

// publish stores body on subject with the signature headers given (none
// when empty) and returns its stream sequence. It does not move the head.
func (h *handChain) publish(subject string, body []byte, keyID, sig string) uint64 {
	h.t.Helper()
	m := ledgerMsg{subject: ledgerjs.Subject(subject), data: body, keyID: keyID, signature: sig}
	if h.js == nil {
		h.seq++
		m.seq, m.stored = h.seq, h.now
		h.mem = append(h.mem, m)
		h.log[m.seq] = m
		return m.seq
	}
	msg := nats.NewMsg(m.subject)
	msg.Data = body
	if keyID != "" {
		msg.Header.Set(domain.HeaderKeyID, keyID)
	}
	if sig != "" {
		msg.Header.Set(domain.HeaderSignature, sig)
	}
	ack, err := h.js.PublishMsg(context.Background(), msg)
	if err != nil {
		h.t.Fatal(err)
	}
	h.seq, m.seq = ack.Sequence, ack.Sequence
	h.log[m.seq] = m
	return m.seq
}

// replay stores again an exact copy, body and headers, of the message at
// seq: what someone who can publish but not sign can do.
func (h *handChain) replay(seq uint64) uint64 {
	h.t.Helper()
	m, ok := h.log[seq]
	if !ok {
		h.t.Fatalf("no message at seq %d to replay", seq)
	}
	return h.publish(strings.TrimPrefix(m.subject, ledgerjs.SubjectPrefix), m.data, m.keyID, m.signature)
}

// keyEvent returns a key event (key.created or key.rotated, data ev) on
// ledger.events._keys, chained to its head.
func (h *handChain) keyEvent(ev domain.Event) []byte {
	h.t.Helper()
	return h.envelope(domain.KeysStream, domain.KeysStream, ev.EventType(), ev, func(env map[string]any) {
		env["actor"] = "system:keys"
	})
}

// genesis appends the key.created of key, self-signed, and signs with key
// from then on. It returns its stream sequence.
func (h *handChain) genesis(key ed25519.PrivateKey) uint64 {
	h.t.Helper()
	body := h.keyEvent(domain.NewKeyCreated(key.Public().(ed25519.PublicKey), bytes.Repeat([]byte{3}, 32)))
	seq := h.put(domain.KeysStream, body, key, true)
	h.key = key
	return seq
}

// rotate appends the key.rotated that replaces the current key by key,
// signed by the current key, and signs with key from then on.
func (h *handChain) rotate(key ed25519.PrivateKey) uint64 {
	h.t.Helper()
	body := h.keyEvent(domain.NewKeyRotated(key.Public().(ed25519.PublicKey), domain.KeyIDOf(h.key.Public().(ed25519.PublicKey))))
	seq := h.put(domain.KeysStream, body, h.key, true)
	h.key = key
	return seq
}

// plainLedger starts a NATS server without users, makes the stream LEDGER
// on it, fills it with build, and returns a login file for it.
func plainLedger(t *testing.T, build func(h *handChain)) string {
	t.Helper()
	s := natstest.Server(t, "")
	_, js := natstest.Connect(t, s)
	if _, err := js.CreateStream(context.Background(), ledgerjs.StreamConfig(ledgerjs.Config{})); err != nil {
		t.Fatal(err)
	}
	build(newHandChain(t, js))
	login := filepath.Join(t.TempDir(), "audit.json")
	b, err := json.Marshal(natsLogin{URL: s.ClientURL(), InboxPrefix: "_INBOX_audit"})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(login, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return login
}

// runAudit runs backupctl in-process without an HTTP server.
func runAudit(t *testing.T, args ...string) result {
	t.Helper()
	var out, errOut bytes.Buffer
	c := &cli{stdin: strings.NewReader(""), stdout: &out, stderr: &errOut,
		env: func(string) string { return "" }, isTerminal: func(any) bool { return false }}
	code := c.main(context.Background(), args)
	return result{code, out.String(), errOut.String()}
}

func TestAuditTailPlainStream(t *testing.T) {
	var bodies [][]byte
	login := plainLedger(t, func(h *handChain) {
		bodies = append(bodies, h.add("a", "a", nil), h.add("b", "b", nil))
		// Bodies are printed as stored, even when they are not events.
		bodies = append(bodies, h.addRaw("a", []byte(`{"odd": "spacing"}`)))
	})
	r := runAudit(t, "audit", "tail", "--nats-login", login)
	if want := string(bytes.Join(bodies, []byte("\n"))) + "\n"; r.code != 0 || r.stdout != want {
		t.Errorf("exit %d, got\n%s\nwant\n%s\n%s", r.code, r.stdout, want, r.stderr)
	}
	if r := runAudit(t, "audit", "tail", "--nats-login", login, "--app", "b", "--since", "3"); r.code != 0 || r.stdout != "" {
		t.Errorf("b since 3: exit %d, %q %s", r.code, r.stdout, r.stderr)
	}
	empty := plainLedger(t, func(*handChain) {})
	if r := runAudit(t, "audit", "tail", "--nats-login", empty); r.code != 0 || r.stdout != "" {
		t.Errorf("empty ledger: exit %d, %q %s", r.code, r.stdout, r.stderr)
	}
}

func TestParseSince(t *testing.T) {
	cmd := &command{name: "audit tail"}
	at := time.Date(2026, 11, 21, 10, 15, 0, 500, time.UTC)
	for _, tc := range []struct {
		in   string
		seq  uint64
		time time.Time
		bad  bool
	}{
		{in: ""},
		{in: "1", seq: 1},
		{in: "18446744073709551615", seq: 1<<64 - 1},
		{in: "2026-11-21T10:15:00.0000005Z", time: at},
		{in: "2026-11-21T11:15:00.0000005+01:00", time: at},
		{in: "0", bad: true},
		{in: "-1", bad: true},
		{in: "2026-11-21", bad: true},
		{in: "1h", bad: true},
	} {
		seq, tm, err := parseSince(cmd, tc.in)
		if (err != nil) != tc.bad || seq != tc.seq || !tm.Equal(tc.time) {
			t.Errorf("parseSince(%q) = %d, %v, %v; want %d, %v, bad %v", tc.in, seq, tm, err, tc.seq, tc.time, tc.bad)
		}
	}
}
