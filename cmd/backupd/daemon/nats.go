package daemon

import (
	"context"
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
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// The accounts of the embedded server, as docs/nats/accounts.conf names
// them. Only the ledger's account holds anything of value; the staging
// bucket is in the producers' account, and audit consumers read a mirror
// of LEDGER in AUDIT_MIRROR.
const (
	AccountLedger      = "LEDGER"
	AccountProducers   = "PRODUCERS"
	AccountAudit       = "AUDIT"
	AccountAuditMirror = "AUDIT_MIRROR"
)

// globalAccount is the account of a server configured without accounts,
// where backupd kept everything before it had accounts of its own.
const globalAccount = "$G"

// startEmbedded starts the embedded NATS server with JetStream, its store
// under <dataDir>/nats (mode 0700), configured with the accounts and users
// of docs/nats/accounts.conf. listen is "host:port" or "none" (in-process
// only). The users' logins are read from or created in
// <dataDir>/nats/<role>.json when the server listens on a port; with "none"
// they are made anew in memory and written nowhere, since no one else can
// connect. A store written before the server had accounts is moved into
// the ledger's account first (migrateGlobalAccount). It returns the server
// and the login the daemon itself uses.
func startEmbedded(cfg Config, log *slog.Logger) (*server.Server, *NATSCredentials, error) {
	dir := natsDir(cfg.DataDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("nats store dir: %w", err)
	}
	// The store holds every archive and the logins: private, also when an
	// older backupd (or nats-server) created it with a wider mode.
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("nats store dir: %w", err)
	}
	if err := migrateGlobalAccount(dir, log); err != nil {
		return nil, nil, err
	}
	var (
		logins natsLogins
		err    error
	)
	if cfg.NATS.Listen == ListenNone {
		logins, err = memoryNATSLogins()
	} else {
		logins, err = loadNATSLogins(dir, log)
	}
	if err != nil {
		return nil, nil, err
	}
	opts := &server.Options{}
	if err := opts.ProcessConfigString(logins.config()); err != nil {
		return nil, nil, fmt.Errorf("embedded nats server accounts: %w", err)
	}
	opts.ServerName = "backupd"
	opts.JetStream = true
	opts.StoreDir = dir
	opts.NoSigs, opts.NoLog = true, true
	opts.SyncAlways = cfg.NATS.Sync == SyncAlways
	if cfg.NATS.Listen == ListenNone {
		opts.DontListen = true
	} else {
		host, port, err := net.SplitHostPort(cfg.NATS.Listen)
		if err != nil {
			return nil, nil, fmt.Errorf("nats listen address %q: %w", cfg.NATS.Listen, err)
		}
		p, err := strconv.Atoi(port)
		if err != nil {
			return nil, nil, fmt.Errorf("nats listen port %q: %w", port, err)
		}
		if p == 0 {
			p = -1 // random
		} else {
			// The embedded server only logs a port it cannot listen on
			// (and logs nothing here): fail at once, and say why.
			ln, err := net.Listen("tcp", cfg.NATS.Listen)
			if err != nil {
				return nil, nil, fmt.Errorf("nats listen address %s: %w (is another backupd or NATS server running? see --nats-listen)", cfg.NATS.Listen, err)
			}
			ln.Close()
		}
		opts.Host, opts.Port = host, p
	}
	s, err := server.NewServer(opts)
	if err != nil {
		return nil, nil, fmt.Errorf("embedded nats server: %w", err)
	}
	s.Start()
	if !s.ReadyForConnections(30 * time.Second) {
		s.Shutdown()
		return nil, nil, fmt.Errorf("embedded nats server not ready after 30s")
	}
	own := logins.byRole[RoleBackupd]
	if cfg.NATS.Listen == ListenNone {
		return s, &own, nil
	}
	hostPort, err := clientHostPort(opts.Host, s.Addr())
	if err == nil {
		err = saveNATSLogins(dir, logins, hostPort, log)
	}
	if err != nil {
		s.Shutdown()
		return nil, nil, err
	}
	return s, &own, nil
}

// migrateGlobalAccount moves the JetStream store of a server that had no
// accounts (<dir>/jetstream/$G, where backupd kept LEDGER, its buckets and
// archives until it had accounts) to the ledger's account, as it is: a
// rename of the directory, so that no event or archive is copied, and the
// stream sequences, hashes and signatures stay what they were. It fails if
// both exist, which backupd never makes.
func migrateGlobalAccount(dir string, log *slog.Logger) error {
	old := filepath.Join(dir, "jetstream", globalAccount)
	if _, err := os.Stat(old); errors.Is(err, fs.ErrNotExist) {
		return nil
	} else if err != nil {
		return fmt.Errorf("nats store: %w", err)
	}
	now := filepath.Join(dir, "jetstream", AccountLedger)
	if _, err := os.Stat(now); err == nil {
		return fmt.Errorf("nats store: both %s and %s exist; move one away (backupd keeps the ledger in the second)", old, now)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("nats store: %w", err)
	}
	if err := os.Rename(old, now); err != nil {
		return fmt.Errorf("nats store: move the ledger into its account: %w", err)
	}
	if err := syncDir(filepath.Dir(now)); err != nil {
		return fmt.Errorf("nats store: %w", err)
	}
	log.Info("moved the ledger's JetStream store into the account of its own", "from", old, "to", now)
	return nil
}

// syncDir makes the entries of a directory durable.
func syncDir(path string) error {
	d, err := os.Open(path)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// connect connects to the embedded server in-process with login, or, when
// s is nil, to cfg.NATS.URL with the credentials and TLS
// settings of cfg. The channel is closed once the connection is closed
// (after a drain, say).
func connect(s *server.Server, login *NATSCredentials, cfg Config) (*nats.Conn, <-chan struct{}, error) {
	closed := make(chan struct{})
	opts := []nats.Option{
		nats.Name("backupd"),
		nats.ClosedHandler(func(*nats.Conn) { close(closed) }),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
	}
	serverURL := cfg.NATS.URL
	if s != nil {
		opts = append(opts, nats.InProcessServer(s))
		opts = append(opts, login.Options()...)
		serverURL = s.ClientURL()
	} else {
		opts = append(opts, externalOptions(cfg)...)
	}
	nc, err := nats.Connect(serverURL, opts...)
	if err != nil {
		return nil, nil, fmt.Errorf("connect to nats %s: %w", redactURLs(serverURL), err)
	}
	return nc, closed, nil
}

// connectRetrying is connect, tried again with a growing pause (250 ms
// doubling up to 5 s, each failure logged) while the cluster at
// cfg.NATS.URL cannot be reached, for at most cfg.NATS.ConnectTimeout or
// until ctx ends: backupd may start before its cluster does. The embedded
// server is connected to once.
func connectRetrying(ctx context.Context, s *server.Server, login *NATSCredentials, cfg Config, log *slog.Logger) (*nats.Conn, <-chan struct{}, error) {
	deadline := time.Now().Add(cfg.NATS.ConnectTimeout)
	pause := 250 * time.Millisecond
	for attempt := 1; ; attempt++ {
		nc, closed, err := connect(s, login, cfg)
		if err == nil || s != nil || !errors.Is(err, nats.ErrNoServers) || time.Now().Add(pause).After(deadline) {
			return nc, closed, err
		}
		log.Warn("NATS not reachable yet; retrying", "nats", redactURLs(cfg.NATS.URL), "attempt", attempt, "retry_in", pause, "err", err)
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, nil, fmt.Errorf("connect to nats %s: %w (last error: %w)", redactURLs(cfg.NATS.URL), ctx.Err(), err)
		case <-t.C:
		}
		pause = min(2*pause, 5*time.Second)
	}
}

// redactURLs returns a comma-separated list of NATS URLs with the password
// of each replaced by "xxxxx", for logs and errors.
func redactURLs(urls string) string {
	parts := strings.Split(urls, ",")
	for i, p := range parts {
		u, err := url.Parse(strings.TrimSpace(p))
		if err != nil || u.User == nil {
			continue
		}
		if _, ok := u.User.Password(); !ok {
			u.User = url.User("xxxxx") // a token in the user's place
		}
		parts[i] = u.Redacted()
	}
	return strings.Join(parts, ",")
}
