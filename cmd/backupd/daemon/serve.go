package daemon

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// metricsMaxConns bounds the metrics listener's connections: a Prometheus
// server holds one per target.
const metricsMaxConns = 32

// metricsWriteTimeout bounds the writing of a scrape's answer.
const metricsWriteTimeout = 30 * time.Second

// httpServer returns an http.Server of handler with the configured
// timeouts. It has no write timeout: archive downloads push their own
// deadline ahead as bytes go out, and a command may take up to the API's
// request timeout.
func (d *Daemon) httpServer(handler http.Handler, tlsConfig *tls.Config) *http.Server {
	return &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: d.cfg.HTTP.ReadHeaderTimeout,
		ReadTimeout:       d.cfg.HTTP.ReadTimeout,
		IdleTimeout:       d.cfg.HTTP.IdleTimeout,
		TLSConfig:         tlsConfig,
	}
}

// listen listens on addr for what ("http", "metrics"): at most maxConns
// connections at once, with TLS when tlsConfig is set.
func (d *Daemon) listen(what, addr string, maxConns int, tlsConfig *tls.Config) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%s listen: %w", what, err)
	}
	ln = newLimitListener(ln, maxConns, what, d.log)
	if tlsConfig != nil {
		ln = tls.NewListener(ln, tlsConfig)
	}
	return ln, nil
}

// serve runs srv on ln until it is shut down.
func (d *Daemon) serve(what string, srv *http.Server, ln net.Listener) {
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			d.log.Error(what+" server", "err", err)
		}
	}()
}

// serveMetrics serves handler (GET /metrics) on Metrics.Addr, unless it is
// "none".
func (d *Daemon) serveMetrics(handler http.Handler, tlsConfig *tls.Config, token string) error {
	if d.cfg.Metrics.Addr == ListenNone {
		return nil
	}
	ln, err := d.listen("metrics", d.cfg.Metrics.Addr, metricsMaxConns, tlsConfig)
	if err != nil {
		return err
	}
	d.metricsLn = ln
	d.metricsSrv = d.httpServer(handler, tlsConfig)
	d.metricsSrv.WriteTimeout = metricsWriteTimeout
	if token == "" && !loopback(d.cfg.Metrics.Addr) {
		d.log.Warn("metrics are served without a token beyond this machine: they name every organisation's apps; set --metrics-token",
			"metrics_addr", d.cfg.Metrics.Addr)
	}
	d.serve("metrics", d.metricsSrv, ln)
	return nil
}

// token returns the scrape token: Token, or the content of
// TokenFile (spaces trimmed), or "" for none.
func (c MetricsConfig) token() (string, error) {
	if c.TokenFile == "" {
		return c.Token, nil
	}
	b, err := os.ReadFile(c.TokenFile)
	if err != nil {
		return "", fmt.Errorf("metrics token: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("metrics token file %s is empty", c.TokenFile)
	}
	return tok, nil
}

// loopback reports whether addr's host is a loopback address or
// "localhost".
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// limitListener accepts at most cap(sem) connections at once: Accept waits
// for one to close, and the connections beyond wait in the kernel's listen
// queue (or are refused by it once it is full).
type limitListener struct {
	net.Listener
	sem       chan struct{}
	done      chan struct{}
	closeOnce sync.Once
	what      string
	log       *slog.Logger
	// warned is when the last "full" warning was logged (Unix nanos).
	warned atomic.Int64
}

// limitWarnEvery spaces the warnings of a full listener.
const limitWarnEvery = time.Minute

func newLimitListener(ln net.Listener, n int, what string, log *slog.Logger) *limitListener {
	return &limitListener{Listener: ln, sem: make(chan struct{}, n), done: make(chan struct{}), what: what, log: log}
}

// Accept waits for a free slot, then for a connection.
func (l *limitListener) Accept() (net.Conn, error) {
	select {
	case l.sem <- struct{}{}:
	default:
		l.warnFull()
		select {
		case l.sem <- struct{}{}:
		case <-l.done:
			return nil, net.ErrClosed
		}
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.sem
		return nil, err
	}
	return &limitConn{Conn: c, release: func() { <-l.sem }}, nil
}

// Close closes the listener and ends a wait for a slot.
func (l *limitListener) Close() error {
	err := l.Listener.Close()
	l.closeOnce.Do(func() { close(l.done) })
	return err
}

func (l *limitListener) warnFull() {
	now := time.Now().UnixNano()
	last := l.warned.Load()
	if now-last < int64(limitWarnEvery) || !l.warned.CompareAndSwap(last, now) {
		return
	}
	l.log.Warn("connection limit reached: new connections wait until one closes", "listener", l.what, "max_conns", cap(l.sem))
}

// limitConn gives its slot back once closed.
type limitConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
