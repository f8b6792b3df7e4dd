package daemon

import (
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// startEmbedded starts the embedded NATS server with JetStream, its store
// under <dataDir>/nats. listen is "host:port" or "none" (in-process only).
func startEmbedded(cfg Config) (*server.Server, error) {
	opts := &server.Options{
		ServerName: "backupd",
		JetStream:  true,
		StoreDir:   filepath.Join(cfg.DataDir, "nats"),
		NoSigs:     true,
		NoLog:      true,
		SyncAlways: cfg.Sync == SyncAlways,
	}
	if cfg.NATSListen == ListenNone {
		opts.DontListen = true
	} else {
		host, port, err := net.SplitHostPort(cfg.NATSListen)
		if err != nil {
			return nil, fmt.Errorf("nats listen address %q: %w", cfg.NATSListen, err)
		}
		p, err := strconv.Atoi(port)
		if err != nil {
			return nil, fmt.Errorf("nats listen port %q: %w", port, err)
		}
		if p == 0 {
			p = -1 // random
		}
		opts.Host, opts.Port = host, p
	}
	s, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("embedded nats server: %w", err)
	}
	s.Start()
	if !s.ReadyForConnections(30 * time.Second) {
		s.Shutdown()
		return nil, fmt.Errorf("embedded nats server not ready after 30s")
	}
	return s, nil
}

// connect connects to the embedded server in-process, or to url. The channel
// is closed once the connection is closed (after a drain, say).
func connect(s *server.Server, url string) (*nats.Conn, <-chan struct{}, error) {
	closed := make(chan struct{})
	opts := []nats.Option{
		nats.Name("backupd"),
		nats.ClosedHandler(func(*nats.Conn) { close(closed) }),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
	}
	if s != nil {
		opts = append(opts, nats.InProcessServer(s))
		url = s.ClientURL()
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return nil, nil, fmt.Errorf("connect to nats %s: %w", url, err)
	}
	return nc, closed, nil
}
