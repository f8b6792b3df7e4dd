package notify_test

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/backupledger/backupledger/adapters/notify"
)

// notAllowed is what the delivery log says of a refused target.
const notAllowed = "target address not allowed"

// fakeDNS is a DNS server on 127.0.0.1 that answers every A question with
// one address, and every other question with no answer: a name that looks
// public and resolves to a loopback address, as after DNS rebinding.
type fakeDNS struct {
	addr    string
	queries atomic.Int64 // A questions answered
}

func newFakeDNS(t *testing.T, ip [4]byte) *fakeDNS {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	f := &fakeDNS{addr: pc.LocalAddr().String()}
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if resp, isA := dnsAnswer(buf[:n], ip); resp != nil {
				if isA {
					f.queries.Add(1)
				}
				_, _ = pc.WriteTo(resp, from)
			}
		}
	}()
	return f
}

// dnsAnswer answers the DNS query q: its question, and ip when it asks
// for an A record.
func dnsAnswer(q []byte, ip [4]byte) (resp []byte, isA bool) {
	if len(q) < 12 {
		return nil, false
	}
	i := 12
	for i < len(q) && q[i] != 0 {
		i += int(q[i]) + 1
	}
	if i+5 > len(q) {
		return nil, false
	}
	end := i + 5 // the root label, the type and the class
	isA = binary.BigEndian.Uint16(q[i+1:]) == 1
	resp = append([]byte{q[0], q[1], 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0}, q[12:end]...)
	if isA {
		resp[7] = 1
		resp = append(resp, 0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, ip[0], ip[1], ip[2], ip[3])
	}
	return resp, isA
}

// resolver returns a resolver that asks f.
func (f *fakeDNS) resolver() *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "udp", f.addr)
	}}
}

// closedPort returns a loopback address where nothing listens.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func TestWebhookToNonPublicAddressIsRefused(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.AllowPrivateTargets = false
	dns := newFakeDNS(t, [4]byte{127, 0, 0, 1})
	cfg = notify.WithResolver(cfg, dns.resolver())
	s := newServer(t, cfg)
	rc := newReceiver(t, "s3cr3t", nil)
	port := rc.srv.Listener.Addr().(*net.TCPAddr).Port
	targets := map[string]string{
		"literal":  rc.srv.URL + "/hook",                                         // a receiver that answers
		"closed":   "http://" + closedPort(t) + "/hook",                          // nothing listens: the same answer
		"mapped":   "http://[::ffff:127.0.0.1]:" + strconv.Itoa(port) + "/hook",  // IPv4-mapped loopback
		"metadata": "http://169.254.169.254/latest/meta-data/",                   // never connected to, so no timeout
		"private":  "http://10.0.0.1:" + strconv.Itoa(port) + "/hook",            // RFC 1918
		"name":     "http://localhost:" + strconv.Itoa(port) + "/hook",           // resolved through /etc/hosts
		"rebound":  "http://hooks.rebind.test:" + strconv.Itoa(port) + "/hook",   // a public-looking name resolving to 127.0.0.1
		"dotted":   "http://hooks.rebind.test.:" + strconv.Itoa(port) + "/hook/", // the same, fully qualified
	}
	h := newHooks()
	for id, u := range targets {
		h.set(id, notify.WebhookTarget{URL: u, Secret: []byte("s3cr3t")})
	}
	rec := newLogRecorder()
	n, js := newNotifier(t, s, cfg, h, loggerOf(rec))
	for id := range targets {
		if err := n.EnqueueWebhook(t.Context(), webhookJob("ev1", id)); err != nil {
			t.Fatalf("enqueue %s: %v", id, err)
		}
	}
	runInBackground(t, "notifier", n.Run)
	for id, u := range targets {
		log := waitLog(t, n, id, endsWith(notify.ResultGaveUp))
		if got := results(log); got != "[1:gave_up]" {
			t.Errorf("%s (%s): log %s, want [1:gave_up]: retrying cannot help", id, u, got)
		}
		if a := log[0]; a.Error != notAllowed || a.StatusCode != 0 || a.NextAttemptAt != nil {
			t.Errorf("%s (%s): error %q, status %d, next %v; want %q and nothing else", id, u, a.Error, a.StatusCode, a.NextAttemptAt, notAllowed)
		}
	}
	waitEmpty(t, js)
	if got := len(rc.requests()); got != 0 {
		t.Errorf("the receiver on 127.0.0.1 got %d requests, want none", got)
	}
	if dns.queries.Load() == 0 {
		t.Error("hooks.rebind.test was never resolved: the refusal did not come from its resolved address")
	}
	if rec.contains("connection refused") || rec.contains("i/o timeout") {
		t.Error("the log says how a refused target's port answered")
	}
}

func TestWebhookToNonPublicAddressIsDeliveredWhenAllowed(t *testing.T) {
	t.Parallel()
	cfg := testConfig() // allows private targets
	dns := newFakeDNS(t, [4]byte{127, 0, 0, 1})
	d := &net.Dialer{Resolver: dns.resolver()}
	cfg.Client = &http.Client{Transport: &http.Transport{DialContext: d.DialContext}}
	s := newServer(t, cfg)
	rc := newReceiver(t, "s3cr3t", nil)
	port := strconv.Itoa(rc.srv.Listener.Addr().(*net.TCPAddr).Port)
	targets := map[string]string{
		"literal": rc.srv.URL + "/hook",
		"mapped":  "http://[::ffff:127.0.0.1]:" + port + "/hook",
		"name":    "http://localhost:" + port + "/hook",
		"rebound": "http://hooks.rebind.test:" + port + "/hook",
	}
	h := newHooks()
	for id, u := range targets {
		h.set(id, notify.WebhookTarget{URL: u, Secret: []byte("s3cr3t")})
	}
	n, js := newNotifier(t, s, cfg, h, nil)
	for id := range targets {
		if err := n.EnqueueWebhook(t.Context(), webhookJob("ev1", id)); err != nil {
			t.Fatalf("enqueue %s: %v", id, err)
		}
	}
	runInBackground(t, "notifier", n.Run)
	for id := range targets {
		if got := results(waitLog(t, n, id, endsWith(notify.ResultDelivered))); got != "[1:delivered]" {
			t.Errorf("%s: log %s, want [1:delivered]", id, got)
		}
	}
	waitEmpty(t, js)
	reqs := rc.requests()
	if len(reqs) != len(targets) {
		t.Fatalf("the receiver got %d requests, want %d", len(reqs), len(targets))
	}
	for _, r := range reqs {
		if !r.signatureOK || r.path != "/hook" {
			t.Errorf("request %+v", r)
		}
	}
}

func TestWebhookGuardUsesNoProxy(t *testing.T) {
	t.Parallel()
	// A proxy would resolve the name itself, out of the guard's sight: with
	// the guard on, the given transport's proxy is not used, and the name
	// is resolved (and refused) here.
	var proxied atomic.Int64
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		proxied.Add(1)
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(proxy.Close)
	proxyURL, err := url.Parse(proxy.URL)
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig()
	cfg.AllowPrivateTargets = false
	cfg.Client = &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(proxyURL)}}
	dns := newFakeDNS(t, [4]byte{127, 0, 0, 1})
	cfg = notify.WithResolver(cfg, dns.resolver())
	s := newServer(t, cfg)
	h := newHooks()
	h.set("w1", notify.WebhookTarget{URL: "http://hooks.rebind.test/hook", Secret: []byte("s3cr3t")})
	n, js := newNotifier(t, s, cfg, h, nil)
	if err := n.EnqueueWebhook(t.Context(), webhookJob("ev1", "w1")); err != nil {
		t.Fatal(err)
	}
	runInBackground(t, "notifier", n.Run)
	log := waitLog(t, n, "w1", endsWith(notify.ResultGaveUp))
	waitEmpty(t, js)
	if log[0].Error != notAllowed {
		t.Errorf("error %q, want %q", log[0].Error, notAllowed)
	}
	if proxied.Load() != 0 || dns.queries.Load() == 0 {
		t.Errorf("the proxy got %d requests and the name was resolved %d times here; want none and some", proxied.Load(), dns.queries.Load())
	}
}

// roundTripper is a transport that is not an *http.Transport.
type roundTripper struct{}

func (roundTripper) RoundTrip(*http.Request) (*http.Response, error) {
	return nil, errors.New("not used")
}

func TestGuardNeedsAnHTTPTransport(t *testing.T) {
	t.Parallel()
	cfg := notify.Config{Client: &http.Client{Transport: roundTripper{}}}
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "cannot check the addresses") {
		t.Errorf("Validate = %v, want a transport error", err)
	}
	cfg.AllowPrivateTargets = true
	if err := cfg.Validate(); err != nil {
		t.Errorf("Validate with private targets allowed = %v, want nil", err)
	}
	for _, ok := range []*http.Client{nil, {}, {Transport: &http.Transport{}}} {
		if err := (notify.Config{Client: ok}).Validate(); err != nil {
			t.Errorf("Validate with client %+v = %v, want nil", ok, err)
		}
	}
}
