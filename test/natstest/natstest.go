// Package natstest runs a real NATS server with JetStream in-process for
// tests, on a random loopback port with its store in a temp dir, and waits
// for eventual results without sleeping blindly.
package natstest

import (
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Server starts a JetStream-enabled server that stops with the test. dir is
// its store directory; "" means a fresh t.TempDir().
func Server(t testing.TB, dir string) *server.Server {
	t.Helper()
	return ServerWithOptions(t, &server.Options{StoreDir: dir})
}

// ServerWithOptions starts a JetStream-enabled server with opts (users,
// TLS, trusted operators, ...) that stops with the test. It listens on a
// random port of 127.0.0.1 and keeps its store in a fresh t.TempDir()
// unless opts say otherwise.
func ServerWithOptions(t testing.TB, opts *server.Options) *server.Server {
	t.Helper()
	if opts.Host == "" {
		opts.Host = "127.0.0.1"
	}
	if opts.Port == 0 {
		opts.Port = -1
	}
	if opts.StoreDir == "" {
		opts.StoreDir = t.TempDir()
	}
	opts.JetStream = true
	opts.NoLog, opts.NoSigs = true, true
	s, err := server.NewServer(opts)
	if err != nil {
		t.Fatalf("nats server: %v", err)
	}
	s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats server not ready")
	}
	t.Cleanup(func() {
		s.Shutdown()
		s.WaitForShutdown()
	})
	return s
}

// Connect connects to s in-process and returns the connection and a
// JetStream context; both close with the test.
func Connect(t testing.TB, s *server.Server) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(s.ClientURL(), nats.InProcessServer(s))
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("jetstream: %v", err)
	}
	return nc, js
}

// CheckFor calls f every interval until it returns nil or total has passed,
// then fails the test with f's last error.
func CheckFor(t testing.TB, total, every time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(total)
	var err error
	for {
		if err = f(); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met after %s: %v", total, err)
		}
		time.Sleep(every)
	}
}

// Errorf is fmt.Errorf, for CheckFor conditions.
func Errorf(format string, args ...any) error { return fmt.Errorf(format, args...) }
