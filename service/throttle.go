package service

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/backupledger/backupledger/domain"
)

// Throttle settings (docs/security.md, "Wrong passwords"). Wrong
// passwords are counted in memory, per backupd process, for a name
// whether or not a user has it, and per client address; the answers never
// depend on whether the name exists.
const (
	// ThrottleWindow is how long a wrong password counts.
	ThrottleWindow = 15 * time.Minute
	// ClientFailures wrong passwords from one client address (any names)
	// within the window refuse every password from it until the oldest of
	// them leaves the window.
	ClientFailures = 20
	// PairFailures wrong passwords for one name from one client within
	// the window make that client wait before its next try on that name:
	// PairBaseDelay, doubling with each further failure, at most
	// ThrottleWindow.
	PairFailures  = 3
	PairBaseDelay = time.Second
	// NameFailures wrong passwords for a name within the window (from
	// anywhere) make the name busy: then a client that has not failed on
	// it gets one try per NameInterval for that name (all such clients
	// together), so that spreading guesses over many addresses gains
	// little, while the user's own correct password waits at most about
	// NameInterval, never longer.
	NameFailures = 5
	NameInterval = 2 * time.Second
	// throttleEntries bounds each of the maps of names and clients;
	// beyond it the entries whose failures all left the window go, then
	// any.
	throttleEntries = 100_000
)

// Throttle limits password guessing: per client address, per name and
// per client on a name. It is safe for concurrent use.
type Throttle struct {
	clock domain.Clock

	mu      sync.Mutex
	clients map[string]*failures // by client
	names   map[string]*nameFailures
}

// failures are the times of recent wrong passwords, oldest first.
type failures struct {
	at []time.Time
}

// nameFailures are a name's recent wrong passwords, by client as well,
// and when a client that has not failed on it may next try.
type nameFailures struct {
	failures
	byClient  map[string]*failures
	nextFresh time.Time
}

// NewThrottle returns an empty throttle reading clock.
func NewThrottle(clock domain.Clock) *Throttle {
	return &Throttle{clock: clock, clients: map[string]*failures{}, names: map[string]*nameFailures{}}
}

// recent drops the failures that left the window at now and returns how
// many remain.
func (f *failures) recent(now time.Time) int {
	i := 0
	for i < len(f.at) && !f.at[i].After(now.Add(-ThrottleWindow)) {
		i++
	}
	f.at = f.at[i:]
	return len(f.at)
}

func (f *failures) add(now time.Time) { f.at = append(f.at, now) }

// Allow reports whether a password for name from client may be checked
// now; if not, it returns when to try again. An allowed try of a client
// that has not failed on a busy name takes the name's next fresh slot.
func (t *Throttle) Allow(name, client string) (ok bool, retryAfter time.Duration) {
	now := t.clock.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	if c := t.clients[client]; c != nil && c.recent(now) >= ClientFailures {
		return false, c.at[len(c.at)-ClientFailures].Add(ThrottleWindow).Sub(now)
	}
	n := t.names[name]
	if n == nil {
		return true, 0
	}
	if p := n.byClient[client]; p != nil && p.recent(now) > 0 {
		if k := len(p.at); k >= PairFailures {
			delay := min(PairBaseDelay<<min(k-PairFailures, 20), ThrottleWindow)
			if next := p.at[k-1].Add(delay); now.Before(next) {
				return false, next.Sub(now)
			}
		}
		return true, 0
	}
	if n.recent(now) < NameFailures {
		return true, 0
	}
	if now.Before(n.nextFresh) {
		return false, n.nextFresh.Sub(now)
	}
	n.nextFresh = now.Add(NameInterval)
	return true, 0
}

// Failed records a wrong password for name from client.
func (t *Throttle) Failed(name, client string) {
	now := t.clock.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	c := t.clients[client]
	if c == nil {
		t.bound(now)
		c = &failures{}
		t.clients[client] = c
	}
	c.add(now)
	n := t.names[name]
	if n == nil {
		t.bound(now)
		n = &nameFailures{byClient: map[string]*failures{}}
		t.names[name] = n
	}
	n.add(now)
	p := n.byClient[client]
	if p == nil {
		if len(n.byClient) >= throttleEntries {
			for k := range n.byClient { // any
				delete(n.byClient, k)
				break
			}
		}
		p = &failures{}
		n.byClient[client] = p
	}
	p.recent(now)
	p.add(now)
}

// Forget clears what the throttle knows of name: the server
// administrator set its password.
func (t *Throttle) Forget(name string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.names, name)
}

// bound makes room for one more entry in each map: the entries whose
// failures all left the window go first, then any.
func (t *Throttle) bound(now time.Time) {
	trim(t.clients, now)
	trim(t.names, now)
}

// trim halves m once it holds throttleEntries entries: those whose
// failures all left the window at now first, then any.
func trim[V interface{ recent(time.Time) int }](m map[string]V, now time.Time) {
	if len(m) < throttleEntries {
		return
	}
	for k, v := range m {
		if v.recent(now) == 0 || len(m) >= throttleEntries {
			delete(m, k)
		}
		if len(m) < throttleEntries/2 {
			break
		}
	}
}

// errThrottled is the answer to a password check the throttle refused.
func errThrottled(retryAfter time.Duration) error {
	retryAfter = max(retryAfter.Round(time.Second), time.Second)
	return &domain.Error{Code: domain.CodeTooManyAttempts, Message: fmt.Sprintf("too many wrong passwords: try again in %s", retryAfter),
		RetryAfter: retryAfter}
}

type clientKey struct{}

// WithClient returns ctx carrying the address of the client a request
// came from (the transports set it), which the Throttle counts.
func WithClient(ctx context.Context, client string) context.Context {
	return context.WithValue(ctx, clientKey{}, client)
}

// ClientOf returns the client address WithClient put into ctx, "" if
// none.
func ClientOf(ctx context.Context) string {
	c, _ := ctx.Value(clientKey{}).(string)
	return c
}

// ClientAddr turns a remote address ("host:port" or a bare IP) into the
// key the Throttle counts by: the IPv4 address, or the /64 of an IPv6 one
// (one machine often holds a whole /64). Anything else is returned as is.
func ClientAddr(remote string) string {
	ap, err := netip.ParseAddrPort(remote)
	addr := ap.Addr()
	if err != nil {
		if addr, err = netip.ParseAddr(remote); err != nil {
			return remote
		}
	}
	addr = addr.Unmap()
	if addr.Is6() {
		p, _ := addr.Prefix(64)
		return p.String()
	}
	return addr.String()
}
