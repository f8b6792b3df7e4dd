package main

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	njs "github.com/nats-io/nats.go/jetstream"

	"github.com/backupledger/backupledger/adapters/jetstream"
	"github.com/backupledger/backupledger/cmd/backupbench/loadgen"
)

// cluster is an in-process NATS cluster whose servers the load's fault
// shuts down and starts again on their stores.
type cluster struct {
	mu      sync.Mutex
	opts    []server.Options
	servers []*server.Server
}

// startCluster starts n clustered JetStream servers on 127.0.0.1, their
// stores under dir, and returns once JetStream answers on each.
func startCluster(dir string, n int, sync string) (*cluster, error) {
	c := &cluster{}
	routes := make([]*url.URL, n)
	clusterPorts := make([]int, n)
	for i := range n {
		clusterPorts[i] = freePort()
		routes[i] = &url.URL{Scheme: "nats", Host: fmt.Sprintf("127.0.0.1:%d", clusterPorts[i])}
	}
	syncAlways := sync == "always"
	for i := range n {
		c.opts = append(c.opts, server.Options{
			ServerName: fmt.Sprintf("n%d", i+1),
			Host:       "127.0.0.1",
			Port:       freePort(),
			Cluster:    server.ClusterOpts{Name: "bench", Host: "127.0.0.1", Port: clusterPorts[i]},
			Routes:     routes,
			JetStream:  true,
			StoreDir:   filepath.Join(dir, fmt.Sprintf("n%d", i+1)),
			SyncAlways: syncAlways,
			NoLog:      true,
			NoSigs:     true,
		})
		c.servers = append(c.servers, nil)
	}
	for i := range n {
		if err := c.start(i); err != nil {
			c.shutdown()
			return nil, err
		}
	}
	for i := range n {
		if !c.server(i).ReadyForConnections(30 * time.Second) {
			c.shutdown()
			return nil, fmt.Errorf("nats server n%d not ready", i+1)
		}
	}
	return c, nil
}

func (c *cluster) start(i int) error {
	opts := c.opts[i]
	s, err := server.NewServer(&opts)
	if err != nil {
		return fmt.Errorf("nats server n%d: %w", i+1, err)
	}
	c.mu.Lock()
	c.servers[i] = s
	c.mu.Unlock()
	go s.Start()
	return nil
}

func (c *cluster) server(i int) *server.Server {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.servers[i]
}

// urls returns the client URLs of every server, comma-separated.
func (c *cluster) urls() string {
	var u []string
	for _, o := range c.opts {
		u = append(u, fmt.Sprintf("nats://127.0.0.1:%d", o.Port))
	}
	return strings.Join(u, ",")
}

func (c *cluster) stop(i int) {
	s := c.server(i)
	s.Shutdown()
	s.WaitForShutdown()
}

func (c *cluster) shutdown() {
	for i := range c.servers {
		if s := c.server(i); s != nil {
			s.Shutdown()
			s.WaitForShutdown()
		}
	}
}

// fault takes servers down at a third of the run and starts them again at
// two thirds: "stream-leader", the server that leads LEDGER then, or
// "quorum", all but one (LEDGER's leader among them).
func (c *cluster) fault(ctx context.Context, kind string, js njs.JetStream, run time.Duration) error {
	if !loadgen.Sleep(ctx, run/3) {
		return ctx.Err()
	}
	leader, err := c.streamLeader(ctx, js)
	if err != nil {
		return err
	}
	down := []int{leader}
	if kind == "quorum" {
		down = nil
		for i := range c.opts {
			if i != (leader+1)%len(c.opts) {
				down = append(down, i)
			}
		}
	}
	for _, i := range down {
		fmt.Fprintf(os.Stderr, "fault: n%d down\n", i+1)
		c.stop(i)
	}
	if !loadgen.Sleep(ctx, run/3) {
		return ctx.Err()
	}
	for _, i := range down {
		fmt.Fprintf(os.Stderr, "fault: n%d up again\n", i+1)
		if err := c.start(i); err != nil {
			return err
		}
	}
	return nil
}

// streamLeader returns the index of the server leading LEDGER.
func (c *cluster) streamLeader(ctx context.Context, js njs.JetStream) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, jetstream.StreamName)
	if err != nil {
		return 0, err
	}
	info := st.CachedInfo()
	if info.Cluster == nil {
		return 0, fmt.Errorf("stream %s has no cluster info", jetstream.StreamName)
	}
	for i, o := range c.opts {
		if o.ServerName == info.Cluster.Leader {
			return i, nil
		}
	}
	return 0, fmt.Errorf("stream %s is led by %q, not a server of the cluster", jetstream.StreamName, info.Cluster.Leader)
}

func freePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
