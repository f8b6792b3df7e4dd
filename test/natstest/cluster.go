package natstest

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Cluster starts a JetStream cluster of n servers on 127.0.0.1 (random
// client and route ports, each store in a fresh t.TempDir()) that stops with
// the test, and returns its servers once JetStream answers on every one
// (a meta leader is elected).
func Cluster(t testing.TB, n int) []*server.Server {
	t.Helper()
	// Every server routes to every other: their route ports are chosen
	// first (free ports of 127.0.0.1).
	ports := make([]int, n)
	var routes []*url.URL
	for i := range ports {
		ports[i] = freePort(t)
		u, err := url.Parse(fmt.Sprintf("nats://127.0.0.1:%d", ports[i]))
		if err != nil {
			t.Fatal(err)
		}
		routes = append(routes, u)
	}
	var servers []*server.Server
	for i := range n {
		opts := &server.Options{
			ServerName: fmt.Sprintf("n%d", i+1),
			Host:       "127.0.0.1",
			Port:       -1,
			Cluster:    server.ClusterOpts{Name: "test", Host: "127.0.0.1", Port: ports[i]},
			Routes:     routes,
			JetStream:  true,
			StoreDir:   t.TempDir(),
			NoLog:      true,
			NoSigs:     true,
		}
		s, err := server.NewServer(opts)
		if err != nil {
			t.Fatalf("nats server: %v", err)
		}
		// A clustered server is ready only once JetStream has a quorum:
		// start them all, then wait.
		go s.Start()
		t.Cleanup(func() {
			s.Shutdown()
			s.WaitForShutdown()
		})
		servers = append(servers, s)
	}
	for _, s := range servers {
		if !s.ReadyForConnections(30 * time.Second) {
			t.Fatalf("%s not ready", s.Name())
		}
	}
	for _, s := range servers {
		nc, err := nats.Connect(s.ClientURL())
		if err != nil {
			t.Fatalf("connect to %s: %v", s.Name(), err)
		}
		js, err := jetstream.New(nc)
		if err != nil {
			t.Fatal(err)
		}
		CheckFor(t, 30*time.Second, 50*time.Millisecond, func() error {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			_, err := js.AccountInfo(ctx)
			return err
		})
		nc.Close()
	}
	return servers
}

// freePort returns a TCP port of 127.0.0.1 that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
