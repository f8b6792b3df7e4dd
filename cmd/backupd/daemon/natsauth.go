package daemon

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go"

	"github.com/backupledger/backupledger/docs"
)

// Roles of the users of the embedded NATS server, each in an account of
// its own (docs/nats/accounts.conf, docs/security.md). When the server
// listens on a port, each role's login is stored in
// <data-dir>/nats/<role>.json.
const (
	// RoleBackupd is the service itself, alone in the ledger's account
	// (AccountLedger), with every right there.
	RoleBackupd = "backupd"
	// RoleProducer (AccountProducers) sends requests to the NATS API
	// (ledger.api.>, imported) and puts and gets objects in the staging
	// bucket of its account.
	RoleProducer = "producer"
	// RoleAudit (AccountAudit) reads the mirror of LEDGER in
	// AccountAuditMirror through pull consumers of its own.
	RoleAudit = "audit"
)

// NATSRoles returns the roles of the embedded server's users.
func NATSRoles() []string { return []string{RoleBackupd, RoleProducer, RoleAudit} }

// ErrNoNATSCredentials is returned by Daemon.NATSCredentials when the daemon
// has no users of its own: it connects to an external cluster, or its
// embedded server does not listen on a port.
var ErrNoNATSCredentials = errors.New("no nats credentials: the daemon connects to an external cluster, or its embedded server does not listen on a port")

// NATSCredentials is one role's login on the embedded NATS server: the
// content of <data-dir>/nats/<role>.json.
type NATSCredentials struct {
	// User is the user name; it is the role's name.
	User string `json:"user"`
	// Password is the user's password: 256 random bits, base64url.
	Password string `json:"password"`
	// InboxPrefix is the prefix of the reply subjects the role may
	// subscribe to (nats.CustomInboxPrefix, `nats --inbox-prefix`);
	// "_INBOX" for backupd, "_INBOX_<role>" for the others, so that no role
	// can read the replies and deliveries meant for another.
	InboxPrefix string `json:"inbox_prefix"`
	// URL is the ready-to-use URL of the server with the user and password
	// in it, e.g. nats://producer:...@127.0.0.1:4222. backupd rewrites it
	// when the listen address changes; the password never changes.
	URL string `json:"url"`
}

// Options returns the nats.go options that log in with c: the user and
// password, and the role's inbox prefix.
func (c NATSCredentials) Options() []nats.Option {
	opts := []nats.Option{nats.UserInfo(c.User, c.Password)}
	if c.InboxPrefix != "" {
		opts = append(opts, nats.CustomInboxPrefix(c.InboxPrefix))
	}
	return opts
}

// Connect connects to c.URL with c's options followed by opts. It returns
// nats.go's errors, wrapped (e.g. nats.ErrAuthorization).
func (c NATSCredentials) Connect(opts ...nats.Option) (*nats.Conn, error) {
	nc, err := nats.Connect(c.URL, append(c.Options(), opts...)...)
	if err != nil {
		return nil, fmt.Errorf("connect to nats as %s: %w", c.User, err)
	}
	return nc, nil
}

// NATSCredentialsPath returns the file of role's login under dataDir:
// <dataDir>/nats/<role>.json.
func NATSCredentialsPath(dataDir, role string) string {
	return filepath.Join(natsDir(dataDir), role+".json")
}

// ReadNATSCredentials reads role's login from <dataDir>/nats/<role>.json, as
// written by backupd. It returns an error wrapping fs.ErrNotExist when the
// file does not exist (backupd has not listened on a port with this data
// dir yet), or one naming the file when it is not a valid login.
func ReadNATSCredentials(dataDir, role string) (NATSCredentials, error) {
	return readCredentials(NATSCredentialsPath(dataDir, role), role)
}

// NATSCredentials returns role's login on the daemon's embedded server, as
// stored in its data dir. It returns ErrNoNATSCredentials when the daemon
// has no embedded server listening on a port.
func (d *Daemon) NATSCredentials(role string) (NATSCredentials, error) {
	if d.srv == nil || d.cfg.NATS.Listen == ListenNone {
		return NATSCredentials{}, ErrNoNATSCredentials
	}
	return ReadNATSCredentials(d.cfg.DataDir, role)
}

// NATSConnectOptions returns the nats.go options that connect to the
// daemon's NATS server (at NATSURL) with the daemon's own rights: the
// backupd login of the embedded server (in-process when it has no port),
// or the credentials and TLS settings configured for an external cluster.
// It returns an error only when the backupd login cannot be read.
func (d *Daemon) NATSConnectOptions() ([]nats.Option, error) {
	if d.srv == nil {
		return externalOptions(d.cfg), nil
	}
	if d.cfg.NATS.Listen == ListenNone {
		// No port: only an in-process connection reaches the server.
		return append(d.login.Options(), nats.InProcessServer(d.srv)), nil
	}
	c, err := d.NATSCredentials(RoleBackupd)
	if err != nil {
		return nil, err
	}
	return c.Options(), nil
}

// externalOptions returns the options that authenticate to an external
// cluster and secure the connection, from the --nats-creds, --nats-user,
// --nats-password and --nats-tls-* settings.
func externalOptions(cfg Config) []nats.Option {
	var opts []nats.Option
	if cfg.NATS.Creds != "" {
		opts = append(opts, nats.UserCredentials(cfg.NATS.Creds))
	}
	if cfg.NATS.User != "" {
		opts = append(opts, nats.UserInfo(cfg.NATS.User, cfg.NATS.Password))
	}
	if cfg.NATS.TLSCA != "" {
		opts = append(opts, nats.RootCAs(cfg.NATS.TLSCA))
	}
	if cfg.NATS.TLSCert != "" {
		opts = append(opts, nats.ClientCert(cfg.NATS.TLSCert, cfg.NATS.TLSKey))
	}
	return opts
}

// natsDir is the embedded server's store, which also holds the logins.
func natsDir(dataDir string) string { return filepath.Join(dataDir, "nats") }

// inboxPrefix returns role's inbox prefix.
func inboxPrefix(role string) string {
	if role == RoleBackupd {
		return "_INBOX" // nats.go's default
	}
	return "_INBOX_" + role
}

// natsLogins are the logins of the embedded server's users by role, and
// which of them are new (not yet written).
type natsLogins struct {
	byRole map[string]NATSCredentials
	fresh  map[string]bool
}

// loadNATSLogins reads the logins stored under dir, and makes a login with
// a new random password for each role that has none yet; it writes nothing
// (saveNATSLogins does, once the server listens). A file that exists but
// cannot be read or is not a valid login is an error, never replaced.
func loadNATSLogins(dir string, log *slog.Logger) (natsLogins, error) {
	l := natsLogins{byRole: map[string]NATSCredentials{}, fresh: map[string]bool{}}
	for _, role := range NATSRoles() {
		path := filepath.Join(dir, role+".json")
		c, err := readCredentials(path, role)
		if err == nil {
			if err := tightenMode(path, log); err != nil {
				return l, err
			}
			l.byRole[role] = c
			continue
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return l, err
		}
		pw, err := randomPassword()
		if err != nil {
			return l, fmt.Errorf("make nats password of %s: %w", role, err)
		}
		l.byRole[role] = NATSCredentials{User: role, Password: pw, InboxPrefix: inboxPrefix(role)}
		l.fresh[role] = true
	}
	return l, nil
}

// memoryNATSLogins makes a login with a new random password for every
// role, to be written nowhere: the logins of a server without a port.
func memoryNATSLogins() (natsLogins, error) {
	l := natsLogins{byRole: map[string]NATSCredentials{}, fresh: map[string]bool{}}
	for _, role := range NATSRoles() {
		pw, err := randomPassword()
		if err != nil {
			return l, fmt.Errorf("make nats password of %s: %w", role, err)
		}
		l.byRole[role] = NATSCredentials{User: role, Password: pw, InboxPrefix: inboxPrefix(role)}
	}
	return l, nil
}

// config returns the embedded server's configuration: the passwords of
// l as the variables that docs/nats/accounts.conf names, then that file.
// The passwords are base64url, which needs no escaping in quotes.
func (l natsLogins) config() string {
	var b strings.Builder
	for _, role := range NATSRoles() {
		fmt.Fprintf(&b, "%s: %q\n", passwordVariable(role), l.byRole[role].Password)
	}
	b.Write(docs.NATSAccounts)
	return b.String()
}

// passwordVariable names the variable of role's password in
// docs/nats/accounts.conf, e.g. PRODUCER_NATS_PASSWORD.
func passwordVariable(role string) string {
	return strings.ToUpper(role) + "_NATS_PASSWORD"
}

// saveNATSLogins writes every new login, and rewrites the URL of a stored
// one whose listen address changed, each file atomically with mode 0600.
// hostPort is the address clients connect to.
func saveNATSLogins(dir string, l natsLogins, hostPort string, log *slog.Logger) error {
	for _, role := range NATSRoles() {
		c := l.byRole[role]
		u := credentialsURL(c, hostPort)
		if !l.fresh[role] && c.URL == u {
			continue
		}
		c.URL = u
		path := filepath.Join(dir, role+".json")
		if err := writeCredentials(path, c, l.fresh[role]); err != nil {
			return err
		}
		if l.fresh[role] {
			log.Info("created nats credentials", "role", role, "path", path)
		}
	}
	return nil
}

// credentialsURL returns nats://user:password@hostPort.
func credentialsURL(c NATSCredentials, hostPort string) string {
	u := url.URL{Scheme: "nats", User: url.UserPassword(c.User, c.Password), Host: hostPort}
	return u.String()
}

// clientHostPort returns the address local clients use to reach a server
// listening on host at the actual address addr: the loopback address when
// host is unspecified (0.0.0.0, ::, empty).
func clientHostPort(host string, addr net.Addr) (string, error) {
	tcp, ok := addr.(*net.TCPAddr)
	if !ok {
		return "", fmt.Errorf("nats listen address %v is not TCP", addr)
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
		if ip != nil && ip.To4() == nil {
			host = "::1"
		}
	}
	return net.JoinHostPort(host, strconv.Itoa(tcp.Port)), nil
}

// readCredentials reads and checks one login file.
func readCredentials(path, role string) (NATSCredentials, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return NATSCredentials{}, fmt.Errorf("read nats credentials: %w", err)
	}
	var c NATSCredentials
	if err := json.Unmarshal(b, &c); err != nil {
		return NATSCredentials{}, fmt.Errorf("nats credentials %s: %w", path, err)
	}
	if c.User != role {
		return NATSCredentials{}, fmt.Errorf("nats credentials %s: user is %q, want %q", path, c.User, role)
	}
	if c.Password == "" {
		return NATSCredentials{}, fmt.Errorf("nats credentials %s: password is empty", path)
	}
	if c.InboxPrefix != inboxPrefix(role) {
		return NATSCredentials{}, fmt.Errorf("nats credentials %s: inbox_prefix is %q, want %q", path, c.InboxPrefix, inboxPrefix(role))
	}
	return c, nil
}

// tightenMode makes a login file that others may read private again.
func tightenMode(path string, log *slog.Logger) error {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("nats credentials: %w", err)
	}
	if fi.Mode().Perm()&0o077 == 0 {
		return nil
	}
	if err := os.Chmod(path, 0o600); err != nil {
		return fmt.Errorf("nats credentials: %w", err)
	}
	log.Warn("nats credentials were readable by others; made private", "path", path, "was", fi.Mode().Perm().String())
	return nil
}

// writeCredentials writes c to path atomically: a temp file in the same
// directory, synced, then linked into place when the file must be new (so
// that an existing login is never replaced) or renamed over it otherwise.
func writeCredentials(path string, c NATSCredentials, create bool) error {
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return fmt.Errorf("write nats credentials %s: %w", path, err)
	}
	b = append(b, '\n')
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+"-*")
	if err != nil {
		return fmt.Errorf("write nats credentials: %w", err)
	}
	defer os.Remove(tmp.Name())
	werr := tmp.Chmod(0o600)
	if werr == nil {
		_, werr = tmp.Write(b)
	}
	if werr == nil {
		werr = tmp.Sync()
	}
	if cerr := tmp.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		return fmt.Errorf("write nats credentials %s: %w", path, werr)
	}
	if create {
		err = os.Link(tmp.Name(), path)
	} else {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("write nats credentials %s: %w", path, err)
	}
	// Make the new name itself durable: a login lost in a power cut would
	// come back with another password than its clients hold.
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return fmt.Errorf("write nats credentials %s: %w", path, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("write nats credentials %s: sync dir: %w", path, err)
	}
	return nil
}

// randomPassword returns 256 random bits, base64url without padding.
func randomPassword() (string, error) {
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(raw), nil
}
