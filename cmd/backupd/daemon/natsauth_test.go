package daemon

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"io/fs"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/backupledger/backupledger/docs"
)

// embeddedConfig is a config of an embedded server on dir listening on
// listen ("127.0.0.1:0", "none", ...).
func embeddedConfig(dir, listen string) Config {
	cfg := DefaultConfig()
	cfg.DataDir = dir
	cfg.NATS.Listen = listen
	cfg.NATS.Sync = SyncInterval
	return cfg
}

// startTestServer starts the embedded server of cfg; it stops with the test.
func startTestServer(t *testing.T, cfg Config) (*server.Server, *NATSCredentials) {
	t.Helper()
	s, login, err := startEmbedded(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("start embedded server: %v", err)
	}
	t.Cleanup(func() { stopServer(s) })
	return s, login
}

func stopServer(s *server.Server) {
	s.Shutdown()
	s.WaitForShutdown()
}

// readFiles returns the content of every role's login file.
func readFiles(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	m := map[string][]byte{}
	for _, role := range NATSRoles() {
		b, err := os.ReadFile(NATSCredentialsPath(dir, role))
		if err != nil {
			t.Fatalf("read %s login: %v", role, err)
		}
		m[role] = b
	}
	return m
}

func TestEmbeddedServerCreatesLogins(t *testing.T) {
	dir := t.TempDir()
	log, buf := captureLog()
	s, login, err := startEmbedded(embeddedConfig(dir, "127.0.0.1:0"), log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stopServer(s) })
	if login == nil || login.User != RoleBackupd {
		t.Fatalf("own login = %+v, want the backupd login", login)
	}

	fi, err := os.Stat(natsDir(dir))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o700 {
		t.Errorf("%s mode = %v, want drwx------", natsDir(dir), fi.Mode())
	}
	entries, err := os.ReadDir(natsDir(dir))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			t.Errorf("temp file %s left behind", e.Name())
		}
	}

	port := s.Addr().(*net.TCPAddr).Port
	passwords := map[string]bool{}
	for _, role := range NATSRoles() {
		path := NATSCredentialsPath(dir, role)
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatalf("%s login not written: %v", role, err)
		}
		if fi.Mode().Perm() != 0o600 || !fi.Mode().IsRegular() {
			t.Errorf("%s mode = %v, want -rw-------", path, fi.Mode())
		}
		c, err := ReadNATSCredentials(dir, role)
		if err != nil {
			t.Fatal(err)
		}
		if c.User != role || c.InboxPrefix != inboxPrefix(role) {
			t.Errorf("%s login = user %q inbox %q", role, c.User, c.InboxPrefix)
		}
		if raw, err := base64.RawURLEncoding.DecodeString(c.Password); err != nil || len(raw) < 32 {
			t.Errorf("%s password %q is not 256 bits of base64url (%v)", role, c.Password, err)
		}
		passwords[c.Password] = true
		u, err := url.Parse(c.URL)
		if err != nil {
			t.Fatalf("%s url %q: %v", role, c.URL, err)
		}
		if pw, _ := u.User.Password(); u.Scheme != "nats" || u.User.Username() != role || pw != c.Password ||
			u.Host != net.JoinHostPort("127.0.0.1", itoa(port)) {
			t.Errorf("%s url = %q, want nats://%s:<password>@127.0.0.1:%d", role, c.URL, role, port)
		}
		if strings.Contains(buf.String(), c.Password) {
			t.Errorf("the log shows the %s password:\n%s", role, buf.String())
		}
		if !strings.Contains(buf.String(), path) {
			t.Errorf("the log does not name %s:\n%s", path, buf.String())
		}
		// Each file's URL logs in over TCP as its role.
		nc, err := c.Connect()
		if err != nil {
			t.Errorf("connect as %s: %v", role, err)
			continue
		}
		nc.Close()
	}
	if len(passwords) != 3 {
		t.Errorf("the three roles share passwords")
	}
}

func TestEmbeddedServerRequiresLogin(t *testing.T) {
	dir := t.TempDir()
	s, login := startTestServer(t, embeddedConfig(dir, "127.0.0.1:0"))
	good, err := ReadNATSCredentials(dir, RoleProducer)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		opts []nats.Option
		ok   bool
	}{
		{"tcp without login", nil, false},
		{"tcp wrong password", []nats.Option{nats.UserInfo(RoleProducer, good.Password+"x")}, false},
		{"tcp other role's password", []nats.Option{nats.UserInfo(RoleAudit, good.Password)}, false},
		{"tcp unknown user", []nats.Option{nats.UserInfo("admin", good.Password)}, false},
		{"in-process as backupd", append([]nats.Option{nats.InProcessServer(s)}, login.Options()...), true},
		{"tcp as producer", good.Options(), true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			nc, err := nats.Connect(s.ClientURL(), append(tc.opts, nats.MaxReconnects(0))...)
			if nc != nil {
				nc.Close()
			}
			if tc.ok && err != nil {
				t.Errorf("connect: %v", err)
			}
			if !tc.ok && !errors.Is(err, nats.ErrAuthorization) {
				t.Errorf("connect = %v, want %v", err, nats.ErrAuthorization)
			}
		})
	}
}

// An in-process connection logs in like any other: the daemon's own
// connection needs the backupd login once the server has users.
func TestEmbeddedServerRequiresLoginInProcess(t *testing.T) {
	// The refusal takes the server's write deadline (10 s): it answers
	// into a pipe that the client is still writing to. Run it alongside
	// the other tests.
	t.Parallel()
	s, _ := startTestServer(t, embeddedConfig(t.TempDir(), "127.0.0.1:0"))
	nc, err := nats.Connect(s.ClientURL(), nats.InProcessServer(s), nats.MaxReconnects(0))
	if err == nil {
		nc.Close()
		t.Fatal("in-process connection without a login was accepted")
	}
}

func TestEmbeddedServerInProcessOnlyWritesNoLogins(t *testing.T) {
	dir := t.TempDir()
	s, login := startTestServer(t, embeddedConfig(dir, ListenNone))
	if login == nil || login.User != RoleBackupd || login.Password == "" {
		t.Fatalf("in-process only: own login %+v, want a backupd login made in memory", login)
	}
	for _, role := range NATSRoles() {
		if _, err := ReadNATSCredentials(dir, role); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("in-process only: %s login read = %v, want no file", role, err)
		}
	}
	// The accounts hold without a port too: no login, no connection.
	if nc, err := nats.Connect(s.ClientURL(), nats.InProcessServer(s), nats.MaxReconnects(0)); err == nil {
		nc.Close()
		t.Error("in-process connection without a login was accepted")
	}
	d := &Daemon{cfg: embeddedConfig(dir, ListenNone), srv: s, login: login}
	opts, err := d.NATSConnectOptions()
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(s.ClientURL(), opts...)
	if err != nil {
		t.Fatalf("in-process connect with the backupd login: %v", err)
	}
	nc.Close()
	if _, err := d.NATSCredentials(RoleProducer); !errors.Is(err, ErrNoNATSCredentials) {
		t.Errorf("NATSCredentials = %v, want ErrNoNATSCredentials", err)
	}
}

// A data dir of a backupd without accounts keeps the ledger in the global
// account's store; it is moved into LEDGER's as it is.
func TestEmbeddedServerMovesTheGlobalAccount(t *testing.T) {
	dir := t.TempDir()
	old, err := server.NewServer(&server.Options{JetStream: true, StoreDir: natsDir(dir), DontListen: true, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	old.Start()
	if !old.ReadyForConnections(10 * time.Second) {
		t.Fatal("old server not ready")
	}
	nc, err := nats.Connect(old.ClientURL(), nats.InProcessServer(old))
	if err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "LEDGER", Subjects: []string{"ledger.events.>"}}); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := js.Publish(ctx, "ledger.events.crm", []byte(`{}`)); err != nil {
			t.Fatal(err)
		}
	}
	nc.Close()
	stopServer(old)

	log, buf := captureLog()
	s, login, err := startEmbedded(embeddedConfig(dir, ListenNone), log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stopServer(s) })
	nc, err = nats.Connect(s.ClientURL(), append(login.Options(), nats.InProcessServer(s))...)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if js, err = jetstream.New(nc); err != nil {
		t.Fatal(err)
	}
	st, err := js.Stream(ctx, "LEDGER")
	if err != nil {
		t.Fatalf("LEDGER after the move: %v", err)
	}
	if got := st.CachedInfo().State; got.Msgs != 3 || got.LastSeq != 3 {
		t.Errorf("LEDGER after the move: %+v, want the 3 messages", got)
	}
	if _, err := os.Stat(filepath.Join(natsDir(dir), "jetstream", globalAccount)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the global account's store is still there: %v", err)
	}
	if !strings.Contains(buf.String(), "moved the ledger") {
		t.Errorf("the move was not logged:\n%s", buf.String())
	}
	stopServer(s)

	// Both stores: refused, nothing moved.
	if err := os.MkdirAll(filepath.Join(natsDir(dir), "jetstream", globalAccount), 0o700); err != nil {
		t.Fatal(err)
	}
	if s, _, err := startEmbedded(embeddedConfig(dir, ListenNone), slog.New(slog.DiscardHandler)); err == nil {
		stopServer(s)
		t.Fatal("started with both the global account's and LEDGER's store")
	} else if !strings.Contains(err.Error(), "both") {
		t.Errorf("err = %v, want one that says both stores exist", err)
	}
}

func TestEmbeddedServerReusesLogins(t *testing.T) {
	dir := t.TempDir()
	s, _, err := startEmbedded(embeddedConfig(dir, "127.0.0.1:0"), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	port := s.Addr().(*net.TCPAddr).Port
	first := readFiles(t, dir)
	stats := map[string]os.FileInfo{}
	for _, role := range NATSRoles() {
		if stats[role], err = os.Stat(NATSCredentialsPath(dir, role)); err != nil {
			t.Fatal(err)
		}
	}
	stopServer(s)

	// Same address: the files are left alone, byte for byte.
	log, buf := captureLog()
	s, login, err := startEmbedded(embeddedConfig(dir, net.JoinHostPort("127.0.0.1", itoa(port))), log)
	if err != nil {
		t.Fatalf("restart on port %d: %v", port, err)
	}
	again := readFiles(t, dir)
	for _, role := range NATSRoles() {
		if !bytes.Equal(first[role], again[role]) {
			t.Errorf("%s login changed across a restart:\n%s\n%s", role, first[role], again[role])
		}
		fi, err := os.Stat(NATSCredentialsPath(dir, role))
		if err != nil {
			t.Fatal(err)
		}
		if !os.SameFile(fi, stats[role]) || !fi.ModTime().Equal(stats[role].ModTime()) {
			t.Errorf("%s login file was rewritten", role)
		}
	}
	if strings.Contains(buf.String(), "created") {
		t.Errorf("the restart logged a creation:\n%s", buf.String())
	}
	if c, _ := ReadNATSCredentials(dir, RoleBackupd); login == nil || *login != c {
		t.Errorf("own login %+v, want the stored backupd login", login)
	}
	stopServer(s)

	// Another port: the same passwords, the URL follows the address.
	s = func() *server.Server { s, _ := startTestServer(t, embeddedConfig(dir, "127.0.0.1:0")); return s }()
	for _, role := range NATSRoles() {
		c, err := ReadNATSCredentials(dir, role)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(first[role], []byte(`"password": "`+c.Password+`"`)) {
			t.Errorf("%s password changed with the port", role)
		}
		if u, _ := url.Parse(c.URL); u.Port() != itoa(s.Addr().(*net.TCPAddr).Port) {
			t.Errorf("%s url %s does not follow the new port %d", role, c.URL, s.Addr().(*net.TCPAddr).Port)
		}
		if fi, err := os.Stat(NATSCredentialsPath(dir, role)); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s rewritten login: mode %v (%v), want 0600", role, fi.Mode(), err)
		}
	}
}

func TestEmbeddedServerRefusesBadLoginFiles(t *testing.T) {
	tests := []struct {
		name    string
		content string
		want    string
	}{
		{"not json", "producer:secret\n", "producer.json"},
		{"other user", `{"user":"audit","password":"p","inbox_prefix":"_INBOX_producer"}`, `"audit"`},
		{"no password", `{"user":"producer","password":"","inbox_prefix":"_INBOX_producer"}`, "password"},
		{"other inbox", `{"user":"producer","password":"p","inbox_prefix":"_INBOX"}`, "inbox_prefix"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := NATSCredentialsPath(dir, RoleProducer)
			if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, []byte(tc.content), 0o600); err != nil {
				t.Fatal(err)
			}
			s, _, err := startEmbedded(embeddedConfig(dir, "127.0.0.1:0"), slog.New(slog.DiscardHandler))
			if err == nil {
				stopServer(s)
				t.Fatal("started with a bad login file")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not name %q", err, tc.want)
			}
			if b, _ := os.ReadFile(path); string(b) != tc.content {
				t.Errorf("the bad file was replaced by %s", b)
			}
		})
	}
}

func TestEmbeddedServerTightensLoginFileMode(t *testing.T) {
	dir := t.TempDir()
	s, _ := startTestServer(t, embeddedConfig(dir, "127.0.0.1:0"))
	port := s.Addr().(*net.TCPAddr).Port
	stopServer(s)
	path := NATSCredentialsPath(dir, RoleAudit)
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(natsDir(dir), 0o755); err != nil {
		t.Fatal(err)
	}
	log, buf := captureLog()
	s, _, err = startEmbedded(embeddedConfig(dir, net.JoinHostPort("127.0.0.1", itoa(port))), log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stopServer(s) })
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("audit login mode after restart = %v (%v), want 0600", fi.Mode(), err)
	}
	if fi, err := os.Stat(natsDir(dir)); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("nats dir mode after restart = %v (%v), want 0700", fi.Mode(), err)
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
		t.Error("the audit login changed")
	}
	if !strings.Contains(buf.String(), path) {
		t.Errorf("the log does not name the widened file:\n%s", buf.String())
	}
}

func TestClientHostPort(t *testing.T) {
	tests := []struct {
		host string
		want string
	}{
		{"127.0.0.1", "127.0.0.1:4222"},
		{"0.0.0.0", "127.0.0.1:4222"},
		{"", "127.0.0.1:4222"},
		{"::", "[::1]:4222"},
		{"::1", "[::1]:4222"},
		{"nats.example.com", "nats.example.com:4222"},
	}
	for _, tc := range tests {
		got, err := clientHostPort(tc.host, &net.TCPAddr{IP: net.IPv4zero, Port: 4222})
		if err != nil || got != tc.want {
			t.Errorf("clientHostPort(%q) = %q, %v; want %q", tc.host, got, err, tc.want)
		}
	}
}

func TestRedactURLs(t *testing.T) {
	tests := []struct{ in, want string }{
		{"nats://127.0.0.1:4222", "nats://127.0.0.1:4222"},
		{"nats://u:secret@a:4222,nats://b:4222", "nats://u:xxxxx@a:4222,nats://b:4222"},
		{"tls://s3cr3t-token@a:4222", "tls://xxxxx@a:4222"},
		{"", ""},
	}
	for _, tc := range tests {
		if got := redactURLs(tc.in); got != tc.want {
			t.Errorf("redactURLs(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestConfigValidateNATSClientSettings(t *testing.T) {
	external := func(c *Config) { c.NATS.URL = "nats://a:4222" }
	tests := []struct {
		name string
		set  func(*Config)
		want string // "" means valid
	}{
		{"creds", func(c *Config) { external(c); c.NATS.Creds = "u.creds" }, ""},
		{"user and password", func(c *Config) { external(c); c.NATS.User, c.NATS.Password = "u", "p" }, ""},
		{"tls", func(c *Config) {
			external(c)
			c.NATS.TLSCA, c.NATS.TLSCert, c.NATS.TLSKey = "ca.pem", "c.pem", "k.pem"
		}, ""},
		{"creds without url", func(c *Config) { c.NATS.Creds = "u.creds" }, "nats creds applies only"},
		{"tls ca without url", func(c *Config) { c.NATS.TLSCA = "ca.pem" }, "nats tls ca applies only"},
		{"creds and user", func(c *Config) { external(c); c.NATS.Creds, c.NATS.User, c.NATS.Password = "u.creds", "u", "p" }, "set one"},
		{"user without password", func(c *Config) { external(c); c.NATS.User = "u" }, "nats user and nats password"},
		{"password without user", func(c *Config) { external(c); c.NATS.Password = "p" }, "nats user and nats password"},
		{"cert without key", func(c *Config) { external(c); c.NATS.TLSCert = "c.pem" }, "nats tls cert and nats tls key"},
		{"key without cert", func(c *Config) { external(c); c.NATS.TLSKey = "k.pem" }, "nats tls cert and nats tls key"},
		{"no staging, no mirror", func(c *Config) { external(c); c.NATS.StagingAPI, c.NATS.AuditAPI = APINone, APINone }, ""},
		{"other prefixes", func(c *Config) { external(c); c.NATS.StagingAPI, c.NATS.AuditAPI = "$JS.p.API", "JS.audit-x.API" }, ""},
		{"staging api without url", func(c *Config) { c.NATS.StagingAPI = APINone }, "nats staging api applies only"},
		{"audit api without url", func(c *Config) { c.NATS.AuditAPI = "$JS.x.API" }, "nats audit api applies only"},
		{"wildcard prefix", func(c *Config) { external(c); c.NATS.StagingAPI = "$JS.*.API" }, "nats staging api must be a subject prefix"},
		{"empty prefix", func(c *Config) { external(c); c.NATS.AuditAPI = "" }, "nats audit api must be a subject prefix"},
		{"prefix ending in a dot", func(c *Config) { external(c); c.NATS.AuditAPI = "$JS.audit." }, "nats audit api must be a subject prefix"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			tc.set(&cfg)
			err := cfg.Validate()
			if tc.want == "" && err != nil {
				t.Errorf("Validate() = %v, want nil", err)
			}
			if tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Errorf("Validate() = %v, want an error with %q", err, tc.want)
			}
		})
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// TestSecurityDocShowsTheAccounts checks that docs/security.md gives
// operators the very configuration the embedded server runs with, and that
// it has the accounts and users backupd expects.
func TestSecurityDocShowsTheAccounts(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "..", "docs", "security.md"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(doc, docs.NATSAccounts) {
		t.Error("docs/security.md does not show docs/nats/accounts.conf as it is")
	}
	l, err := memoryNATSLogins()
	if err != nil {
		t.Fatal(err)
	}
	opts := &server.Options{}
	if err := opts.ProcessConfigString(l.config()); err != nil {
		t.Fatal(err)
	}
	accounts := map[string]bool{}
	for _, a := range opts.Accounts {
		accounts[a.Name] = true
	}
	for _, name := range []string{AccountLedger, AccountProducers, AccountAudit, AccountAuditMirror} {
		if !accounts[name] {
			t.Errorf("no account %s", name)
		}
	}
	users := map[string]string{}
	for _, u := range opts.Users {
		users[u.Username] = u.Account.Name
		if u.Password != l.byRole[u.Username].Password {
			t.Errorf("%s: password is not the login's", u.Username)
		}
	}
	want := map[string]string{RoleBackupd: AccountLedger, RoleProducer: AccountProducers, RoleAudit: AccountAudit}
	if !reflect.DeepEqual(users, want) {
		t.Errorf("users and their accounts = %v, want %v", users, want)
	}
}

// A NATS port in use fails the start at once, saying so, rather than
// after the embedded server's 30 s wait.
func TestEmbeddedServerPortInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cfg := DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.HTTP.Addr = "127.0.0.1:0"
	cfg.NATS.Listen = ln.Addr().String()
	cfg.AdminToken = "t"
	d, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	start := time.Now()
	err = d.Start(ctx)
	if err == nil {
		d.Kill()
		t.Fatal("started on a NATS port in use")
	}
	if !strings.Contains(err.Error(), ln.Addr().String()) || time.Since(start) > 5*time.Second {
		t.Errorf("err = %v after %s", err, time.Since(start))
	}
}
