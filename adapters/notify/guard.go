package notify

import (
	"errors"
	"net"
	"net/http"
	"net/netip"
	"syscall"
	"time"

	"github.com/backupledger/backupledger/domain"
)

// errTargetNotAllowed is the error of a webhook request that would
// connect to an address a webhook may not target (domain.NonPublicAddr)
// while Config.AllowPrivateTargets is off. Its text is what the delivery
// log records: nothing about the port or whether anything listens there.
var errTargetNotAllowed = errors.New("target address not allowed")

// refuseNonPublic is the Control function of the webhook dialer: it runs
// after DNS resolution, before each connection the dialer tries, with the
// IP address and port actually connected to, and refuses a non-public
// address. Because it sees the resolved address, a name that resolves (or
// rebinds, between a check and the connection) to such an address is
// refused too.
func refuseNonPublic(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil || domain.NonPublicAddr(ap.Addr()) != "" {
		return errTargetNotAllowed
	}
	return nil
}

// webhookClient returns the client of the webhook requests: a copy of
// cfg.Client (or a new client) that never follows redirects. Unless
// cfg.AllowPrivateTargets, its transport is a copy of the given one (or of
// http.DefaultTransport's settings) that dials through a dialer which
// refuses non-public addresses (refuseNonPublic), with cfg.resolver, and
// uses no proxy and none of the given transport's own
// dial functions: the check must see the address connected to. Validate
// refuses a given transport that is not an *http.Transport then.
func webhookClient(cfg Config) *http.Client {
	client := &http.Client{}
	if cfg.Client != nil {
		c := *cfg.Client
		client = &c
	}
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	if cfg.AllowPrivateTargets {
		return client
	}
	var t *http.Transport
	if given, ok := client.Transport.(*http.Transport); ok && given != nil {
		t = given.Clone()
	} else if def, ok := http.DefaultTransport.(*http.Transport); ok {
		t = def.Clone()
	} else {
		t = &http.Transport{ForceAttemptHTTP2: true, MaxIdleConns: 100, IdleConnTimeout: 90 * time.Second,
			TLSHandshakeTimeout: 10 * time.Second, ExpectContinueTimeout: time.Second}
	}
	d := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second, Resolver: cfg.resolver, Control: refuseNonPublic}
	t.Proxy = nil
	t.OnProxyConnectResponse = nil
	t.DialContext = d.DialContext
	t.Dial = nil
	t.DialTLSContext = nil
	t.DialTLS = nil
	client.Transport = t
	return client
}
