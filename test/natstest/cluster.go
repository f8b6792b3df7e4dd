package natstest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/url"
	"sync"
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
	nodes := NewCluster(t, n)
	servers := make([]*server.Server, len(nodes))
	for i, nd := range nodes {
		servers[i] = nd.Server()
	}
	return servers
}

// Node is one server of a cluster that a test may shut down and start
// again: with the same name, store, client port and route port.
type Node struct {
	t    testing.TB
	opts server.Options
	mu   sync.Mutex
	s    *server.Server
	// proxies are the route proxies from and to the node, with
	// ClusterOptions.ProxyRoutes.
	proxies []*routeProxy
}

// Server returns the node's current server (stopped after Shutdown).
func (n *Node) Server() *server.Server {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.s
}

// Name returns the node's server name.
func (n *Node) Name() string { return n.opts.ServerName }

// ClientURL returns the node's client URL, the same across restarts.
func (n *Node) ClientURL() string { return fmt.Sprintf("nats://127.0.0.1:%d", n.opts.Port) }

// Shutdown stops the node's server, as a kill of its process would (its
// store stays on disk).
func (n *Node) Shutdown() {
	s := n.Server()
	s.Shutdown()
	s.WaitForShutdown()
}

// Restart starts the node's server again on its store after Shutdown, and
// returns once it accepts connections.
func (n *Node) Restart() {
	n.t.Helper()
	n.start()
	if !n.Server().ReadyForConnections(30 * time.Second) {
		n.t.Fatalf("%s not ready after a restart", n.Name())
	}
}

// start starts a server with the node's options and stops it with the
// test.
func (n *Node) start() {
	n.t.Helper()
	opts := n.opts
	s, err := server.NewServer(&opts)
	if err != nil {
		n.t.Fatalf("nats server %s: %v", n.Name(), err)
	}
	n.mu.Lock()
	n.s = s
	n.mu.Unlock()
	// A clustered server is ready only once JetStream has a quorum: the
	// caller waits.
	go s.Start()
	n.t.Cleanup(func() {
		s.Shutdown()
		s.WaitForShutdown()
	})
}

// NewCluster is Cluster with nodes that can be shut down and restarted.
func NewCluster(t testing.TB, n int) []*Node {
	t.Helper()
	return NewClusterWith(t, n, ClusterOptions{})
}

// ClusterOptions are the settings of NewClusterWith.
type ClusterOptions struct {
	// ProxyRoutes sends every route connection through a TCP proxy of
	// the test, one per ordered pair of nodes (node i dials node j through
	// the proxy i→j), so that Node.Stall can hold a node's traffic back.
	ProxyRoutes bool
}

// NewClusterWith is NewCluster with opts.
func NewClusterWith(t testing.TB, n int, opts ClusterOptions) []*Node {
	t.Helper()
	// Every server routes to every other: their route ports are chosen
	// first (free ports of 127.0.0.1), and so are their client ports, which
	// a restart keeps.
	ports := make([]int, n)
	var routes []*url.URL
	for i := range ports {
		ports[i] = FreePort(t)
		routes = append(routes, mustURL(t, fmt.Sprintf("nats://127.0.0.1:%d", ports[i])))
	}
	nodes := make([]*Node, n)
	for i := range n {
		nodes[i] = &Node{t: t, opts: server.Options{
			ServerName: fmt.Sprintf("n%d", i+1),
			Host:       "127.0.0.1",
			Port:       FreePort(t),
			Cluster:    server.ClusterOpts{Name: "test", Host: "127.0.0.1", Port: ports[i]},
			Routes:     routes,
			JetStream:  true,
			StoreDir:   t.TempDir(),
			NoLog:      true,
			NoSigs:     true,
		}}
	}
	if opts.ProxyRoutes {
		proxyRoutes(t, nodes)
	}
	RestartAll(t, nodes)
	// A meta leader that has yet to hear of a peer places nothing on it:
	// a stream of n replicas would fail with "no suitable peers".
	CheckFor(t, 30*time.Second, 20*time.Millisecond, func() error {
		for _, nd := range nodes {
			if peers := nd.Server().JetStreamClusterPeers(); peers != nil {
				if len(peers) < n {
					return fmt.Errorf("the meta leader %s knows %d peers of %d", nd.Name(), len(peers), n)
				}
				return nil
			}
		}
		return fmt.Errorf("no meta leader")
	})
	if opts.ProxyRoutes {
		CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error { return checkProxied(nodes) })
	}
	return nodes
}

// proxyRoutes puts a route proxy between each ordered pair of nodes: each
// node's routes are its proxies to the others. Each node advertises a
// route address where nothing listens, so that no server dials another
// directly when it hears of it from a third (an implicit route, tried
// once): every route connection is one that a node's own routes made.
func proxyRoutes(t testing.TB, nodes []*Node) {
	t.Helper()
	for _, from := range nodes {
		from.opts.Routes = nil
		from.opts.Cluster.Advertise = fmt.Sprintf("127.0.0.1:%d", FreePort(t))
		for _, to := range nodes {
			if to == from {
				continue
			}
			p := newRouteProxy(t, from.Name(), to.Name(), fmt.Sprintf("127.0.0.1:%d", to.opts.Cluster.Port))
			from.opts.Routes = append(from.opts.Routes, mustURL(t, p.URL()))
			from.proxies = append(from.proxies, p)
			to.proxies = append(to.proxies, p)
		}
	}
}

func mustURL(t testing.TB, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// WaitJetStream waits until the JetStream API answers at url (a clustered
// server has a meta leader), or fails the test after total.
func WaitJetStream(t testing.TB, url string, total time.Duration) {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatalf("connect to %s: %v", url, err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	CheckFor(t, total, 50*time.Millisecond, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_, err := js.AccountInfo(ctx)
		return err
	})
}

// FreePort returns a TCP port of 127.0.0.1 that was free a moment ago and
// that no other call of this process returned. It is taken below Linux's
// ephemeral range (32768 and up by default): a port from that range, free
// when asked for, may be taken by an outgoing connection of a parallel test
// before its server binds it (a node that then never starts).
func FreePort(t testing.TB) int {
	t.Helper()
	portsMu.Lock()
	defer portsMu.Unlock()
	for range 1000 {
		port := 20000 + rand.IntN(12000)
		if portsGiven[port] {
			continue
		}
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue
		}
		l.Close()
		portsGiven[port] = true
		return port
	}
	t.Fatal("no free port of 127.0.0.1 in 20000-31999")
	return 0
}

var (
	portsMu    sync.Mutex
	portsGiven = map[int]bool{}
)

// RestartAll starts every node of a cluster, the first time or again
// after Shutdown (a clustered server is ready only once JetStream has a
// quorum: all start, then they are waited for).
func RestartAll(t testing.TB, nodes []*Node) {
	t.Helper()
	for _, nd := range nodes {
		nd.start()
	}
	for _, nd := range nodes {
		if !nd.Server().ReadyForConnections(30 * time.Second) {
			t.Fatalf("%s not ready", nd.Name())
		}
	}
	for _, nd := range nodes {
		WaitJetStream(t, nd.ClientURL(), 30*time.Second)
	}
}
