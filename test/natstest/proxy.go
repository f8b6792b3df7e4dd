package natstest

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
)

// routeProxy forwards the route connections that one node dials to
// another (one proxy per ordered pair of nodes), and can stop forwarding
// bytes while it keeps the connections open: to the servers on either
// side, the other one hangs (a stalled process, a black-holed link), and
// no connection breaks.
type routeProxy struct {
	from, to string // node names
	target   string // the route address of to
	ln       net.Listener
	gate     gate

	mu     sync.Mutex
	closed bool
	conns  []net.Conn
	dialed map[string]bool // local addresses of the connections to target
	wg     sync.WaitGroup
}

// newRouteProxy listens on a free port of 127.0.0.1 and forwards every
// connection to target, until close.
func newRouteProxy(t testing.TB, from, to, target string) *routeProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &routeProxy{from: from, to: to, target: target, ln: ln, dialed: map[string]bool{}}
	p.wg.Go(p.accept)
	t.Cleanup(p.close)
	return p
}

// URL returns the route URL that from dials to reach to.
func (p *routeProxy) URL() string { return "nats-route://" + p.ln.Addr().String() }

// accept forwards each accepted connection until the listener closes.
func (p *routeProxy) accept() {
	for {
		in, err := p.ln.Accept()
		if err != nil {
			return
		}
		out, err := net.Dial("tcp", p.target)
		if err != nil {
			in.Close() // the node is down: the dialer tries again
			continue
		}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			in.Close()
			out.Close()
			return
		}
		p.conns = append(p.conns, in, out)
		p.dialed[out.LocalAddr().String()] = true
		p.mu.Unlock()
		p.wg.Go(func() { p.pipe(out, in) })
		p.wg.Go(func() { p.pipe(in, out) })
	}
}

// pipe copies src to dst, each chunk once the gate is open, and closes
// both at the end of either.
func (p *routeProxy) pipe(dst, src net.Conn) {
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if !p.gate.wait() {
				return
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// carries reports whether addr is an address of a connection through p:
// its listener (as the dialing node sees it) or the local end of a
// connection it made to the target (as the target sees it).
func (p *routeProxy) carries(addr string) bool {
	if addr == p.ln.Addr().String() {
		return true
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.dialed[addr]
}

// close stops the proxy and its connections.
func (p *routeProxy) close() {
	p.mu.Lock()
	p.closed = true
	conns := p.conns
	p.mu.Unlock()
	p.ln.Close()
	p.gate.shut()
	for _, c := range conns {
		c.Close()
	}
	p.wg.Wait()
}

// gate holds bytes back while it is stalled.
type gate struct {
	mu      sync.Mutex
	stalled chan struct{} // closed on resume; nil while open
	done    bool
}

// stall holds every chunk from now on until resume.
func (g *gate) stall() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.stalled == nil && !g.done {
		g.stalled = make(chan struct{})
	}
}

// resume lets the held chunks and every later one through.
func (g *gate) resume() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.stalled != nil {
		close(g.stalled)
		g.stalled = nil
	}
}

// shut opens the gate for good, for the proxy's close.
func (g *gate) shut() {
	g.mu.Lock()
	g.done = true
	g.mu.Unlock()
	g.resume()
}

// wait returns true once the gate is open, or false once it is shut.
func (g *gate) wait() bool {
	for {
		g.mu.Lock()
		ch, done := g.stalled, g.done
		g.mu.Unlock()
		switch {
		case done:
			return false
		case ch == nil:
			return true
		}
		<-ch
	}
}

// errNotProxied is Stall's error on a cluster without route proxies.
var errNotProxied = errors.New("the cluster's routes are not proxied (NewClusterWith, ClusterOptions.ProxyRoutes)")

// Stall stops every byte between n and the other nodes, both ways, while
// their route connections stay open, and returns the function that lets
// them flow again (the bytes held meanwhile first). Raft groups see n go
// silent, as a process that hangs or a link that drops everything would:
// the others elect new leaders of what n led once their election timeout
// passes, while no route breaks as long as the stall is shorter than the
// route pings' stale detection (minutes). n's clients stay connected to
// it. The cluster must have been made with ClusterOptions.ProxyRoutes.
func (n *Node) Stall() (resume func()) {
	n.t.Helper()
	if len(n.proxies) == 0 {
		n.t.Fatal(errNotProxied)
	}
	for _, p := range n.proxies {
		p.gate.stall()
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			for _, p := range n.proxies {
				p.gate.resume()
			}
		})
	}
}

// checkProxied returns an error unless every route connection of every
// node goes through a proxy between that node and its peer.
func checkProxied(nodes []*Node) error {
	for _, nd := range nodes {
		rz, err := nd.Server().Routez(nil)
		if err != nil {
			return err
		}
		if len(rz.Routes) == 0 {
			return fmt.Errorf("%s has no routes", nd.Name())
		}
		for _, r := range rz.Routes {
			addr := net.JoinHostPort(r.IP, fmt.Sprint(r.Port))
			ok := false
			for _, p := range nd.proxies {
				if (p.from == r.RemoteName || p.to == r.RemoteName) && p.carries(addr) {
					ok = true
					break
				}
			}
			if !ok {
				return fmt.Errorf("route %s of %s to %s at %s bypasses the proxies", fmt.Sprint(r.Rid), nd.Name(), r.RemoteName, addr)
			}
		}
	}
	return nil
}
