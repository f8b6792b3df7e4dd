package daemon

import (
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// startEmbedded starts the embedded NATS server with JetStream, its store
// under <dataDir>/nats (mode 0700). listen is "host:port" or "none"
// (in-process only). When it listens on a port, the server requires a
// login: the users of the roles backupd, producer and audit, whose logins
// are read from or created in <dataDir>/nats/<role>.json. It returns the
// server and the login the daemon itself uses (nil with "none": an
// in-process-only server has no users).
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
	opts := &server.Options{
		ServerName: "backupd",
		JetStream:  true,
		StoreDir:   dir,
		NoSigs:     true,
		NoLog:      true,
		SyncAlways: cfg.Sync == SyncAlways,
	}
	var logins natsLogins
	if cfg.NATSListen == ListenNone {
		opts.DontListen = true
	} else {
		host, port, err := net.SplitHostPort(cfg.NATSListen)
		if err != nil {
			return nil, nil, fmt.Errorf("nats listen address %q: %w", cfg.NATSListen, err)
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
			ln, err := net.Listen("tcp", cfg.NATSListen)
			if err != nil {
				return nil, nil, fmt.Errorf("nats listen address %s: %w (is another backupd or NATS server running? see --nats-listen)", cfg.NATSListen, err)
			}
			ln.Close()
		}
		opts.Host, opts.Port = host, p
		if logins, err = loadNATSLogins(dir, log); err != nil {
			return nil, nil, err
		}
		opts.Users = logins.users()
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
	if cfg.NATSListen == ListenNone {
		return s, nil, nil
	}
	hostPort, err := clientHostPort(opts.Host, s.Addr())
	if err == nil {
		err = saveNATSLogins(dir, logins, hostPort, log)
	}
	if err != nil {
		s.Shutdown()
		return nil, nil, err
	}
	own := logins.byRole[RoleBackupd]
	return s, &own, nil
}

// connect connects to the embedded server in-process with login (nil: no
// login), or, when s is nil, to cfg.NATSURL with the credentials and TLS
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
	serverURL := cfg.NATSURL
	if s != nil {
		opts = append(opts, nats.InProcessServer(s))
		if login != nil {
			opts = append(opts, login.Options()...)
		}
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
