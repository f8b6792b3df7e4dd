package main

import (
	"bytes"
	"context"
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
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.NATSListen = "127.0.0.1:0"
	cfg.AdminToken = testToken
	cfg.Sync = daemon.SyncInterval
	cfg.ShutdownTimeout = 10 * time.Second
	cfg.PasswordCost = 4
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
	return &auditEnv{t: t, dir: dir, d: d, login: daemon.NATSCredentialsPath(cfg.DataDir, daemon.RoleAudit), js: js, nc: nc}
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

func TestAuditVerifyDetectsForgery(t *testing.T) {
	e := startAuditBackupd(t)
	e.makeEvents()
	r := e.must("audit", "verify", "--nats-login", e.login)
	all := ledger(t, e.js)
	if !strings.Contains(r.stdout, fmt.Sprintf("Checked %d events of 3 apps: every hash chain is intact.", len(all))) {
		t.Errorf("verify of an intact ledger printed\n%s", r.stdout)
	}
	crm := only(all, func(m storedMsg) bool { return m.subject == "ledger.events.crm" })
	last := crm[len(crm)-1]
	if !strings.Contains(r.stdout, domain.HashEvent(last.data)) {
		t.Errorf("the head of crm's chain is not shown:\n%s", r.stdout)
	}

	// Someone with backupd's rights appends a copy of crm's last event
	// with another actor, keeping its prev_hash: a link of the chain that
	// does not fit.
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
	// backupd follows the forged event and chains the next one to it: only
	// the first broken link is reported.
	e.must("maintenance", "start", "crm", "--reason", "after the forgery")
	e.waitMirror()

	r = e.ctl(context.Background(), nil, "audit", "verify", "--nats-login", e.login)
	if r.code != 1 {
		t.Fatalf("verify of a forged ledger: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{
		fmt.Sprintf("crm (ledger.events.crm): broken link at stream sequence %d", ack.Sequence),
		fmt.Sprintf("prev_hash expected: %q (SHA-256 of the event at sequence %d)", domain.HashEvent(last.data), last.seq),
		fmt.Sprintf("prev_hash found:    %q", forged["prev_hash"]),
		fmt.Sprintf("BROKEN at seq %d", ack.Sequence),
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, r.stdout)
		}
	}
	if strings.Count(r.stdout, "broken link") != 1 {
		t.Errorf("want one broken link:\n%s", r.stdout)
	}
	if want := "backupctl: hash chain broken in 1 of 3 apps: crm\n"; r.stderr != want {
		t.Errorf("stderr %q, want %q", r.stderr, want)
	}

	r = e.ctl(context.Background(), nil, "audit", "verify", "--nats-login", e.login, "--json")
	var rep verifyReport
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil || r.code != 1 {
		t.Fatalf("--json: exit %d, %v\n%s", r.code, err, r.stdout)
	}
	if len(rep.Chains) != 3 {
		t.Fatalf("--json: %d chains, want 3: %+v", len(rep.Chains), rep.Chains)
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
		want := chainBreak{Seq: ack.Sequence, Expected: domain.HashEvent(last.data), ExpectedOf: last.seq, Found: forged["prev_hash"].(string)}
		if ch.Intact || ch.Broken == nil || *ch.Broken != want {
			t.Errorf("crm's chain: %+v, want broken at %+v", ch, want)
		}
	}
	if !sawCRM {
		t.Errorf("--json: no chain of crm in %+v", rep.Chains)
	}

	if r := e.must("audit", "verify", "--nats-login", e.login, "--app", "hr"); !strings.Contains(r.stdout, "of 1 app: every hash chain is intact") {
		t.Errorf("verify --app hr printed\n%s", r.stdout)
	}
	if r := e.ctl(context.Background(), nil, "audit", "verify", "--nats-login", e.login, "--app", "crm"); r.code != 1 {
		t.Errorf("verify --app crm: exit %d", r.code)
	}
}

// handChain appends hand-made events to the LEDGER stream of a plain NATS
// server.
type handChain struct {
	t    *testing.T
	js   njs.JetStream
	last map[string]string // hash of each subject's last event
	n    int
}

// add appends an event of app on subject ledger.events.<subject>; edit may
// change the envelope before it is stored. It returns the stored body.
func (h *handChain) add(subject, app string, edit func(env map[string]any)) []byte {
	h.t.Helper()
	h.n++
	env := map[string]any{
		"id": fmt.Sprintf("01K%023d", h.n), "type": "backup.renamed", "version": 1, "app": app,
		"time": "2026-11-21T10:15:00Z", "actor": "alice", "command_id": fmt.Sprint(h.n),
		"prev_hash": h.last[subject], "data": map[string]any{"backup_id": "x", "name": fmt.Sprint(h.n)},
	}
	if edit != nil {
		edit(env)
	}
	body, err := json.Marshal(env)
	if err != nil {
		h.t.Fatal(err)
	}
	return h.addRaw(subject, body)
}

func (h *handChain) addRaw(subject string, body []byte) []byte {
	h.t.Helper()
	if _, err := h.js.Publish(context.Background(), ledgerjs.Subject(subject), body); err != nil {
		h.t.Fatal(err)
	}
	h.last[subject] = domain.HashEvent(body)
	return body
}

func TestAuditVerifyChains(t *testing.T) {
	for _, tc := range []struct {
		name   string
		build  func(h *handChain)
		code   int
		stdout []string
		stderr string
	}{
		{"intact", func(h *handChain) {
			h.add("a", "a", nil)
			h.add("b", "b", nil)
			h.add("a", "a", nil)
			h.add("_identity", "_identity", nil)
			h.add("a", "a", nil)
		}, 0, []string{"Checked 5 events of 3 apps: every hash chain is intact.", "a          3       5         intact"}, ""},
		{"first event with a prev_hash", func(h *handChain) {
			h.add("b", "b", nil)
			h.add("a", "a", func(env map[string]any) { env["prev_hash"] = strings.Repeat("ab", 32) })
		}, 1, []string{
			"a (ledger.events.a): broken link at stream sequence 2\n" +
				`  prev_hash expected: "" (the first event of the app: empty)` + "\n" +
				`  prev_hash found:    "` + strings.Repeat("ab", 32) + `"`,
		}, "hash chain broken in 1 of 2 apps: a"},
		{"only the first broken link", func(h *handChain) {
			h.add("a", "a", nil)
			h.add("a", "a", nil)
			h.add("a", "a", func(env map[string]any) { env["prev_hash"] = "" })
			h.add("a", "a", func(env map[string]any) { env["prev_hash"] = "" })
		}, 1, []string{"broken link at stream sequence 3\n", `found:    ""`, "BROKEN at seq 3"}, "hash chain broken in 1 of 1 apps: a"},
		{"a body that is not an envelope", func(h *handChain) {
			h.add("a", "a", nil)
			h.addRaw("a", []byte("not json"))
			h.add("b", "b", nil)
		}, 1, []string{"broken link at stream sequence 2: the body is not a JSON event envelope: invalid character"}, "hash chain broken in 1 of 2 apps: a"},
		{"no prev_hash", func(h *handChain) {
			h.add("a", "a", func(env map[string]any) { delete(env, "prev_hash") })
		}, 1, []string{"broken link at stream sequence 1: the event has no prev_hash"}, "broken in 1 of 1 apps"},
		{"an event of another app", func(h *handChain) {
			h.add("a", "a", nil)
			h.add("a", "b", nil)
		}, 1, []string{`broken link at stream sequence 2: the event is of app "b", not of its subject's`}, "broken in 1 of 1 apps"},
		{"two apps broken", func(h *handChain) {
			h.add("a", "a", nil)
			h.add("b", "b", func(env map[string]any) { env["prev_hash"] = "x" })
			h.add("c", "c", nil)
			h.add("a", "a", func(env map[string]any) { env["prev_hash"] = "y" })
		}, 1, []string{"a (ledger.events.a): broken link at stream sequence 4", "b (ledger.events.b): broken link at stream sequence 2",
			"Checked 4 events of 3 apps: 2 broken."}, "hash chain broken in 2 of 3 apps: a, b"},
		{"empty", func(*handChain) {}, 0, []string{"No events to check: the ledger is empty."}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			login := plainLedger(t, tc.build)
			r := runAudit(t, "audit", "verify", "--nats-login", login)
			if r.code != tc.code {
				t.Errorf("exit %d, want %d\n%s%s", r.code, tc.code, r.stdout, r.stderr)
			}
			for _, want := range tc.stdout {
				if !strings.Contains(r.stdout, want) {
					t.Errorf("stdout lacks %q:\n%s", want, r.stdout)
				}
			}
			if !strings.Contains(r.stderr, tc.stderr) || (tc.stderr == "") != (r.stderr == "") {
				t.Errorf("stderr %q, want %q", r.stderr, tc.stderr)
			}
		})
	}
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
	build(&handChain{t: t, js: js, last: map[string]string{}})
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
